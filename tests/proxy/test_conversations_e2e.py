"""A Claude Code session sent through the real proxy with the SDK links as expected.

The fake upstream answers each turn; the session is built from its real answers
(a Task call is steered with tool_choice and an enum in the tool's schema, the
summary of a compaction is whatever the summariser answered), so the links are
made from exactly what went over the wire.
"""
import copy

import pytest

from common import cli
from tests import scenarios
from tests.fake_upstream import start_fake_upstream
from tests.proxy.conftest import sdk
from tests.proxy.rows import wait_for_rows
from tests.proxy_server import running_proxy

PROMPT = "Find every caller of parse_line in /app and report file and line."
TASK_TOOL = {"name": "Task", "description": "Launch a sub-agent.",
             "input_schema": {"type": "object", "properties": {
                 "description": {"type": "string", "enum": ["Find callers"]},
                 "prompt": {"type": "string", "enum": [PROMPT]}}}}
MAIN_TOOLS = [TASK_TOOL] + scenarios.TOOLS[:5]
MODEL = "claude-sonnet-4-6"  # the SDK warns (an error here) about deprecated model ids


def _plain(message):
    """The SDK's message as the dict Claude Code sends back as an assistant turn."""
    blocks = []
    for block in message.content:
        if block.type == "text":
            blocks.append({"type": "text", "text": block.text})
        elif block.type == "tool_use":
            blocks.append({"type": "tool_use", "id": block.id, "name": block.name, "input": block.input})
    return {"content": blocks}


class Live:
    """Sends an agent's turns through the proxy; remembers ids and expected links."""

    def __init__(self, client, session):
        self.client, self.s = client, session
        self.ids, self.expected = {}, {}

    def turn(self, label, agent, expect, stream=False, **extra):
        body = agent.body(**{"max_tokens": 4096, **extra})
        body.pop("stream")
        if not body.get("tools"):
            body.pop("tools", None)
        headers = self.s.headers()
        if stream:
            with self.client.messages.stream(**body, extra_headers=headers) as st:
                message = st.get_final_message()
                request_id = st.response.headers["x-nexus-request-id"]
        else:
            raw = self.client.messages.with_raw_response.create(**body, extra_headers=headers)
            message, request_id = raw.parse(), raw.headers["x-nexus-request-id"]
        self.ids[label], self.expected[label] = request_id, expect
        if agent is not None:
            agent.answer(_plain(message))
        return message


def _play(live):
    s = live.s
    main = s.agent(model=MODEL)
    main.tools = MAIN_TOOLS
    quota = scenarios.Agent(s, None, model=scenarios.SMALL_MODEL, tools=None)
    quota.messages = [{"role": "user", "content": "quota"}]
    live.turn("quota", quota, None, max_tokens=1)
    main.user("Fix the failing test in parser.py")
    live.turn("A1", main, ("A", "main", None, None), stream=True,
              tool_choice={"type": "tool", "name": "Task"})
    sub = s.agent(system=scenarios.subagent_system(), model=MODEL)
    sub.tools = scenarios.TOOLS[:5]
    sub.user(PROMPT)
    live.turn("S1", sub, ("A", "S", "A1", "A1"), tool_choice={"type": "any"})
    sub.results("/app/cli.py:12")
    live.turn("S2", sub, ("A", "S", "S1", "A1"), stream=True)
    title = scenarios.Agent(s, [{"type": "text", "text": "Write a 5-10 word title."}],
                            model=scenarios.SMALL_MODEL, tools=None)
    title.messages = [{"role": "user", "content": "Please write a title for: fix parser"}]
    live.turn("title", title, None)
    main.results("One caller: /app/cli.py:12")
    live.turn("A2", main, ("A", "main", "A1", None), stream=True)
    rewind = copy.deepcopy(main.messages)
    main.user("Now also add a docstring")
    live.turn("A3", main, ("A", "main", "A2", None))
    main.messages = rewind
    main.user("Actually, rename parse_line to parse_row")
    live.turn("A4", main, ("A", "B", "A2", None), stream=True)
    summariser = s.agent(model=MODEL)
    summariser.tools = MAIN_TOOLS
    summariser.messages = copy.deepcopy(main.messages)
    summariser.user(scenarios.SUMMARY_INSTRUCTION)
    summary = live.turn("C0", summariser, ("A", "B", "A4", None))
    continued = s.agent(model=MODEL)
    continued.tools = MAIN_TOOLS
    continued.user(scenarios.OLD_CONTINUATION + summary.content[0].text, "run the tests")
    live.turn("K1", continued, ("A", "K", "C0", None), stream=True)
    continued.user("thanks")
    live.turn("K2", continued, ("A", "K", "K1", None))


@pytest.fixture(scope="module")
def upstream():
    with start_fake_upstream() as fake:
        yield fake


def test_a_claude_code_session_links_through_the_proxy(db_url, upstream, tmp_path, capsys):
    env = {"CLAUDE_API_BASE_URL": upstream.url, "DATABASE_URL": db_url}
    with running_proxy(env, cwd=str(tmp_path)) as proxy:
        live = Live(sdk(proxy.url), scenarios.Session(seed=11))
        _play(live)
        rows = wait_for_rows(db_url, len(live.ids))
    by_id = {r["request_id"]: r for r in rows}
    assert len(by_id) == len(live.ids) == 11
    assert scenarios.link_mismatches(by_id, [live]) == []
    types = {label: by_id[rid]["request_type"] for label, rid in live.ids.items()}
    assert (types["quota"], types["title"], types["A1"]) == ("quota", "query_evaluation", "inference")
    assert cli.main(["relink"], environ={"DATABASE_URL": db_url}) == 0
    assert "inference requests: 9, linked to a parent: 8 (88.9%), rows changed: 0" in capsys.readouterr().out
