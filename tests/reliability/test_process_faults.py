"""Process faults: SIGTERM while streams are running.

On SIGTERM gunicorn stops accepting, gives in-flight requests up to
graceful_timeout (30 s) to finish, and the worker_exit hook flushes the
recorder. So every stream that had started must end normally (message_stop),
the master must exit cleanly soon after the last stream ends, and every request,
streamed or not, must be in the database afterwards.

kill -9 (the spool survives and is replayed on restart) is covered, on SQLite and
PostgreSQL, by tests/proxy/test_spool.py::test_records_spooled_before_a_kill_9_are_saved_after_the_restart.
"""
import http.client
import signal
import threading
import time

import pytest

from tests.proxy.conftest import free_port
from tests.proxy.rows import wait_for_rows
from tests.proxy_server import running_proxy

from .load import Load
from .support import message_body, note, post, sse_events

STREAMS = 4
EVENT_DELAY_MS = 300
EVENTS = 8  # about 12 events in all, 300 ms apart: each stream lasts ~3.5 s


def stream(port, results, index, started):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=40)
    conn.request("POST", "/v1/messages", message_body(stream=True, text=f"graceful {index}"), {
        "content-type": "application/json", "x-fake-scenario": "slow-stream",
        "x-fake-delay-ms": str(EVENT_DELAY_MS), "x-fake-events": str(EVENTS)})
    response = conn.getresponse()
    first = response.read1(65536)
    started.release()
    rest = response.read()
    results[index] = (response.getheader("x-nexus-request-id"), sse_events(first + rest),
                      time.monotonic())
    conn.close()


@pytest.mark.slow
def test_sigterm_lets_running_streams_finish_and_flushes_their_records(upstream, module_db_url,
                                                                       tmp_path):
    env = {"CLAUDE_API_BASE_URL": upstream.url, "DATABASE_URL": module_db_url}
    with running_proxy(env, cwd=str(tmp_path)) as proxy:
        plain = [post(proxy.port)[1]["x-nexus-request-id"] for _ in range(5)]
        results, started = [None] * STREAMS, threading.Semaphore(0)
        threads = [threading.Thread(target=stream, args=(proxy.port, results, n, started))
                   for n in range(STREAMS)]
        for thread in threads:
            thread.start()
        for _ in threads:
            assert started.acquire(timeout=10)
        proxy.signal(signal.SIGTERM)
        signalled = time.monotonic()
        code = proxy.wait(timeout=40)
        exited = time.monotonic()
        for thread in threads:
            thread.join(10)
    assert code == 0, "\n".join(proxy.log_lines()[-20:])
    for request_id, events, _ in results:
        assert events[0] == "message_start" and events[-1] == "message_stop", events
    last_stream_end = max(ended for _, _, ended in results)
    assert last_stream_end - signalled > 1.0  # the streams really outlived the signal
    assert exited - last_stream_end < 5.0  # and the master left soon after them
    expected = plain + [request_id for request_id, _, _ in results]
    rows = wait_for_rows(module_db_url, len(expected), timeout=5)
    assert sorted(r["request_id"] for r in rows) == sorted(expected)
    assert all(r["error"] is None for r in rows)
    note("sigterm during streams", db=module_db_url.split(":")[0], streams=STREAMS,
         streams_completed=sum(1 for _, e, _ in results if e[-1] == "message_stop"),
         sent=len(expected), recorded=len(rows),
         stream_ran_after_signal_s=round(last_stream_end - signalled, 2),
         exit_after_last_stream_s=round(exited - last_stream_end, 2))


@pytest.mark.slow
def test_a_worker_never_hangs_when_its_writer_thread_and_its_requests_log_at_once(upstream, tmp_path):
    # The recorder's writer is a real OS thread; requests and the Slack notifier are
    # greenlets. All of them log through the same handlers. With gevent's lock in a
    # handler, a greenlet could miss its wake-up and the worker stopped answering for
    # good (seen within a few hundred requests at debug level with Slack failing).
    env = {"CLAUDE_API_BASE_URL": upstream.url, "DATABASE_URL": f"sqlite:///{tmp_path}/n.db",
           "NEXUS_LOG_LEVEL": "debug", "SLACK_WEBHOOK_URL": f"http://127.0.0.1:{free_port()}/hook"}
    with running_proxy(env, cwd=str(tmp_path)) as proxy, Load(proxy.port, threads=4, pause=0, timeout=5) as load:
        started = time.monotonic()
        while time.monotonic() - started < 20 and not load.failures:
            time.sleep(0.5)
        load.stop()
        assert load.failures == [], f"{load.failures[0]} after {len(load.answers)} answers: the worker hung"
        assert set(load.statuses()) == {200}


@pytest.mark.parametrize("module", ["proxy.cli", "dashboard.cli"])
def test_a_database_url_nobody_can_open_is_a_configuration_error(module, tmp_path):
    """Not "database unreachable, records will be spooled", then a worker that cannot boot."""
    import os
    import subprocess
    import sys

    from tests.proxy_server import ROOT
    env = {**os.environ, "DATABASE_URL": "garbage://x", "PORT": str(free_port()),
           "HOST": "127.0.0.1", "PYTHONPATH": ROOT}
    done = subprocess.run([sys.executable, "-m", module], cwd=str(tmp_path), env=env,
                          capture_output=True, text=True, timeout=60)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "DATABASE_URL" in output and "unknown database scheme 'garbage'" in output, output[-2000:]
    assert "spooled" not in output and "Booting worker" not in output
