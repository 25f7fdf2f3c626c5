"""Search end to end: the official SDK through the real proxy (gunicorn, its writer
process), then the real dashboard's /api/search and /search, on SQLite and PostgreSQL.

The fake upstream answers a forced tool call with the first value of the tool's enum,
so a word can be made to occur only in one answer (the tool input), or only in one tool
result (which the client sends back, and resends with every later turn).
"""
import time

import requests

from tests.dashboard.server import running_dashboard
from tests.fake_upstream import start_fake_upstream
from tests.proxy.conftest import sdk
from tests.proxy.rows import wait_for_rows
from tests.proxy_server import running_proxy

KEY = "search-e2e-dashboard-key"
MODEL = "claude-sonnet-4-6"
PROBE = {"name": "Probe", "description": "Look for a needle.",
         "input_schema": {"type": "object", "properties": {
             "needle": {"type": "string", "enum": ["quetzal7 in the haystack"]}}}}


def _blocks(message):
    out = []
    for block in message.content:
        if block.type == "text":
            out.append({"type": "text", "text": block.text})
        elif block.type == "tool_use":
            out.append({"type": "tool_use", "id": block.id, "name": block.name, "input": block.input})
    return out


def _conversation(client):
    """Three turns; the request ids, and the tool call's id."""
    messages = [{"role": "user", "content": "Repair the wombat importer"}]
    with client.messages.stream(model=MODEL, max_tokens=256, messages=messages, tools=[PROBE],
                                tool_choice={"type": "tool", "name": "Probe"}) as stream:
        first = stream.get_final_message()
        ids = [stream.response.headers["x-nexus-request-id"]]
    call = next(b for b in first.content if b.type == "tool_use")
    messages += [{"role": "assistant", "content": _blocks(first)},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id,
                                               "content": "marmoset9: 2 lines found"}]}]
    for follow_up in ("Thanks, now summarise", None):
        raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=256,
                                                       messages=messages, tools=[PROBE])
        ids.append(raw.headers["x-nexus-request-id"])
        if follow_up:
            messages += [{"role": "assistant", "content": _blocks(raw.parse())},
                         {"role": "user", "content": follow_up}]
    return ids


def _search(dashboard, q, page=False):
    path = "/search" if page else "/api/search"
    response = requests.get(f"{dashboard.url}{path}", params={"q": q},
                            headers={"X-Dashboard-Key": KEY}, timeout=10)
    assert response.status_code == 200, response.text
    return response.text if page else [r["request_id"] for r in response.json()["results"]]


def test_words_of_one_answer_or_one_tool_result_find_that_request(db_url, tmp_path):
    with start_fake_upstream() as upstream, \
            running_proxy({"CLAUDE_API_BASE_URL": upstream.url, "DATABASE_URL": db_url},
                          cwd=str(tmp_path)) as proxy, \
            running_dashboard({"DATABASE_URL": db_url, "DASHBOARD_API_KEY": KEY},
                              str(tmp_path)) as dashboard:
        first, second, third = _conversation(sdk(proxy.url))
        assert len(wait_for_rows(db_url, 3)) == 3
        deadline = time.monotonic() + 15
        while not _search(dashboard, "marmoset9") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _search(dashboard, "marmoset9") == [second]   # one tool result, resent later
        assert _search(dashboard, "quetzal7") == [first]     # one answer's tool input
        assert _search(dashboard, "wombat importer") == [first]  # the prompt, and its echo
        assert _search(dashboard, "summarise") == [third]
        assert _search(dashboard, "fake answer") == [third, second, first]
        html = _search(dashboard, "marmoset9", page=True)
        assert f'href="/requests/{second}"' in html and "<mark>marmoset9</mark>" in html
        assert 'href="/conversations/' in html  # linked to its conversation
