"""Slack notifications of inference turns: question, answer and tool calls.

`Notifier.submit` only puts the record on a bounded queue; a worker of its own
formats and posts it. A full queue drops the notification, a failed post is
logged (without the webhook URL, which is itself a credential); neither ever
touches the request that produced the record.
"""
import json
import logging
import queue
import threading

import requests

log = logging.getLogger("nexus.proxy.slack")

QUESTION_CHARS = 1000
ANSWER_CHARS = 2000
TOOL_INPUT_CHARS = 200
MAX_TOOLS = 5
POST_TIMEOUT = (3, 10)


def _truncate(text, limit):
    text = text.strip()
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def _escape(text):
    # Slack's mrkdwn treats these three as control characters.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _texts(content):
    if isinstance(content, str):
        return [content]
    return [b.get("text", "") for b in content or ()
            if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)]


def last_question(request):
    """The text of the last user message, without Claude Code's system reminders, or None."""
    for message in reversed(request.get("messages") or ()):
        if isinstance(message, dict) and message.get("role") == "user":
            parts = [t for t in _texts(message.get("content"))
                     if t.strip() and not t.lstrip().startswith("<system-reminder>")]
            return "\n".join(parts) or None
    return None


def _response_message(record):
    body = record.get("response_body") or b""
    if record.get("stream"):
        from common.accumulator import message_from_sse
        return message_from_sse(body).message
    return json.loads(body)


def is_inference_turn(record):
    """A successful POST /v1/messages: cheap enough for the hot path (no parsing)."""
    status = record.get("response_status") or 0
    return (record.get("method") == "POST" and record.get("path") == "/v1/messages"
            and 200 <= status < 300)


def format_message(record):
    """The Slack text for `record`, or None when it is not a human turn worth posting.

    Quota probes (max_tokens 1) and tool-result continuations (no user text) are skipped.
    """
    request = json.loads(record.get("request_body") or b"null")
    if not isinstance(request, dict) or request.get("max_tokens") == 1:
        return None
    question = last_question(request)
    if question is None:
        return None
    message = _response_message(record) or {}
    content = message.get("content") or []
    answer = "\n".join(_texts(content))
    tools = [b for b in content if isinstance(b, dict) and b.get("type") == "tool_use"]
    usage = message.get("usage") or {}
    lines = [f"*{_escape(record.get('domain') or '?')}* · {_escape(str(message.get('model') or request.get('model') or '?'))}"
             f" · {usage.get('input_tokens', 0)} in / {usage.get('output_tokens', 0)} out",
             f"*User:* {_escape(_truncate(question, QUESTION_CHARS))}"]
    if answer.strip():
        lines.append(f"*Claude:* {_escape(_truncate(answer, ANSWER_CHARS))}")
    for tool in tools[:MAX_TOOLS]:
        arguments = _truncate(json.dumps(tool.get("input", {}), ensure_ascii=False), TOOL_INPUT_CHARS)
        lines.append(f"*Tool:* `{_escape(str(tool.get('name')))}` {_escape(arguments)}")
    if len(tools) > MAX_TOOLS:
        lines.append(f"… and {len(tools) - MAX_TOOLS} more tool calls")
    return "\n".join(lines)


class Notifier:
    """Posts inference turns to Slack from its own worker; `submit` never blocks."""

    def __init__(self, config, session=None, queue_size=100):
        self._queue = queue.Queue(maxsize=queue_size)
        self._session = session or requests.Session()
        self._thread = None
        self._start_lock = threading.Lock()
        self.dropped = 0
        self.sent = 0
        self.failed = 0

    def submit(self, record, webhook_url, options=()):
        """Queue `record` for posting to `webhook_url`; False if skipped or dropped."""
        if not webhook_url or not is_inference_turn(record):
            return False
        self._ensure_worker()
        try:
            self._queue.put_nowait((record, webhook_url, tuple(options)))
            return True
        except queue.Full:
            self.dropped += 1
            if self.dropped in (1, 10, 100) or self.dropped % 1000 == 0:
                log.warning("slack queue full: %d notifications dropped so far", self.dropped)
            return False

    def _ensure_worker(self):
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="nexus-slack", daemon=True)
                    self._thread.start()

    def _run(self):
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self._post(*item)
            finally:
                self._queue.task_done()

    def _post(self, record, webhook_url, options):
        try:
            text = format_message(record)
            if text is None:
                return
            payload = {"text": text, **dict(options)}
            response = self._session.post(webhook_url, json=payload, timeout=POST_TIMEOUT)
            if response.status_code >= 300:
                raise RuntimeError(f"webhook answered {response.status_code}")
            self.sent += 1
        except Exception as exc:  # a notification must never take the worker down
            self.failed += 1
            log.warning("slack notification for request %s failed: %s",
                        record.get("request_id"), exc if isinstance(exc, RuntimeError) else type(exc).__name__)

    def flush(self):
        """Wait until every queued notification was posted or failed (tests, shutdown)."""
        if self._thread is not None:
            self._queue.join()

    def close(self, timeout=5.0):
        """Stop the worker after the queued notifications."""
        if self._thread is not None:
            try:
                self._queue.put(None, timeout=timeout)
            except queue.Full:
                return
            self._thread.join(timeout)
