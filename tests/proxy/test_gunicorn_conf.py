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

import pytest

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
    assert conf_value("worker_class", {}) == "proxy.gunicorn_worker.Worker"


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


def access_log_enabled(gunicorn_args):
    """Whether gunicorn, loaded with our config and `gunicorn_args`, builds access-log lines."""
    code = ("import sys; from gunicorn.app.wsgiapp import WSGIApplication\n"
            "sys.argv = ['gunicorn', '-c', 'python:proxy.gunicorn_conf', *sys.argv[1:],"
            " 'proxy.wsgi:app']\n"
            "app = WSGIApplication(); log = app.cfg.logger_class(app.cfg)\n"
            "print(repr(log.access_log_enabled))")
    clean = {k: v for k, v in os.environ.items() if k not in ("HOST", "PORT", "GUNICORN_CMD_ARGS")}
    done = subprocess.run([sys.executable, "-c", code, *gunicorn_args], env=clean, cwd=ROOT,
                          capture_output=True, text=True, timeout=30, check=True)
    return ast.literal_eval(done.stdout.strip().splitlines()[-1])


def test_gunicorn_builds_no_access_log_lines_unless_asked_for_one():
    # With a logconfig_dict gunicorn built every request's access atoms, then dropped them.
    assert access_log_enabled([]) is False
    assert access_log_enabled(["--access-logfile", "-"]) is True


def request_lines(proxy, request_id):
    return [e for e in proxy.log_events()
            if e.get("event") == "request" and e.get("request_id") == request_id]


def ask(proxy):
    status, headers, _ = proxy.get("/v1/models")
    assert status == 200
    return headers["x-nexus-request-id"]


def wait_for(predicate, seconds=5.0):
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)
    return predicate()


@pytest.mark.parametrize("level", ["info", "warning"])
def test_logs_are_json_lines_with_one_request_line_per_request_at_info(tmp_path, upstream, level):
    env = {"CLAUDE_API_BASE_URL": upstream.url, "DATABASE_URL": f"sqlite:///{tmp_path}/n.db",
           "NEXUS_LOG_LEVEL": level}
    with running_proxy(env, cwd=str(tmp_path)) as proxy:
        request_id = ask(proxy)
        if level == "info":
            assert wait_for(lambda: request_lines(proxy, request_id))
            [line] = request_lines(proxy, request_id)
            assert line["status"] == 200 and line["path"] == "/v1/models"
            assert line["level"] == "info" and line["time"].endswith("+00:00")
            # gunicorn's own lines (worker booted, …) are JSON too
            assert any(e.get("logger") == "gunicorn.error" for e in proxy.log_events())
        else:
            time.sleep(0.5)
            assert request_lines(proxy, request_id) == []
        lines = [x for x in proxy.log_lines() if x.strip()]
        assert all(x.startswith("{") for x in lines), lines


def test_an_access_log_asked_for_with_gunicorn_args_is_written(tmp_path, upstream):
    env = {"CLAUDE_API_BASE_URL": upstream.url, "DATABASE_URL": f"sqlite:///{tmp_path}/n.db",
           "GUNICORN_CMD_ARGS": "--access-logfile -"}
    with running_proxy(env, cwd=str(tmp_path)) as proxy:
        ask(proxy)
        # Written as a JSON line like every other, the access line in its "event".
        assert wait_for(lambda: any('"GET /v1/models HTTP/1.1" 200' in _event(x)
                                    for x in proxy.log_lines()))


def _event(line):
    try:
        return json.loads(line).get("event", "")
    except ValueError:
        return ""
