"""The project's fake Anthropic API: a real HTTP/1.1 server with keep-alive and faults.

Run it as `python -m tests.fake_upstream --port 0`; its first stdout line is
`listening on <port>`. Tests use `start_fake_upstream()`, which runs it in its own
process. What it answers is built by the pure functions of tests.fake_upstream_data.

Request headers that steer it (all optional):
- `x-fake-scenario`: comma-separated; `error-NNN` (400 401 403 404 413 429 500 529),
  `overloaded-529`, `rate-limit-429`, `midstream-error`, `midstream-reset`,
  `slow-stream`, `hang-before-headers`, `trickle`, `tool-use`. `--scenario` sets a
  default for requests that send no header.
- `x-fake-delay-ms`: the pause of slow-stream (per event), trickle (per piece) and
  hang-before-headers (once).
- `x-fake-events`: text deltas in a stream (the text grows to fit), default 3.
- `x-fake-fail-after`: SSE events sent before a mid-stream fault, default 4.
- `x-fake-reset-delay-ms`: a pause before a midstream-reset's reset, default 0 (with
  fail-after 0, a pause lets the headers reach the client before the reset).
- `x-fake-delta-usage`: `output` (default: message_delta carries output_tokens only) or
  `full` (it repeats every count, as the API now does).
- `x-fake-retry-after`: the retry-after of a 429 or 529, default 1.
- `x-fake-unified`: the 5-hour utilisation in the unified rate-limit headers, which
  are also sent for any `Authorization: Bearer` (OAuth) request.
Every request but `/_fake/*` is recorded: GET /_fake/requests, DELETE /_fake/requests.
A record says how the exchange ended (`outcome`: answered, complete, error event, reset,
client disconnected) and when (`received_at`, `finished_at`, Unix seconds).
"""
import argparse
import base64
import contextlib
import http.client
import json
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests import fake_upstream_data as data

ERROR_ALIASES = {"overloaded-529": 529, "rate-limit-429": 429}
RATE_LIMIT = 4000
TOKEN_LIMIT = 400000


class State:
    """What the server remembers: requests received, cached prompts, batches, files."""

    def __init__(self, scenario="", max_records=10000):
        self.lock = threading.Lock()
        self.scenario = scenario
        self.requests = deque(maxlen=max_records)  # a soak run must not grow it forever
        self.cache = set()
        self.batches = {}
        self.files = {}
        self.count = 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-anthropic/1"
    sys_version = ""

    def log_message(self, format, *args):
        if self.server.verbose:
            super().log_message(format, *args)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = lambda self: self._dispatch()

    # -- reading ------------------------------------------------------------
    def _read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _opt(self, name, default):
        value = self.headers.get(name)
        return int(value) if value and value.strip().lstrip("-").isdigit() else default

    # -- dispatch -----------------------------------------------------------
    def _dispatch(self):
        self.body = self._read_body()
        self.route, _, self.query = self.path.partition("?")
        state = self.server.state
        if self.route.startswith("/_fake/"):
            return self._control()
        with state.lock:
            self.record = {
                "method": self.command, "path": self.route, "query": self.query,
                "headers": [[k, v] for k, v in self.headers.items()],
                "body_b64": base64.b64encode(self.body).decode("ascii"),
                "received_at": time.time(), "finished_at": None, "outcome": "pending",
            }
            state.requests.append(self.record)
            state.count += 1
            self.serial = state.count
        self.request_id = "req_011C" + uuid.uuid4().hex[:20]
        raw = self.headers.get("x-fake-scenario") or state.scenario or ""
        self.scenarios = {s.strip() for s in raw.split(",") if s.strip()}
        if "hang-before-headers" in self.scenarios:
            time.sleep(self._opt("x-fake-delay-ms", 60000) / 1000)
        try:
            self._answer()
            self._finish("answered")
        except (BrokenPipeError, ConnectionResetError):
            self._finish("client disconnected")
            self.close_connection = True

    def _finish(self, outcome):
        """Note how the exchange ended (first call wins), for tests of cancellation."""
        with self.server.state.lock:
            if self.record["outcome"] == "pending":
                self.record.update(outcome=outcome, finished_at=time.time())

    def _answer(self):
        status = self._scenario_error()
        if status:
            return self._error(status)
        matches = [(method, action, match) for method, pattern, action in ROUTES
                   if (match := re.fullmatch(pattern, self.route))]
        for method, action, match in matches:
            if method == self.command:  # by name, so that a subclass may answer a route
                return getattr(self, action)(*match.groups())
        if matches:
            return self._error(405, "invalid_request_error", "Method Not Allowed")
        return self._error(404, "not_found_error", "Not Found")

    def _scenario_error(self):
        for name in self.scenarios:
            if name in ERROR_ALIASES:
                return ERROR_ALIASES[name]
            if re.fullmatch(r"error-\d{3}", name):
                return int(name[6:])
        return None

    def _control(self):
        state = self.server.state
        if self.route == "/_fake/requests" and self.command == "GET":
            with state.lock:
                return self._json(200, {"requests": list(state.requests)}, plain=True)
        if self.route == "/_fake/requests" and self.command == "DELETE":
            with state.lock:
                cleared = len(state.requests)
                state.requests.clear()
            return self._json(200, {"cleared": cleared}, plain=True)
        return self._json(404, data.error_body("not_found_error", "Not Found"), plain=True)

    # -- writing ------------------------------------------------------------
    def _headers(self):
        remaining = max(0, RATE_LIMIT - self.serial)
        headers = {
            "request-id": self.request_id,
            "anthropic-organization-id": "00000000-0000-4000-8000-00000000fa4e",
            "anthropic-ratelimit-requests-limit": str(RATE_LIMIT),
            "anthropic-ratelimit-requests-remaining": str(remaining),
            "anthropic-ratelimit-requests-reset": data.iso_time(60),
            "anthropic-ratelimit-tokens-limit": str(TOKEN_LIMIT),
            "anthropic-ratelimit-tokens-remaining": str(TOKEN_LIMIT - 1000),
            "anthropic-ratelimit-tokens-reset": data.iso_time(60),
            "anthropic-ratelimit-input-tokens-limit": str(TOKEN_LIMIT),
            "anthropic-ratelimit-input-tokens-remaining": str(TOKEN_LIMIT - 1000),
            "anthropic-ratelimit-input-tokens-reset": data.iso_time(60),
            "anthropic-ratelimit-output-tokens-limit": str(TOKEN_LIMIT // 5),
            "anthropic-ratelimit-output-tokens-remaining": str(TOKEN_LIMIT // 5),
            "anthropic-ratelimit-output-tokens-reset": data.iso_time(60),
        }
        unified = self.headers.get("x-fake-unified")
        if unified or self.headers.get("Authorization", "").lower().startswith("bearer "):
            headers.update(data.unified_headers(float(unified or "0.25")))
        return headers

    def _start(self, status, content_type, extra=(), length=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in self._headers().items():
            self.send_header(name, value)
        for name, value in extra:
            self.send_header(name, value)
        if length is None:
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Cache-Control", "no-cache")
        else:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def _json(self, status, body, extra=(), plain=False):
        payload = json.dumps(body).encode("utf-8")
        if plain:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        self._start(status, "application/json", extra, length=len(payload))
        if "midstream-reset" in self.scenarios:
            self.wfile.write(payload[: len(payload) // 2])
            return self._reset()
        self.wfile.write(payload)

    def _error(self, status, error_type=None, message=None):
        default_type, default_message = data.ERRORS.get(status, ("api_error", "Error"))
        extra = []
        if status in (429, 529):
            extra.append(("retry-after", str(self._opt("x-fake-retry-after", 1))))
        if status >= 500:
            extra.append(("x-should-retry", "true"))
        body = data.error_body(error_type or default_type, message or default_message,
                               self.request_id)
        self.scenarios.discard("midstream-reset")
        self._json(status, body, extra)

    def _reset(self):
        """Abort the connection with a TCP RST: SO_LINGER 0, then close."""
        time.sleep(self._opt("x-fake-reset-delay-ms", 0) / 1000)
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self._finish("reset")
        # The buffered files keep the socket open, so close its descriptor directly.
        os.close(self.connection.detach())
        self.close_connection = True

    def _chunk(self, payload):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))

    def _stream(self, message):
        """Send `message` as SSE, applying the stream's fault scenarios."""
        events = self._opt("x-fake-events", 3)
        fail_after = self._opt("x-fake-fail-after", 4)
        delay = self._opt("x-fake-delay-ms", 100 if "slow-stream" in self.scenarios else 2)
        self._start(200, "text/event-stream; charset=utf-8")
        try:
            delta_usage = self.headers.get("x-fake-delta-usage", "output")
            for number, (name, body) in enumerate(data.sse_events(message, events, delta_usage)):
                if number == fail_after and "midstream-reset" in self.scenarios:
                    return self._reset()
                if number == fail_after and "midstream-error" in self.scenarios:
                    self._chunk(data.encode_event("error", data.error_body(
                        "overloaded_error", "Overloaded")))
                    self._finish("error event")
                    break
                if number and "slow-stream" in self.scenarios:
                    time.sleep(delay / 1000)
                self._send_event(data.encode_event(name, body), delay)
            self.wfile.write(b"0\r\n\r\n")
            self._finish("complete")
        except (BrokenPipeError, ConnectionResetError):
            self._finish("client disconnected")
            self.close_connection = True

    def _send_event(self, payload, delay):
        if "trickle" not in self.scenarios:
            return self._chunk(payload)
        start, step = 0, 0
        while start < len(payload):
            size = 1 + (step * 5) % 7
            self._chunk(payload[start:start + size])
            start, step = start + size, step + 1
            time.sleep(delay / 1000)

    # -- endpoints ----------------------------------------------------------
    def _request_json(self):
        """The body as JSON, or None when it is not JSON (the API answers 400 then)."""
        try:
            return json.loads(self.body or b"null")
        except (UnicodeDecodeError, ValueError):
            return None

    def messages(self):
        request = self._request_json()
        problem = ("There was an error parsing the body as JSON" if request is None
                   else data.validate_messages_request(request))
        if problem:
            return self._error(400, "invalid_request_error", problem)
        with self.server.state.lock:
            message = data.build_message(request, self.scenarios, self.server.state.cache,
                                         min_text=self._opt("x-fake-events", 0))
        if request.get("stream"):
            return self._stream(message)
        return self._json(200, message)

    def count_tokens(self):
        request = self._request_json()
        if not isinstance(request, dict) or "messages" not in request:
            return self._error(400, "invalid_request_error", "messages: Field required")
        return self._json(200, data.count_tokens(request))

    def models(self):
        return self._json(200, data.model_list())

    def model(self, model_id):
        info = data.model_info(model_id)
        if info is None:
            return self._error(404, "not_found_error", f"model: {model_id}")
        return self._json(200, info)

    def create_batch(self):
        request = self._request_json()
        if not isinstance(request, dict) or not isinstance(request.get("requests"), list):
            return self._error(400, "invalid_request_error", "requests: Field required")
        batch_id = "msgbatch_01" + uuid.uuid4().hex[:22]
        results = [{"custom_id": item.get("custom_id"), "result": {
            "type": "succeeded", "message": data.build_message(item.get("params") or {})}}
            for item in request["requests"]]
        batch = data.batch_object(batch_id, len(results))
        with self.server.state.lock:
            self.server.state.batches[batch_id] = (batch, results)
        return self._json(200, batch)

    def list_batches(self):
        with self.server.state.lock:
            batches = [data.batch_ended(b, self._base()) for b, _ in self.server.state.batches.values()]
        first, last = (batches[0]["id"], batches[-1]["id"]) if batches else (None, None)
        return self._json(200, {"data": batches, "has_more": False,
                                "first_id": first, "last_id": last})

    def get_batch(self, batch_id):
        with self.server.state.lock:
            found = self.server.state.batches.get(batch_id)
        if found is None:
            return self._error(404, "not_found_error", f"batch {batch_id} not found")
        return self._json(200, data.batch_ended(found[0], self._base()))

    def batch_results(self, batch_id):
        with self.server.state.lock:
            found = self.server.state.batches.get(batch_id)
        if found is None:
            return self._error(404, "not_found_error", f"batch {batch_id} not found")
        payload = "".join(json.dumps(r) + "\n" for r in found[1]).encode("utf-8")
        self._start(200, "application/x-jsonl", length=len(payload))
        self.wfile.write(payload)

    def upload_file(self):
        name, mime, content = data.multipart_file(self.headers.get("Content-Type", ""), self.body)
        if content is None:
            return self._error(400, "invalid_request_error", "file: Field required")
        info = {"id": "file_011C" + uuid.uuid4().hex[:20], "type": "file", "filename": name,
                "mime_type": mime, "size_bytes": len(content), "created_at": data.iso_time(0),
                "downloadable": False}
        with self.server.state.lock:
            self.server.state.files[info["id"]] = info
        return self._json(200, info)

    def list_files(self):
        with self.server.state.lock:
            files = list(self.server.state.files.values())
        return self._json(200, {"data": files, "has_more": False})

    def _base(self):
        return f"http://{self.headers.get('Host', '127.0.0.1')}"


ROUTES = (
    ("POST", r"/v1/messages", "messages"),
    ("POST", r"/v1/messages/count_tokens", "count_tokens"),
    ("GET", r"/v1/models", "models"),
    ("GET", r"/v1/models/([^/]+)", "model"),
    ("POST", r"/v1/messages/batches", "create_batch"),
    ("GET", r"/v1/messages/batches", "list_batches"),
    ("GET", r"/v1/messages/batches/([^/]+)", "get_batch"),
    ("GET", r"/v1/messages/batches/([^/]+)/results", "batch_results"),
    ("POST", r"/v1/files", "upload_file"),
    ("GET", r"/v1/files", "list_files"),
)


class FakeUpstream:
    """A running fake upstream process, as `start_fake_upstream()` yields it."""

    def __init__(self, process, port):
        self.process = process
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def _call(self, method, path):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, path)
            return json.loads(connection.getresponse().read())
        finally:
            connection.close()

    def requests(self):
        """Every request received so far, oldest first, each a `Received`."""
        return [Received(r) for r in self._call("GET", "/_fake/requests")["requests"]]

    def clear(self):
        """Forget the requests received so far."""
        self._call("DELETE", "/_fake/requests")


class Received(dict):
    """One recorded request: method, path, query, headers (pairs), body (bytes)."""

    def __init__(self, record):
        super().__init__(record)
        self["body"] = base64.b64decode(record["body_b64"])

    def header(self, name, default=None):
        """The first value of header `name` (any case), as it arrived."""
        for key, value in self["headers"]:
            if key.lower() == name.lower():
                return value
        return default

    def json(self):
        return json.loads(self["body"])


@contextlib.contextmanager
def start_fake_upstream(scenario="", verbose=False, timeout=10, args=(),
                        module="tests.fake_upstream"):
    """Run the fake upstream in its own process on a free loopback port; stop it after.

    `scenario` is the default x-fake-scenario; `args` are extra command-line flags;
    `module` runs another server with the same command line (tests.claude_code_upstream).
    """
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    command = [sys.executable, "-m", module, "--port", "0"]
    if scenario:
        command += ["--scenario", scenario]
    if verbose:
        command.append("--verbose")
    command += list(args)
    process = subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        port = _await_port(process, timeout)
        yield FakeUpstream(process, port)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


def _await_port(process, timeout):
    ready = []
    reader = threading.Thread(target=lambda: ready.append(process.stdout.readline()),
                              daemon=True)
    reader.start()
    reader.join(timeout)
    line = ready[0] if ready else ""
    if not line.startswith("listening on "):
        raise RuntimeError(f"fake upstream did not start (said {line!r})")
    return int(line.split()[-1])


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # a proxy opening 100+ connections at once must not see drops

    def handle_error(self, request, client_address):
        # A client that hangs up mid-answer is a scenario under test, not a server fault.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def make_server(host="127.0.0.1", port=0, scenario="", verbose=False, max_records=10000):
    """A fake upstream bound to (host, port), not yet serving."""
    server = Server((host, port), Handler)
    server.state = State(scenario, max_records)
    server.verbose = verbose
    return server


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--scenario", default="", help="default x-fake-scenario")
    parser.add_argument("--verbose", action="store_true", help="log requests to stderr")
    parser.add_argument("--max-records", type=int, default=10000,
                        help="requests kept for GET /_fake/requests (oldest dropped)")
    args = parser.parse_args(argv)
    server = make_server(args.host, args.port, args.scenario, args.verbose, args.max_records)
    print(f"listening on {server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    sys.exit(main())
