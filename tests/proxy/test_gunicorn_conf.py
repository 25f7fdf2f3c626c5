"""The proxy under gunicorn: address from HOST/PORT, graceful SIGTERM with a flush."""
import ast
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time

from tests.proxy.conftest import MODEL
from tests.proxy.rows import fetch_rows
from tests.proxy_server import ROOT, running_proxy


def conf_value(name, env):
    """A setting of proxy.gunicorn_conf as it would load under `env`."""
    code = f"import proxy.gunicorn_conf as c; print(repr(c.{name}))"
    clean = {k: v for k, v in os.environ.items() if k not in ("HOST", "PORT")}
    done = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, cwd=ROOT,
                          capture_output=True, text=True, timeout=30, check=True)
    return ast.literal_eval(done.stdout)


def test_bind_comes_from_host_and_port_with_3000_by_default():
    assert conf_value("bind", {}) == ["0.0.0.0:3000"]
    assert conf_value("bind", {"HOST": "127.0.0.1", "PORT": "4321"}) == ["127.0.0.1:4321"]
    assert conf_value("bind", {"HOST": "::", "PORT": "8080"}) == ["[::]:8080"]
    assert conf_value("worker_class", {}) == "gevent"


def test_sigterm_lets_an_in_flight_stream_finish_and_flushes_its_record(tmp_path, upstream):
    db_url = f"sqlite:///{tmp_path}/nexus.db"
    env = {"CLAUDE_API_BASE_URL": upstream.url, "DATABASE_URL": db_url}
    with running_proxy(env, cwd=str(tmp_path)) as proxy:
        body = json.dumps({"model": MODEL, "max_tokens": 50, "stream": True,
                           "messages": [{"role": "user", "content": "hi"}]})
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=20)
        conn.request("POST", "/v1/messages", body, {
            "content-type": "application/json", "x-fake-scenario": "slow-stream",
            "x-fake-delay-ms": "150", "x-fake-events": "12"})
        response = conn.getresponse()
        request_id = response.getheader("x-nexus-request-id")
        first = response.read1(65536)
        proxy.signal(signal.SIGTERM)
        received = [first]
        reader = threading.Thread(target=lambda: received.append(response.read()))
        reader.start()
        reader.join(20)
        conn.close()
        assert proxy.wait(timeout=30) == 0
    stream = b"".join(received)
    assert stream.startswith(b"event: message_start") and b"event: message_stop" in stream
    rows = {r["request_id"]: r for r in fetch_rows(db_url)}
    assert request_id in rows
    assert rows[request_id]["error"] is None and rows[request_id]["output_tokens"] > 0
    spool = tmp_path / "data" / "spool"
    assert not spool.exists() or not [p for p in spool.iterdir() if p.stat().st_size]


def test_a_busy_worker_still_answers_health_at_once(proxy):
    # A stream in progress must not hold up other requests on the same worker.
    body = json.dumps({"model": MODEL, "max_tokens": 50, "stream": True,
                       "messages": [{"role": "user", "content": "hi"}]})
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=20)
    conn.request("POST", "/v1/messages", body, {
        "content-type": "application/json", "x-fake-scenario": "slow-stream",
        "x-fake-delay-ms": "500", "x-fake-events": "3"})
    response = conn.getresponse()
    started = time.monotonic()
    assert proxy.get("/health")[0] == 200
    assert time.monotonic() - started < 0.3
    response.read()
    conn.close()
