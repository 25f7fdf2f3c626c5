"""Slack notifications: the right turns, sensibly truncated, never blocking a request."""
import json
import logging
import threading
import time

import requests
import responses

from common import config as nexus_config
from proxy import slack
from proxy.slack import Notifier
from tests import fake_upstream_data as data

HOOK = "https://hooks.slack.test/services/T000/B000/SECRETPATH"
TOOLS = [{"name": "get_weather", "description": "weather",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]


def record(question="What is 2+2?", stream=False, status=200, path="/v1/messages", tools=False,
           **request_extra):
    request = {"model": data.DEFAULT_MODEL, "max_tokens": 100,
               "messages": [{"role": "user", "content": "earlier"},
                            {"role": "assistant", "content": "ok"},
                            {"role": "user", "content": [{"type": "text", "text": question}]}],
               **request_extra}
    if tools:
        request["tools"] = TOOLS
    message = data.build_message(request, scenarios=("tool-use",) if tools else ())
    if stream:
        body = b"".join(data.encode_event(n, d) for n, d in data.sse_events(message))
    else:
        body = json.dumps(message).encode()
    return {"request_id": "req-1", "domain": "team.example", "method": "POST", "path": path,
            "request_body": json.dumps(request).encode(), "response_status": status,
            "response_body": body, "stream": stream}, message


def notifier():
    return Notifier(nexus_config.load({}))


@responses.activate
def test_a_turn_posts_question_answer_and_tool_calls():
    responses.post(HOOK)
    n = notifier()
    rec, message = record("Weather in Paris? use tool", tools=True)
    assert n.submit(rec, HOOK, (("channel", "#team"), ("username", "Claude")))
    n.flush()
    payload = json.loads(responses.calls[0].request.body)
    assert payload["channel"] == "#team" and payload["username"] == "Claude"
    text = payload["text"]
    assert "*User:* Weather in Paris? use tool" in text
    assert "`get_weather`" in text and "team.example" in text
    answer = "".join(b["text"] for b in message["content"] if b["type"] == "text")
    assert answer[:50] in text


@responses.activate
def test_a_streamed_turn_is_rebuilt_from_its_sse_body():
    responses.post(HOOK)
    n = notifier()
    rec, message = record("Tell me a story", stream=True)
    n.submit(rec, HOOK)
    n.flush()
    text = json.loads(responses.calls[0].request.body)["text"]
    assert message["content"][0]["text"][:40] in text and "Tell me a story" in text


@responses.activate
def test_only_successful_human_turns_are_posted():
    responses.post(HOOK)
    n = notifier()
    assert not n.submit(record(status=400)[0], HOOK)
    assert not n.submit(record(path="/v1/messages/count_tokens")[0], HOOK)
    assert not n.submit(record()[0], None)
    n.submit(record(max_tokens=1)[0], HOOK)  # a quota probe
    tool_result = record()[0]
    tool_result["request_body"] = json.dumps({"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "42"}]}]}).encode()
    n.submit(tool_result, HOOK)
    n.flush()
    assert len(responses.calls) == 0


@responses.activate
def test_long_text_is_truncated_and_escaped():
    responses.post(HOOK)
    n = notifier()
    n.submit(record("<b>" + "x" * 5000)[0], HOOK)
    n.flush()
    text = json.loads(responses.calls[0].request.body)["text"]
    question = next(line for line in text.splitlines() if line.startswith("*User:*"))
    assert len(question) < slack.QUESTION_CHARS + 20 and question.endswith("…")
    assert "&lt;b&gt;" in question and "<b>" not in question


@responses.activate
def test_failed_posts_are_logged_without_the_webhook_url(caplog):
    responses.post(HOOK, status=500)
    responses.post(HOOK + "2", body=requests.ConnectionError("refused"))
    n = notifier()
    with caplog.at_level(logging.WARNING, logger="nexus.proxy.slack"):
        n.submit(record()[0], HOOK)
        n.submit(record()[0], HOOK + "2")
        n.flush()
    assert n.failed == 2 and n.sent == 0
    assert "500" in caplog.text and "SECRETPATH" not in caplog.text


class _StuckSession:
    """A session whose posts hang until released, like an unreachable webhook."""

    def __init__(self):
        self.release = threading.Event()

    def post(self, *args, **kwargs):
        self.release.wait(10)
        raise requests.ConnectionError("timed out")


def test_a_hung_webhook_never_blocks_submit():
    session = _StuckSession()
    n = Notifier(nexus_config.load({}), session=session, queue_size=5)
    rec = record()[0]
    start = time.perf_counter()
    accepted = [n.submit(rec, HOOK) for _ in range(50)]
    elapsed = time.perf_counter() - start
    assert elapsed < 0.5
    assert accepted.count(True) <= 6 and n.dropped >= 44
    session.release.set()
    n.close()
