"""Synthetic Claude Code traffic as the proxy's records: pure, deterministic per seed.

`day_of_records(rng, day, rows)` returns about `rows` records (the proxy's hand-off,
docs/architecture.md) for one UTC day, sorted by time. Bodies are built the way Claude
Code talks: each request resends the whole conversation, a tool call's result comes
back in the next request, a rewind resends an earlier prefix with a different message,
a Task call's prompt opens a sub-agent's conversation, and side calls and quota probes
go to a small model. Streams are real SSE with deltas; usage has the API's shape
(`cache_creation` split into 5-minute and 1-hour writes). `bench.seed` turns records
into rows with `common.recording.rows.derive` and links them with `common.recording.conversation_index`,
so the columns are what the recorder would have stored.
"""
import datetime
import itertools
import json
import random
import uuid

DOMAINS = tuple(f"{team}.{org}.example" for org in ("acme", "globex", "initech", "umbrella")
                for team in ("web", "data", "infra", "mobile", "ml"))
ACCOUNTS = tuple(f"acc_{n:02d}" for n in range(1, 9))
MODELS = (("claude-sonnet-4-5-20250929", 55), ("claude-opus-4-1-20250805", 15),
          ("claude-sonnet-4-20250514", 15), ("claude-haiku-4-5-20251001", 15))
SIDE_MODEL = "claude-3-5-haiku-20241022"
ERRORS = (
    (429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"),
    (529, "overloaded_error", "Overloaded"),
    (500, "api_error", "Internal server error"),
    (400, "invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum"),
)
SYSTEM_PROMPT = ("You are Claude Code, Anthropic's official CLI for Claude. You are an interactive "
                 "CLI tool that helps users with software engineering tasks.")
AGENT_PROMPT = ("You are an agent for Claude Code, Anthropic's official CLI for Claude. Given the "
                "user's message, use the tools available to complete the task.")
SIDE_PROMPT = "Analyze if this message indicates a new conversation topic. Answer in JSON."
PROMPTS = ("Fix the failing test in tests/test_api.py", "Add pagination to the users endpoint",
           "Why is the build slow?", "Refactor the payment module into smaller functions",
           "Write a migration that adds an index on orders.created_at",
           "Explain what this regular expression does: ^(?:[a-z0-9]+\\.)+[a-z]{2,}$")
# Where each conversation runs (docs/analytics.md): drawn from its session id, so that the
# random stream, hence the rest of the traffic, is the same as before these existed.
PROJECTS = ("api", "web", "billing", "infra", "mobile", "data-pipeline")
BRANCHES = ("main", "feature/search", "fix/login", "chore/deps", "feature/export")
DEVELOPERS_PER_DOMAIN = 3
TOOLS = ("Read", "Edit", "Bash", "Grep", "Glob")
TOOL_DEFS = [{"name": name, "description": f"The {name} tool.",
              "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}}
             for name in TOOLS + ("Task",)]
REQUEST_HEADERS = {"content-type": "application/json", "anthropic-version": "2023-06-01",
                   "anthropic-beta": "claude-code-20250219,oauth-2025-04-20",
                   "authorization": "[redacted]", "user-agent": "claude-cli/2.0.14 (external, cli)",
                   "x-app": "cli"}


def _vocabulary(size=20_000):
    """Pseudo-words, the same on every run: consonant-vowel syllables."""
    out, consonants, vowels = [], "bdfgklmnprstvz", "aeiou"
    for n in range(size):
        word, n = "", n + 1
        while n:
            n, rest = divmod(n, len(consonants) * len(vowels))
            word += consonants[rest // len(vowels)] + vowels[rest % len(vowels)]
        out.append(word)
    return out


VOCABULARY = _vocabulary()
# Zipf's law: the word of rank r is used in proportion to 1/r, as in real text.
_CUMULATIVE = list(itertools.accumulate(1 / rank for rank in range(1, len(VOCABULARY) + 1)))


def prose(seed, words):
    """`words` words of text drawn by Zipf's law, fixed by `seed` (a str): a tool result's
    or an answer's searchable text, without drawing from the conversation's random stream."""
    if words <= 0:
        return ""
    rng = random.Random(seed)
    return " " + " ".join(rng.choices(VOCABULARY, cum_weights=_CUMULATIVE, k=words))


def _uuid(rng):
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _usage(rng, turn, output=True):
    """A usage object as the API sends it: cache writes split by TTL (Claude Code uses 1 h)."""
    written = rng.randint(0, 8_000)
    five = written if rng.random() < 0.15 else 0
    return {"input_tokens": rng.randint(3, 4_000),
            "cache_creation_input_tokens": written,
            "cache_read_input_tokens": min(180_000, turn * rng.randint(2_000, 6_000)) if turn else 0,
            "cache_creation": {"ephemeral_5m_input_tokens": five,
                               "ephemeral_1h_input_tokens": written - five},
            "output_tokens": rng.randint(20, 4_000) if output else 1,
            "service_tier": "standard"}


def _ratelimit_headers(rng, when):
    reset5 = int((when + datetime.timedelta(hours=rng.uniform(0.2, 5))).timestamp())
    reset7 = int((when + datetime.timedelta(days=rng.uniform(0.5, 7))).timestamp())
    util5 = rng.uniform(0, 1.05)
    return {
        "anthropic-ratelimit-unified-status": "rejected" if util5 > 1 else "allowed",
        "anthropic-ratelimit-unified-5h-status": "rejected" if util5 > 1 else "allowed",
        "anthropic-ratelimit-unified-5h-utilization": f"{util5:.2f}",
        "anthropic-ratelimit-unified-5h-reset": str(reset5),
        "anthropic-ratelimit-unified-7d-status": "allowed",
        "anthropic-ratelimit-unified-7d-utilization": f"{rng.uniform(0, 0.9):.2f}",
        "anthropic-ratelimit-unified-7d-reset": str(reset7),
        "anthropic-ratelimit-unified-representative-claim": "five_hour",
    }


def _sse(message):
    """The stream the API sends for `message`: start, blocks with deltas, delta, stop."""
    usage = message["usage"]
    start = dict(message, content=[], stop_reason=None, usage=dict(usage, output_tokens=1))
    events = [("message_start", {"type": "message_start", "message": start})]
    for index, block in enumerate(message["content"]):
        kind = block["type"]
        if kind == "tool_use":
            empty, deltas = dict(block, input={}), [{"type": "input_json_delta",
                                                     "partial_json": json.dumps(block["input"])}]
        elif kind == "thinking":
            empty = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": block["thinking"]},
                      {"type": "signature_delta", "signature": block["signature"]}]
        else:
            empty, deltas = {"type": "text", "text": ""}, [{"type": "text_delta", "text": block["text"]}]
        events.append(("content_block_start", {"type": "content_block_start", "index": index,
                                               "content_block": empty}))
        events += [("content_block_delta", {"type": "content_block_delta", "index": index,
                                            "delta": delta}) for delta in deltas]
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    # The closing delta carries the output count; the accumulator merges it into the start's.
    events.append(("message_delta", {"type": "message_delta",
                                     "usage": {"output_tokens": usage["output_tokens"]},
                                     "delta": {"stop_reason": message["stop_reason"],
                                               "stop_sequence": None}}))
    events.append(("message_stop", {"type": "message_stop"}))
    return "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events)


class _Conversation:
    """Mutable state of one conversation (or sub-agent) while its records are generated."""

    def __init__(self, rng, start, domain=None, prompt=None):
        self.rng = rng
        self.domain = domain or rng.choice(DOMAINS)
        self.account = ACCOUNTS[DOMAINS.index(self.domain) % len(ACCOUNTS)]
        self.session = _uuid(rng)
        self.model = rng.choices([m for m, _ in MODELS], weights=[w for _, w in MODELS])[0]
        # A ticket number makes first prompts, hence message hashes, differ between
        # conversations, as real prompts do.
        self.system = AGENT_PROMPT if prompt else SYSTEM_PROMPT
        drawn = int(self.session.replace("-", "")[:8], 16)
        self.developer = f"{self.domain.split('.')[0]}-dev{drawn % DEVELOPERS_PER_DOMAIN}"
        self.project = f"/home/{self.developer}/{PROJECTS[drawn // 7 % len(PROJECTS)]}"
        self.branch = BRANCHES[drawn // 61 % len(BRANCHES)]
        self.pending = {"role": "user", "content": prompt or
                        f"{rng.choice(PROMPTS)} (ticket #{rng.randrange(10**6)})"}
        self.history = []
        self.time = start
        self.text_words = 0  # words of prose in each tool result (a quarter in answers)


def _environment(conv):
    """The environment Claude Code 2.1 names: the main loop with its git branch, a
    sub-agent in `<env>` without one."""
    if conv.system == AGENT_PROMPT:
        return f"\n<env>\nWorking directory: {conv.project}\nIs directory a git repo: Yes\n</env>"
    return (f"\n# Environment\n - Primary working directory: {conv.project}\n"
            f" - Is a git repository: true\n\ngitStatus: This is the git status at the start "
            f"of the conversation.\nCurrent branch: {conv.branch}\n")


def _record(conv, when, body, ok, stream, message=None):
    """One record: the request as sent, the answer as received."""
    rng = conv.rng
    request_id = _uuid(rng)
    response_headers = {"content-type": "text/event-stream" if stream and ok else "application/json",
                        "request-id": "req_" + request_id.replace("-", "")[:24]}
    if rng.random() < 0.3:
        response_headers.update(_ratelimit_headers(rng, when))
    if ok:
        message = dict(message, id="msg_" + request_id.replace("-", "")[:24])
        status, response = 200, _sse(message) if stream else json.dumps(message)
        duration = rng.lognormvariate(8.3, 0.8)
        first = round(min(duration, rng.lognormvariate(6.9, 0.6)), 1) if stream else None
    else:
        status, etype, text = rng.choice(ERRORS)
        response = json.dumps({"type": "error", "error": {"type": etype, "message": text}})
        duration, first, stream = rng.uniform(50, 2000), None, False
    body = dict(body, stream=stream, metadata={"user_id": json.dumps(
        {"device_id": conv.developer, "account_uuid": "", "session_id": conv.session})})
    return {"request_id": request_id, "timestamp": when, "domain": conv.domain, "method": "POST",
            "path": "/v1/messages", "query": "", "request_headers": dict(REQUEST_HEADERS),
            "request_body": json.dumps(body).encode(), "response_status": status,
            "response_headers": response_headers, "response_body": response.encode(),
            "stream": stream, "duration_ms": round(duration, 1), "first_token_ms": first,
            "error": None, "upstream_request_id": response_headers["request-id"],
            "auth_hash": None, "client_key_id": None, "account_id": conv.account,
            "session_header": conv.session}


def _answer(conv, turn, tool, tool_input):
    rng = conv.rng
    tool_id = "toolu_" + _uuid(rng).replace("-", "")[:24]
    return {"type": "message", "role": "assistant", "model": conv.model,
            "content": [{"type": "thinking", "thinking": "The user wants a focused change.",
                         "signature": "sig" + tool_id[-8:]},
                        {"type": "text", "text": f"Working on it (turn {turn + 1})."
                         + prose(tool_id, conv.text_words // 4)},
                        {"type": "tool_use", "id": tool_id, "name": tool, "input": tool_input}],
            "stop_reason": "tool_use", "stop_sequence": None, "usage": _usage(rng, turn)}


def _side_call(conv, when, kind):
    """Claude Code's small calls: a topic check (query_evaluation) or a quota probe."""
    rng = conv.rng
    quota = kind == "quota"
    body = {"model": SIDE_MODEL, "max_tokens": 1 if quota else 512,
            "messages": [{"role": "user", "content": "quota" if quota else conv.pending["content"]
                          if isinstance(conv.pending["content"], str) else "Continue."}]}
    if not quota:
        body["system"] = [{"type": "text", "text": SIDE_PROMPT}]
    usage = dict(_usage(rng, 0, output=not quota), cache_creation_input_tokens=0,
                 cache_creation={"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0})
    message = {"type": "message", "role": "assistant", "model": SIDE_MODEL,
               "content": [{"type": "text", "text": '{"isNewTopic": false}'}],
               "stop_reason": "end_turn" if not quota else "max_tokens", "stop_sequence": None,
               "usage": usage}
    return _record(conv, when, body, rng.random() > 0.03, rng.random() < 0.5, message)


def _conversation(conv, turns, out, depth=0):
    """Append the records of `turns` requests of `conv`, its side calls and sub-agents."""
    rng = conv.rng
    answered = []  # the history after each answered request: where a rewind may go back to
    for turn in range(turns):
        conv.time += datetime.timedelta(seconds=rng.uniform(3, 90))
        if len(answered) > 3 and rng.random() < 0.06:  # rewind: edit an earlier message
            answered = answered[:rng.randrange(1, len(answered) - 1)]
            conv.history = answered[-1]
            conv.pending = {"role": "user", "content": f"Actually, try another way ({turn})."}
        messages = conv.history + [conv.pending]
        spawn = depth == 0 and rng.random() < 0.04
        tool = "Task" if spawn else TOOLS[turn % len(TOOLS)]
        task_prompt = (f"Investigate src/module_{turn}.py for {conv.session[:8]} and report what "
                       f"it does (request {turn}).")
        tool_input = ({"description": "Investigate a module", "subagent_type": "general-purpose",
                       "prompt": task_prompt} if spawn else {"path": f"src/module_{turn}.py"})
        message = _answer(conv, turn, tool, tool_input)
        body = {"model": conv.model, "max_tokens": 32000, "tools": TOOL_DEFS,
                "system": [{"type": "text", "text": conv.system + _environment(conv)}],
                "messages": messages}
        ok = rng.random() > 0.03
        out.append(_record(conv, conv.time, body, ok, rng.random() < 0.85, message))
        if not ok:
            continue  # Claude Code retries the same messages
        conv.history = messages + [{"role": "assistant", "content": message["content"]}]
        answered.append(conv.history)
        tool_id = message["content"][-1]["id"]
        result = f"contents of src/module_{turn}.py" + prose(tool_id + "/result", conv.text_words)
        if spawn:
            sub = _Conversation(rng, conv.time + datetime.timedelta(seconds=1), conv.domain, task_prompt)
            sub.developer, sub.project = conv.developer, conv.project
            sub.text_words = conv.text_words
            _conversation(sub, rng.randint(2, 12), out, depth + 1)
            conv.time = max(conv.time, sub.time)
            result = f"The module does step {turn}."
        conv.pending = {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": tool_id, "content": result}]}
        if rng.random() < 0.25:
            out.append(_side_call(conv, conv.time + datetime.timedelta(milliseconds=300),
                                  "query_evaluation"))


def day_of_records(rng, day, rows, text_words=0):
    """About `rows` records starting on `day` (a date), sorted by timestamp; tool results
    carry `text_words` words of prose (`prose`), answers a quarter as many."""
    out = []
    midnight = datetime.datetime.combine(day, datetime.time())
    while len(out) < rows:
        # Busier in working hours: the start hour is drawn from a bimodal mix.
        hour = min(23.99, max(0.0, rng.gauss(14, 4) if rng.random() < 0.8 else rng.uniform(0, 24)))
        conv = _Conversation(rng, midnight + datetime.timedelta(hours=hour))
        conv.text_words = text_words
        _conversation(conv, max(1, min(60, int(rng.expovariate(1 / 12)))), out)
        if rng.random() < 0.01:
            out.append(_side_call(_Conversation(rng, conv.time), conv.time, "quota"))
    out.sort(key=lambda r: r["timestamp"])
    return out
