"""The writer process: records leave the worker through a pipe and nothing is lost on the way."""
import concurrent.futures
import http.client
import io
import json
import os
import signal
import time

from proxy.writer import encode_frame, read_frames
from tests.proxy.conftest import MODEL, sdk
from tests.proxy.rows import wait_for_rows
from tests.proxy.test_spool import record
from tests.proxy_server import running_proxy


def test_frames_carry_batches_intact():
    batches = [[record(), record(request_body=b"\x00" * 70000, response_body=b"\xff" * 20000)],
               [record()], [record(request_body="é".encode() * 40000)]]
    stream = io.BytesIO(b"".join(bytes(part) for b in batches for part in encode_frame(b)))
    assert list(read_frames(stream)) == batches


def test_large_bodies_reach_the_writer_byte_for_byte_through_a_small_pipe():
    """Bodies go out of band and a full pipe cuts writes short: what the writer reads is
    still each record as the worker sent it."""
    from proxy.writer import FrameReader, WriterProcess
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    sender = WriterProcess.__new__(WriterProcess)
    sender.fd = write_end
    batches = [[record(request_body=os.urandom(300_000), response_body=os.urandom(70_000)),
                record()] for _ in range(5)]
    received = []
    reader = FrameReader(read_end)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        reading = pool.submit(lambda: [reader.next(10) for _ in batches])
        for batch in batches:
            sender.send(batch)
        received = reading.result(timeout=30)
    os.close(write_end)
    os.close(read_end)
    assert received == batches


def writer_pids(proxy):
    """The writer processes of the proxy's workers."""
    found = []
    for worker in proxy.worker_pids():
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    command = f.read()
            except OSError:
                continue
            if ppid == worker and b"proxy.writer" in command:
                found.append(int(name))
    return found


def test_a_killed_writer_is_replaced_and_no_record_is_lost(tmp_path, upstream, db_url):
    env = {"CLAUDE_API_BASE_URL": upstream.url, "DATABASE_URL": db_url,
           "NEXUS_SPOOL_DIR": str(tmp_path / "spool")}
    sent = []
    with running_proxy(env, cwd=str(tmp_path)) as proxy, sdk(proxy.url) as client:
        def call(n):
            for _ in range(n):
                raw = client.messages.with_raw_response.create(
                    model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "hi"}])
                sent.append(raw.headers["x-nexus-request-id"])

        call(4)
        wait_for_rows(db_url, 4)
        [writer] = writer_pids(proxy)
        os.kill(writer, signal.SIGKILL)
        time.sleep(0.2)
        call(6)
        rows = wait_for_rows(db_url, len(sent), timeout=30)
        replacement = writer_pids(proxy)
    assert sorted(r["request_id"] for r in rows) == sorted(sent)
    assert replacement and replacement != [writer]


def rss_mib(pid):
    """Resident memory of a process, in MiB (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def post_json(port, body):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", "/v1/messages", body, {"content-type": "application/json",
                                                    "x-api-key": "sk-ant-test-key"})
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader("x-nexus-request-id")
    finally:
        conn.close()


def large_body(n, size=1 << 20):
    """A Claude Code-sized request (about `size` bytes), different for each `n`."""
    text = f"request {n} " + "lorem ipsum dolor sit amet " * (size // 27)
    return json.dumps({"model": MODEL, "max_tokens": 5,
                       "messages": [{"role": "user", "content": text}]}).encode()


def test_a_burst_of_large_bodies_stays_within_the_byte_budget_and_all_are_recorded(
        tmp_path, upstream, db_url):
    budget_mib = 16
    env = {"CLAUDE_API_BASE_URL": upstream.url, "DATABASE_URL": db_url,
           "NEXUS_SPOOL_DIR": str(tmp_path / "spool"),
           "NEXUS_QUEUE_BYTES": str(budget_mib << 20)}
    bodies = [large_body(n) for n in range(150)]
    results, peak = [], {"worker": 0.0, "writer": 0.0}
    with running_proxy(env, cwd=str(tmp_path)) as proxy:
        post_json(proxy.port, bodies[0])  # starts the writer process
        [worker] = proxy.worker_pids()
        wait_for_rows(db_url, 1)
        [writer] = writer_pids(proxy)
        base = {"worker": rss_mib(worker), "writer": rss_mib(writer)}
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            futures = [pool.submit(post_json, proxy.port, body) for body in bodies[1:]]
            while not all(f.done() for f in futures):
                peak["worker"] = max(peak["worker"], rss_mib(worker))
                peak["writer"] = max(peak["writer"], rss_mib(writer))
                time.sleep(0.02)
            results = [f.result() for f in futures]
        rows = wait_for_rows(db_url, len(bodies), timeout=90)
        for _ in range(20):  # and while the writer catches up
            peak["writer"] = max(peak["writer"], rss_mib(writer))
    sent = [request_id for status, request_id in results] + [None]
    assert [status for status, _ in results] == [200] * (len(bodies) - 1)
    assert len(rows) == len(bodies)
    assert set(sent[:-1]) <= {r["request_id"] for r in rows}
    growth = {k: round(peak[k] - base[k]) for k in peak}
    # Each side holds at most the budget of raw records; parsing one batch (an eighth of
    # the budget) costs several times its size while it is saved.
    assert growth["writer"] < 8 * budget_mib, growth
    assert growth["worker"] < 8 * budget_mib, growth
