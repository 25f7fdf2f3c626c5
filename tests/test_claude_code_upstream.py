"""The scripted upstream walks Claude Code through its script and reports rising limits."""
import http.client
import json
import pathlib

from tests import claude_code_upstream as up

DATA = pathlib.Path(__file__).parent / "data" / "claude_code"
TOOLS = [{"name": n, "input_schema": {"type": "object"}} for n in ("Agent", "Bash", "Read")]
STEPS = [{"tool": "Bash", "input": {"command": "ls"}},
         {"agent": "Explore", "description": "Look", "script": [{"text": "Found it."}]},
         {"text": "Finished."}]


def _request(turns, tools=TOOLS, steps=STEPS):
    first = {"role": "user", "content": [
        {"type": "text", "text": "<system-reminder>context</system-reminder>"},
        {"type": "text", "text": "Do it. " + up.script_tag(steps)}]}
    messages = [first]
    for _ in range(turns):
        messages += [{"role": "assistant", "content": [{"type": "text", "text": "step"}]},
                     {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                                                   "content": "ok"}]}]
    return {"model": "claude-opus-4-8", "max_tokens": 100, "tools": tools, "messages": messages}


def test_each_turn_takes_the_next_step():
    bash = up.scripted_content(_request(0))
    assert bash[-1]["type"] == "tool_use" and bash[-1]["name"] == "Bash"
    assert bash[-1]["input"] == {"command": "ls"}
    agent = up.scripted_content(_request(1))[-1]
    assert agent["name"] == "Agent" and agent["input"]["subagent_type"] == "Explore"
    # The sub-agent's prompt carries its own script, found again in its first message.
    sub = {"messages": [{"role": "user", "content": agent["input"]["prompt"]}]}
    assert up.find_script(sub) == [{"text": "Found it."}]
    assert up.scripted_content(_request(2)) == [{"type": "text", "text": "Finished."}]
    assert up.scripted_content(_request(3)) == [{"type": "text", "text": "Done."}]


def test_no_tool_call_where_the_request_offers_no_such_tool():
    assert [b["type"] for b in up.scripted_content(_request(0, tools=[]))] == ["text"]
    no_agent = up.scripted_content(_request(1, tools=TOOLS[1:]))
    assert [b["type"] for b in no_agent] == ["text"]


def test_a_request_without_a_script_gets_text():
    request = {"messages": [{"role": "user", "content": "quota"}]}
    assert up.find_script(request) is None
    assert up.scripted_content(request) == [{"type": "text", "text": "Nexus test session"}]


def test_the_script_is_found_in_real_claude_code_bodies():
    for mode in ("auth_token", "api_key"):
        main = json.loads((DATA / mode / "main.json").read_text())
        sub = json.loads((DATA / mode / "subagent.json").read_text())
        assert [s.get("tool") or s.get("agent") for s in up.find_script(main)][:3] == \
            ["Bash", "Read", "Explore"]
        assert up.find_script(sub)[0]["tool"] == "Bash"
        assert up.turn(main) == 0 and up.turn(sub) == 0


def test_unified_headers_say_how_full_each_window_is():
    headers = up.unified_headers(0.85, 0.2, started=1_000_000)
    assert headers["anthropic-ratelimit-unified-5h-utilization"] == "0.8500"
    assert headers["anthropic-ratelimit-unified-5h-status"] == "allowed_warning"
    assert headers["anthropic-ratelimit-unified-7d-status"] == "allowed"
    assert headers["anthropic-ratelimit-unified-5h-reset"] == str(1_000_000 + 5 * 3600)
    assert headers["anthropic-ratelimit-unified-status"] == "allowed_warning"
    assert up.unified_headers(1.2, 0.3, 0)["anthropic-ratelimit-unified-5h-status"] == "rejected"


def _post(port, credential):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/v1/messages", json.dumps(_request(0)),
                     {"content-type": "application/json", "authorization": f"Bearer {credential}"})
        response = conn.getresponse()
        response.read()
        return {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()


def test_utilization_rises_per_credential_over_http():
    with up.start_claude_code_upstream(start=0.5, step=0.1) as server:
        alice = [_post(server.port, "alice") for _ in range(3)]
        bob = _post(server.port, "bob")
    rising = [float(h["anthropic-ratelimit-unified-5h-utilization"]) for h in alice]
    assert rising == [0.5, 0.6, 0.7]
    assert float(bob["anthropic-ratelimit-unified-5h-utilization"]) == 0.5
    assert len({h["anthropic-ratelimit-unified-5h-reset"] for h in alice + [bob]}) == 1
