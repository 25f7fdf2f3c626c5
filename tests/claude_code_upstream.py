"""A stand-in Anthropic API that walks real Claude Code through a scripted agent loop.

Run it as `python -m tests.claude_code_upstream --port 0` (first stdout line
`listening on <port>`), or `start_claude_code_upstream()` from a test. It is the fake
upstream (tests/fake_upstream.py: same recording of requests, same SSE and usage
rules) with two differences:

- `/v1/messages` answers from a script that the prompt carries between
  `<nexus-script>` and `</nexus-script>`: a JSON list of steps, one per assistant turn.
  A step is `{"tool": name, "input": {...}}` (a tool call, when the request offers
  that tool), `{"agent": subagent_type, "description": …, "script": [steps]}` (an
  Agent call whose prompt carries the sub-agent's own script), or `{"text": …}`.
  The turn is the number of assistant messages already in the conversation; past the
  last step, and for requests without a script (Claude Code's side calls), the answer
  is plain text. A request without tools never gets a tool call.
- Every answer carries the unified rate-limit headers of a subscription, per
  credential (the Authorization or x-api-key value): the 5-hour utilization starts at
  `--unified-start` and rises by `--unified-step` with each answer; the 7-day one at
  a quarter of that pace. The windows reset at fixed times counted from start-up.
"""
import argparse
import contextlib
import json
import re
import sys
import time
import uuid

from tests import fake_upstream as fake
from tests import fake_upstream_data as data

SCRIPT = re.compile(r"<nexus-script>(.*?)</nexus-script>", re.DOTALL)
FIVE_HOURS, SEVEN_DAYS = 5 * 3600, 7 * 86400
WARNING_AT = 0.8


def script_tag(steps):
    """The text that carries `steps` in a prompt."""
    return f"<nexus-script>{json.dumps(steps, separators=(',', ':'))}</nexus-script>"


def _texts(message):
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return [content]
    return [b.get("text") or "" for b in content or [] if isinstance(b, dict)
            and b.get("type") == "text"]


def find_script(request):
    """The steps the first user message carries, or None."""
    messages = request.get("messages") or []
    first = next((m for m in messages if isinstance(m, dict) and m.get("role") == "user"), None)
    for text in _texts(first):
        match = SCRIPT.search(text)
        if match:
            try:
                steps = json.loads(match.group(1))
            except ValueError:
                return None
            return steps if isinstance(steps, list) else None
    return None


def turn(request):
    """How many assistant turns the conversation already holds."""
    return sum(1 for m in request.get("messages") or []
               if isinstance(m, dict) and m.get("role") == "assistant")


def _tool_call(name, tool_input):
    return {"type": "tool_use", "id": "toolu_01" + uuid.uuid4().hex[:22], "name": name,
            "input": tool_input}


def scripted_content(request):
    """The content blocks of the answer to `request`, following its script."""
    steps = find_script(request)
    offered = {t.get("name") for t in request.get("tools") or [] if isinstance(t, dict)}
    step = steps[turn(request)] if steps and turn(request) < len(steps) else None
    if isinstance(step, dict) and step.get("tool") in offered:
        return [{"type": "text", "text": f"Step {turn(request) + 1}: {step['tool']}."},
                _tool_call(step["tool"], step.get("input") or {})]
    if isinstance(step, dict) and "agent" in step and "Agent" in offered:
        prompt = f"{step.get('prompt', 'Look around the repository.')} {script_tag(step.get('script') or [])}"
        return [{"type": "text", "text": f"Step {turn(request) + 1}: a sub-agent."},
                _tool_call("Agent", {"description": step.get("description", "Explore the repo"),
                                     "prompt": prompt, "subagent_type": step["agent"]})]
    if isinstance(step, dict) and "text" in step:
        return [{"type": "text", "text": step["text"]}]
    return [{"type": "text", "text": "Done." if steps else "Nexus test session"}]


def build_message(request, cache):
    """The message answering `request`, with usage from the fake upstream's cache rules."""
    content = scripted_content(request)
    usage = data.input_usage(request, cache)
    usage.update(output_tokens=data.output_tokens(content), service_tier="standard")
    return {"id": "msg_01" + uuid.uuid4().hex[:22], "type": "message", "role": "assistant",
            "model": request.get("model") or data.DEFAULT_MODEL, "content": content,
            "stop_reason": "tool_use" if content[-1]["type"] == "tool_use" else "end_turn",
            "stop_sequence": None, "usage": usage}


def unified_headers(five_hour, seven_day, started, claim="five_hour"):
    """The unified window headers a subscription answer carries (utilization 0..1)."""
    five_reset, seven_reset = int(started) + FIVE_HOURS, int(started) + SEVEN_DAYS

    def status(value):
        return "rejected" if value >= 1 else "allowed_warning" if value >= WARNING_AT else "allowed"

    overall = max((five_hour, "5h"), (seven_day, "7d"))
    return {
        "anthropic-ratelimit-unified-status": status(overall[0]),
        "anthropic-ratelimit-unified-reset": str(five_reset if overall[1] == "5h" else seven_reset),
        "anthropic-ratelimit-unified-representative-claim": claim,
        "anthropic-ratelimit-unified-fallback-percentage": "0.5",
        "anthropic-ratelimit-unified-overage-status": "rejected",
        "anthropic-ratelimit-unified-overage-disabled-reason": "org_level_disabled",
        "anthropic-ratelimit-unified-5h-status": status(five_hour),
        "anthropic-ratelimit-unified-5h-reset": str(five_reset),
        "anthropic-ratelimit-unified-5h-utilization": f"{min(five_hour, 1.0):.4f}",
        "anthropic-ratelimit-unified-7d-status": status(seven_day),
        "anthropic-ratelimit-unified-7d-reset": str(seven_reset),
        "anthropic-ratelimit-unified-7d-utilization": f"{min(seven_day, 1.0):.4f}",
    }


class Handler(fake.Handler):
    server_version = "claude-code-upstream/1"

    def messages(self):
        request = self._request_json()
        problem = ("There was an error parsing the body as JSON" if request is None
                   else data.validate_messages_request(request))
        if problem:
            return self._error(400, "invalid_request_error", problem)
        with self.server.state.lock:
            message = build_message(request, self.server.state.cache)
        if request.get("stream"):
            return self._stream(message)
        return self._json(200, message)

    def _headers(self):
        headers = {k: v for k, v in super()._headers().items()
                   if not k.startswith("anthropic-ratelimit-unified-")}
        credential = self.headers.get("Authorization") or self.headers.get("x-api-key") or ""
        server = self.server
        with server.state.lock:
            answered = server.answered.get(credential, 0)
            server.answered[credential] = answered + 1
        five = server.unified_start + server.unified_step * answered
        headers.update(unified_headers(five, five / 4, server.started))
        return headers


def make_server(host="127.0.0.1", port=0, start=0.10, step=0.01, verbose=False):
    """A scripted upstream bound to (host, port), not yet serving."""
    server = fake.Server((host, port), Handler)
    server.state = fake.State()
    server.verbose = verbose
    server.unified_start, server.unified_step = start, step
    server.answered = {}
    server.started = time.time()
    return server


@contextlib.contextmanager
def start_claude_code_upstream(start=0.10, step=0.01, timeout=10):
    """Run the scripted upstream in its own process on a free loopback port; stop it after.

    Yields a `tests.fake_upstream.FakeUpstream` (`url`, `requests()`, `clear()`).
    """
    with fake.start_fake_upstream(timeout=timeout, module="tests.claude_code_upstream",
                                  args=("--unified-start", str(start),
                                        "--unified-step", str(step))) as upstream:
        yield upstream


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--unified-start", type=float, default=0.10,
                        help="5-hour utilization of a credential's first answer (0..1)")
    parser.add_argument("--unified-step", type=float, default=0.01,
                        help="added to the 5-hour utilization with each answer")
    parser.add_argument("--verbose", action="store_true", help="log requests to stderr")
    args = parser.parse_args(argv)
    server = make_server(args.host, args.port, args.unified_start, args.unified_step,
                         args.verbose)
    print(f"listening on {server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    sys.exit(main())
