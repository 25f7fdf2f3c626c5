"""Traffic built the way Claude Code talks, as proxy records with the links expected.

An `Agent` is one message thread (the main loop or a sub-agent): it sends the
whole, growing message list every turn, with a long system prompt and tools,
`cache_control` on the newest message and `<system-reminder>` blocks in user
turns. A `Session` turns each request and answer into the record the proxy
hands to the recorder, labelled with the conversation, branch, parent and task
the request must be linked to. `claude_code_day()` plays a full session: tool
loops, side calls, a quota probe, sub-agents via Task and Agent, a rewind that
makes a branch, a retry after 529, and compactions in the old and new formats.
"""
import copy
import datetime
import json
import random
import uuid

from tests.fake_upstream_data import sse_bytes

MAIN_MODEL = "claude-sonnet-4-5-20250929"
SMALL_MODEL = "claude-haiku-4-5-20251001"
IDENTITY = "You are Claude Code, Anthropic's official CLI for Claude."
MAIN_PROMPT = ("\nYou are an interactive CLI tool that helps users with software engineering "
               "tasks. Use the instructions below and the tools available to you.\n"
               + "# Tone and style\nBe concise, direct, and to the point.\n" * 120)
SUBAGENT_PROMPT = ("You are an agent for Claude Code. Given the user's message, use the tools "
                   "available to complete the task.\n" + "Notes: use absolute paths.\n" * 40)
TOOLS = [{"name": n, "description": f"The {n} tool.",
          "input_schema": {"type": "object", "properties": {"x": {"type": "string"}}}}
         for n in ("Bash", "Read", "Edit", "Grep", "Glob", "TodoWrite", "Task", "Agent")]
REMINDER = ("<system-reminder>\nAs you answer the user's questions, you can use the following "
            "context:\n# claudeMd\nUse pytest.\n</system-reminder>")
SUMMARY_INSTRUCTION = ("Your task is to create a detailed summary of the conversation so far, "
                       "paying close attention to the user's explicit requests and your "
                       "previous actions.\nWrap your analysis in <analysis> tags.")
OLD_CONTINUATION = ("This session is being continued from a previous conversation that ran "
                    "out of context. The conversation is summarized below:\n")
NEW_CONTINUATION = ("This session is being continued from a previous conversation that ran "
                    "out of context. The summary below covers the earlier portion of the "
                    "conversation.\n\n")


class Agent:
    """One message thread: the main loop or a sub-agent."""

    def __init__(self, session, system, model=MAIN_MODEL, tools=TOOLS):
        self.session, self.system, self.model, self.tools = session, system, model, tools
        self.messages = []

    def body(self, **extra):
        messages = copy.deepcopy(self.messages)
        last = messages[-1]["content"]
        if isinstance(last, list) and last:
            last[-1]["cache_control"] = {"type": "ephemeral"}  # moves every turn
        body = {"model": self.model, "max_tokens": 32000, "messages": messages,
                "system": self.system, "tools": self.tools, "stream": True,
                "metadata": {"user_id": self.session.user_id}}
        body.update(extra)
        return body

    def user(self, *blocks):
        """Add a user turn: text strings and/or content blocks, a reminder first."""
        content = [{"type": "text", "text": REMINDER}]
        content += [{"type": "text", "text": b} if isinstance(b, str) else b for b in blocks]
        self.messages.append({"role": "user", "content": content})

    def answer(self, message):
        self.messages.append({"role": "assistant", "content": copy.deepcopy(message["content"])})

    def last_tool_ids(self):
        return [b["id"] for b in self.messages[-1]["content"] if b.get("type") == "tool_use"]

    def results(self, *texts):
        """Tool results for the calls of the last answer, then a reminder block."""
        ids = self.last_tool_ids()
        blocks = [{"type": "tool_result", "tool_use_id": i, "content": t} for i, t in zip(ids, texts)]
        self.messages.append({"role": "user", "content": blocks + [
            {"type": "text", "text": "<system-reminder>Todo list changed.</system-reminder>"}]})


class Session:
    """A Claude Code session: builds records and remembers the expected links."""

    def __init__(self, seed=1, domain="team.example.com", start=None, user_id_form="json",
                 header=True, claude_code=True):
        self.rng = random.Random(seed)
        self.domain, self.header, self.claude_code = domain, header, claude_code
        self.now = start or datetime.datetime(2026, 11, 20, 9, 0, 0)
        self.session_id = str(self._uuid())
        self.account = str(self._uuid())
        self.user_id = (json.dumps({"device_id": "d" * 64, "account_uuid": self.account,
                                    "session_id": self.session_id}) if user_id_form == "json"
                        else f"user_{'a' * 64}_account_{self.account}_session_{self.session_id}")
        self.records, self.expected, self.ids = [], {}, {}

    def _uuid(self):
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def tool_id(self):
        return "toolu_01" + "".join(self.rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijk")
                                    for _ in range(22))

    def agent(self, system=None, model=MAIN_MODEL):
        system = system or [{"type": "text", "text": IDENTITY, "cache_control": {"type": "ephemeral"}},
                            {"type": "text", "text": MAIN_PROMPT, "cache_control": {"type": "ephemeral"}}]
        return Agent(self, system, model)

    def message(self, model, *blocks, stop=None, usage=None):
        content = [{"type": "text", "text": b} if isinstance(b, str) else b for b in blocks]
        tool = any(b["type"] == "tool_use" for b in content)
        return {"id": "msg_01" + self.tool_id()[8:], "type": "message", "role": "assistant",
                "model": model, "content": content, "stop_reason": stop or ("tool_use" if tool else "end_turn"),
                "stop_sequence": None,
                "usage": usage or {"input_tokens": 12, "output_tokens": 40,
                                   "cache_creation_input_tokens": 900, "cache_read_input_tokens": 14000,
                                   "cache_creation": {"ephemeral_5m_input_tokens": 0,
                                                      "ephemeral_1h_input_tokens": 900}}}

    def tool_use(self, name, **inputs):
        return {"type": "tool_use", "id": self.tool_id(), "name": name, "input": inputs}

    def headers(self):
        headers = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
        if self.claude_code:
            headers.update({"user-agent": "claude-cli/2.0.14 (external, cli)", "x-app": "cli"})
            if self.header:
                headers["x-claude-code-session-id"] = self.session_id
        else:
            headers["user-agent"] = "Anthropic/Python 0.70.0"
        return headers

    def send(self, label, body, message=None, status=200, expect=None, error=None, seconds=3):
        """Record one request; `expect` = (conversation, branch, parent, task) labels."""
        self.now += datetime.timedelta(seconds=seconds)
        request_id = str(self._uuid())
        stream = bool(body.get("stream"))
        if message is not None and status == 200:
            response = sse_bytes(message) if stream else json.dumps(message).encode()
            headers = {"content-type": "text/event-stream" if stream else "application/json"}
        else:
            response = json.dumps({"type": "error", "error": {"type": "overloaded_error",
                                                              "message": "Overloaded"}}).encode()
            headers, stream = {"content-type": "application/json"}, False
        headers.update({"request-id": "req_" + request_id[:12],
                        "anthropic-ratelimit-unified-status": "allowed",
                        "anthropic-ratelimit-unified-5h-utilization": "0.25"})
        self.records.append({
            "request_id": request_id, "timestamp": self.now, "domain": self.domain,
            "method": "POST", "path": "/v1/messages", "query": "beta=true",
            "request_headers": self.headers(), "request_body": json.dumps(body).encode(),
            "response_status": status, "response_headers": headers, "response_body": response,
            "stream": stream, "duration_ms": 1500.0 + self.rng.random() * 9000,
            "first_token_ms": 300.0 + self.rng.random() * 900, "error": error,
            "upstream_request_id": headers["request-id"], "auth_hash": "ab" * 32,
            "client_key_id": None, "account_id": None,
            "session_header": self.session_id if self.claude_code and self.header else None})
        self.ids[label] = request_id
        self.expected[label] = expect
        return message

    def turn(self, label, agent, message, expect, **kw):
        """Send the agent's messages, get `message` back and add it to the thread."""
        self.send(label, agent.body(), message, expect=expect, **kw)
        agent.answer(message)
        return message

    def side_call(self, label, text):
        body = {"model": SMALL_MODEL, "max_tokens": 512, "stream": True,
                "system": [{"type": "text", "text": IDENTITY},
                           {"type": "text", "text": "Summarize this coding conversation in under 50 characters."}],
                "messages": [{"role": "user", "content": text}],
                "metadata": {"user_id": self.user_id}, "temperature": 0}
        self.send(label, body, self.message(SMALL_MODEL, "Fix parser test"), seconds=1)

    def quota(self, label):
        body = {"model": SMALL_MODEL, "max_tokens": 1, "messages": [{"role": "user", "content": "quota"}],
                "metadata": {"user_id": self.user_id}}
        self.send(label, body, self.message(SMALL_MODEL, "Hi", stop="max_tokens"), seconds=1)


def subagent_system():
    return [{"type": "text", "text": IDENTITY}, {"type": "text", "text": SUBAGENT_PROMPT}]


SUMMARY = ("1. Primary Request and Intent:\n   The user asked to fix the failing parser test "
           "and rename parse_line.\n2. Key Technical Concepts:\n   - pytest\n   - tokenizer\n"
           "3. Files and Code Sections:\n   - parser.py: parse_line renamed to parse_row\n"
           "4. Pending Tasks:\n   - run the whole suite\n")


def compact(s, agent, label, expect, new_format=False):
    """The summariser's call on `agent`'s thread, then the continuation thread."""
    summariser = s.agent()
    summariser.messages = copy.deepcopy(agent.messages)
    summariser.user(SUMMARY_INSTRUCTION)
    answer = s.message(MAIN_MODEL, "<analysis>\nThe user first asked about the parser.\n"
                       "</analysis>\n\n<summary>\n" + SUMMARY + "</summary>")
    s.turn(label, summariser, answer, expect)
    text = "Analysis:\nThe user first asked about the parser.\n\nSummary:\n" + SUMMARY + "."
    if new_format:
        quoted = (NEW_CONTINUATION + "Summary:\n" + SUMMARY + "\n\nIf you need specific details "
                  "from before compaction (like exact code snippets), read the full transcript "
                  "at: /home/dev/.claude/projects/app/abc.jsonl\nPlease continue the "
                  "conversation from where we left it off without asking the user any further "
                  "questions.")
    else:
        quoted = OLD_CONTINUATION + text
    continued = s.agent()
    continued.user(quoted, "Caveat: The messages below were generated by the user while "
                   "running local commands.", "<command-name>/compact</command-name>")
    return continued


def claude_code_day(seed=1, user_id_form="json", header=True):
    """A full Claude Code session; returns the Session with its records and expectations."""
    s = Session(seed=seed, user_id_form=user_id_form, header=header)
    main = s.agent()
    s.quota("quota")
    main.user("Fix the failing test in parser.py")
    s.turn("A1", main, s.message(MAIN_MODEL, "Let me look.", s.tool_use("Read", file_path="/app/parser.py")),
           ("A", "main", None, None))
    s.side_call("title", "Please write a 5-10 word title for: Fix the failing test in parser.py")
    main.results("def parse_line(line):\n    return line.split(',')")
    s.turn("A2", main, s.message(MAIN_MODEL, s.tool_use("Bash", command="pytest -q")), ("A", "main", "A1", None))
    main.results("1 failed: test_parse_quotes")
    task = s.tool_use("Task", description="Find callers", prompt="Find every caller of parse_line "
                      "in /app and report file and line.", subagent_type="general-purpose")
    s.turn("A3", main, s.message(MAIN_MODEL, "I'll search in parallel.", task), ("A", "main", "A2", None))
    sub = s.agent(system=subagent_system())
    sub.user(task["input"]["prompt"])
    s.turn("S1", sub, s.message(MAIN_MODEL, s.tool_use("Grep", pattern="parse_line")), ("A", "S", "A3", "A3"))
    sub.results("/app/cli.py:12\n/app/io.py:40")
    s.turn("S2", sub, s.message(MAIN_MODEL, "Two callers: cli.py:12 and io.py:40."), ("A", "S", "S1", "A3"))
    main.results("Two callers: cli.py:12 and io.py:40.")
    s.turn("A4", main, s.message(MAIN_MODEL, "Fixed the quote handling; tests pass."), ("A", "main", "A3", None))
    rewind_point = copy.deepcopy(main.messages)
    main.user("Now also add a docstring")
    s.turn("A5", main, s.message(MAIN_MODEL, "Added a docstring."), ("A", "main", "A4", None))
    # Esc Esc: back to before "add a docstring", a different prompt: a second child of A4.
    main.messages = rewind_point
    main.user("Actually, rename parse_line to parse_row instead")
    s.turn("A6", main, s.message(MAIN_MODEL, s.tool_use("Edit", file_path="/app/parser.py")), ("A", "B", "A4", None))
    main.results("ok")
    # Overloaded once: Claude Code retries the same body; both stay on branch B.
    s.send("A7-failed", main.body(), None, status=529, expect=("A", "B", "A6", None))
    agent_call = s.tool_use("Agent", description="Update callers", subagent_type="general-purpose",
                            prompt="Rename parse_line to parse_row in /app/cli.py and /app/io.py.")
    s.turn("A7", main, s.message(MAIN_MODEL, agent_call), ("A", "B", "A6", None))
    sub2 = s.agent(system=subagent_system())
    sub2.user(agent_call["input"]["prompt"])
    s.turn("T1", sub2, s.message(MAIN_MODEL, s.tool_use("Edit", file_path="/app/cli.py")), ("A", "T", "A7", "A7"))
    s.side_call("topic", "Analyze if this message indicates a new conversation topic: ok")
    sub2.results("ok")
    s.turn("T2", sub2, s.message(MAIN_MODEL, "Both callers renamed."), ("A", "T", "T1", "A7"))
    main.results("Both callers renamed.")
    s.turn("A8", main, s.message(MAIN_MODEL, "Renamed everywhere."), ("A", "B", "A7", None))
    continued = compact(s, main, "C0", ("A", "B", "A8", None))
    s.turn("K1", continued, s.message(MAIN_MODEL, s.tool_use("Bash", command="pytest")), ("A", "K", "C0", None))
    continued.results("12 passed")
    s.turn("K2", continued, s.message(MAIN_MODEL, "All green."), ("A", "K", "K1", None))
    continued.user("thanks, now the README")
    s.turn("K3", continued, s.message(MAIN_MODEL, "Updated README."), ("A", "K", "K2", None))
    later = compact(s, continued, "C1", ("A", "K", "K3", None), new_format=True)
    s.turn("L1", later, s.message(MAIN_MODEL, "Continuing: running the suite."), ("A", "L", "C1", None))
    return s


def parallel_strangers(seed=7):
    """Two sessions opening with the same words at once, plus a plain SDK client."""
    first, second = Session(seed=seed), Session(seed=seed + 1)
    plain = Session(seed=seed + 2, claude_code=False, domain="api.example.com")
    second.now = first.now
    for s, tag in ((first, "P"), (second, "Q")):
        agent = s.agent()
        agent.user("hi")
        s.turn(f"{tag}1", agent, s.message(MAIN_MODEL, "Hello! What shall we work on?"), (tag, "main", None, None))
        agent.user(f"list the files ({tag})")
        s.turn(f"{tag}2", agent, s.message(MAIN_MODEL, "Here they are."), (tag, "main", f"{tag}1", None))
    chat = Agent(plain, "You are a helpful assistant.", model=SMALL_MODEL, tools=None)
    chat.user("What is 2+2?")
    body = chat.body()
    body.pop("tools")
    body.pop("metadata")
    plain.send("R1", body, plain.message(SMALL_MODEL, "4"), expect=("R", "main", None, None))
    chat.answer(plain.message(SMALL_MODEL, "4"))
    chat.user("And times 3?")
    body = chat.body()
    body.pop("tools")
    body.pop("metadata")
    plain.send("R2", body, plain.message(SMALL_MODEL, "12"), expect=("R", "main", "R1", None))
    return [first, second, plain]


def link_mismatches(rows, sessions):
    """Every way the stored rows (request_id → dict) differ from the expected links.

    Conversation and branch labels must map one-to-one onto stored ids; parents
    and tasks must be the labelled requests; unlabelled requests stay unlinked.
    """
    problems, conv_ids, branch_ids = [], {}, {}
    for s in sessions:
        for label, expect in s.expected.items():
            row = rows.get(s.ids[label])
            if row is None:
                problems.append(f"{label}: not stored")
                continue
            if expect is None:
                if row["conversation_id"] or row["parent_request_id"]:
                    problems.append(f"{label}: linked but should not be")
                continue
            conv, branch, parent, task = expect
            conv_ids.setdefault((id(s), conv), set()).add(row["conversation_id"])
            branch_ids.setdefault((id(s), conv, branch), set()).add(row["branch_id"])
            want_parent = s.ids.get(parent) if parent else None
            if row["parent_request_id"] != want_parent:
                problems.append(f"{label}: parent {row['parent_request_id']} != {parent} ({want_parent})")
            want_task = s.ids.get(task) if task else None
            if row["parent_task_request_id"] != want_task or bool(row["is_subtask"]) != bool(task):
                problems.append(f"{label}: task {row['parent_task_request_id']} != {task}")
    for mapping in (conv_ids, branch_ids):
        owners = {}
        for key, found in mapping.items():
            if len(found) != 1 or None in found:
                problems.append(f"{key[1:]}: stored as {sorted(map(str, found))}")
                continue
            stored = next(iter(found))
            if len(key) == 3:  # a branch id is only unique within its conversation
                stored = (next(iter(conv_ids[key[:2]])), stored)
            owners.setdefault(stored, []).append(key[1:])
        problems += [f"labels {keys} share one stored id" for keys in owners.values() if len(keys) > 1]
    return problems
