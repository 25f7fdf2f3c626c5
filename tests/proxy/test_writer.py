"""The writer process: records leave the worker through a pipe and nothing is lost on the way."""
import io
import os
import signal
import time

from proxy.writer import encode_frame, read_frames
from tests.proxy.conftest import MODEL, sdk
from tests.proxy.rows import wait_for_rows
from tests.proxy.test_spool import record
from tests.proxy_server import running_proxy


def test_frames_carry_batches_intact():
    batches = [[record(), record(request_body=b"\x00" * 70000)], [record()]]
    stream = io.BytesIO(b"".join(encode_frame(b) for b in batches))
    assert list(read_frames(stream)) == batches


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
