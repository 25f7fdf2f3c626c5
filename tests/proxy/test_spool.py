"""The spool: records wait on disk while the database is away and are saved exactly once."""
import datetime
import fcntl
import json
import os
import subprocess
import sys
import textwrap
import time
import uuid

from common import config as nexus_config
from common import pricing
from common.recording import store
from proxy.spool import Spool, decode, encode
from tests.proxy.conftest import MODEL, free_port, sdk
from tests.proxy.rows import fetch_rows, wait_for_rows
from tests.proxy_server import ROOT, running_proxy


def record(**changes):
    """A realistic record as the proxy hands it over."""
    body = {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    answer = {"id": "msg_1", "type": "message", "role": "assistant", "model": MODEL,
              "content": [{"type": "text", "text": "hello"}], "stop_reason": "end_turn",
              "usage": {"input_tokens": 12, "output_tokens": 3}}
    value = {
        "request_id": str(uuid.uuid4()), "timestamp": datetime.datetime(2026, 3, 1, 12, 0, 0),
        "domain": "team.example", "method": "POST", "path": "/v1/messages", "query": "",
        "request_headers": {"content-type": "application/json", "x-api-key": "[redacted]"},
        "request_body": json.dumps(body).encode(), "response_status": 200,
        "response_headers": {"content-type": "application/json", "request-id": "req_1"},
        "response_body": json.dumps(answer).encode(), "stream": False, "duration_ms": 12.5,
        "first_token_ms": 11.0, "error": None, "upstream_request_id": "req_1",
        "auth_hash": None, "client_key_id": None, "account_id": None, "session_header": None,
    }
    value.update(changes)
    return value


def test_a_record_survives_the_round_trip_through_a_line():
    original = record(request_body=b"\x00\xffbinary")
    line = encode(original)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode(line) == original


def test_replay_saves_each_record_once_and_removes_the_file(tmp_path):
    spool = Spool(str(tmp_path))
    records = [record() for _ in range(5)]
    assert spool.append(records[:3]) and spool.append(records[3:])
    saved = []
    assert spool.replay(saved.extend) == 0  # our own open file is not replayed yet
    spool.rotate()
    assert spool.replay(saved.extend) == 5
    assert [r["request_id"] for r in saved] == [r["request_id"] for r in records]
    assert spool.replay(saved.extend) == 0 and len(saved) == 5
    assert spool.backlog() == (0, 0)


def test_a_file_another_process_holds_is_left_alone(tmp_path):
    writer = Spool(str(tmp_path))
    writer.append([record()])
    saved = []
    # A second process's view: the writer's file is locked, so it is not touched.
    other = Spool(str(tmp_path))
    holder = os.open(writer._path, os.O_RDONLY)
    writer.rotate()
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        assert other.replay(saved.extend) == 0
    finally:
        os.close(holder)
    assert other.replay(saved.extend) == 1


def test_a_torn_last_line_is_skipped_and_the_rest_saved(tmp_path):
    spool = Spool(str(tmp_path))
    good = [record(), record()]
    spool.append(good)
    path = spool._path
    spool.rotate()
    with open(path, "ab") as f:
        f.write(encode(record())[:40])  # a crash mid-write
    saved = []
    assert Spool(str(tmp_path)).replay(saved.extend) == 2
    assert not os.path.exists(path)


def test_a_failed_replay_keeps_the_file_and_a_later_one_adds_no_duplicates(tmp_path, db_url, database):
    config = nexus_config.load({})
    prices = pricing.load_prices()
    spool = Spool(str(tmp_path / "spool"))
    records = [record() for _ in range(7)]
    spool.append(records)
    spool.rotate()
    calls = []

    def flaky(batch):
        calls.append(len(batch))
        store.save_records(database, batch, prices, config)
        if len(calls) == 2:
            raise ConnectionError("the database went away mid-replay")

    try:
        spool.replay(flaky, batch_size=3)
    except ConnectionError:
        pass
    assert spool.backlog()[0] == 1
    assert spool.replay(lambda b: store.save_records(database, b, prices, config), 3) == 7
    rows = fetch_rows(db_url)
    assert sorted(r["request_id"] for r in rows) == sorted(r["request_id"] for r in records)


def test_a_full_disk_is_one_clear_log_line_and_no_crash(tmp_path):
    # RLIMIT_FSIZE makes writes fail (EFBIG) as a full disk would (ENOSPC).
    script = textwrap.dedent(f"""
        import json, resource, sys
        sys.path.insert(0, {ROOT!r})
        from common import logs
        from proxy.spool import Spool
        from tests.proxy.test_spool import record
        logs.configure("info")
        resource.setrlimit(resource.RLIMIT_FSIZE, (10000, 10000))
        spool = Spool({str(tmp_path)!r})
        results = [spool.append([record(request_body=b"x" * 3000)]) for _ in range(5)]
        print(json.dumps(results))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert results[:3] == [1, 1, 0]  # records stored whole; the third is torn
    complaints = [json.loads(line) for line in done.stderr.splitlines()
                  if "spool write failed" in line]
    assert len(complaints) == 1  # not one per request
    assert complaints[0]["level"] == "error" and complaints[0]["reason"]


def test_records_spooled_before_a_kill_9_are_saved_after_the_restart(tmp_path, upstream, db_url):
    spool_dir = str(tmp_path / "spool")
    down = {"CLAUDE_API_BASE_URL": upstream.url, "NEXUS_SPOOL_DIR": spool_dir,
            "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"}
    request_ids = []
    with running_proxy(down, cwd=str(tmp_path)) as proxy:
        with sdk(proxy.url) as client:
            for _ in range(6):
                raw = client.messages.with_raw_response.create(
                    model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "hi"}])
                request_ids.append(raw.headers["x-nexus-request-id"])
        assert proxy.get("/ready")[0] == 503
        wait_for_spool(spool_dir, len(request_ids))
        proxy.kill_all()
    up = {**down, "DATABASE_URL": db_url}
    with running_proxy(up, cwd=str(tmp_path)):
        rows = wait_for_rows(db_url, len(request_ids))
    assert sorted(r["request_id"] for r in rows) == sorted(request_ids)
    assert all(r["input_tokens"] > 0 for r in rows)


def wait_for_spool(directory, count, timeout=10):
    """Wait until `count` records are on disk in the spool."""
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = 0
        for name in os.listdir(directory) if os.path.isdir(directory) else ():
            with open(os.path.join(directory, name), "rb") as f:
                lines += f.read().count(b"\n")
        if lines >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"{count} records never reached the spool")



def test_a_disk_that_fills_mid_batch_keeps_and_counts_the_whole_records(tmp_path):
    # RLIMIT_FSIZE (EFBIG) stands in for a full disk: room for two records and a half.
    script = textwrap.dedent(f"""
        import json, resource, sys
        sys.path.insert(0, {ROOT!r})
        from proxy.spool import Spool, encode
        from tests.proxy.test_spool import record
        records = [record(request_body=b"x" * 3000) for _ in range(5)]
        resource.setrlimit(resource.RLIMIT_FSIZE, (int(len(encode(records[0])) * 2.5),) * 2)
        print(json.dumps({{"stored": Spool({str(tmp_path)!r}).append(records),
                          "ids": [r["request_id"] for r in records]}}))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["stored"] == 2
    saved = []
    assert Spool(str(tmp_path)).replay(saved.extend) == 2  # the torn third is skipped
    assert [r["request_id"] for r in saved] == result["ids"][:2]


def test_each_record_is_spooled_once_while_the_database_is_down(tmp_path, upstream):
    env = {"CLAUDE_API_BASE_URL": upstream.url, "NEXUS_SPOOL_DIR": str(tmp_path / "spool"),
           "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"}
    with running_proxy(env, cwd=str(tmp_path)) as proxy:
        with sdk(proxy.url) as client:
            for _ in range(12):
                client.messages.create(model=MODEL, max_tokens=5,
                                       messages=[{"role": "user", "content": "hi"}])
        wait_for_spool(str(tmp_path / "spool"), 12)
        time.sleep(5)  # more than two replay turns of the worker and of its writer process
        metrics = proxy.get("/metrics")[2].decode()
    counts = {name: metric(metrics, f"nexus_records_{name}_total")
              for name in ("spooled", "lost", "written")}
    assert counts == {"spooled": 12, "lost": 0, "written": 0}, counts
    assert spool_lines(str(tmp_path / "spool")) == 12


def metric(text, name):
    """The value of an unlabelled Prometheus counter (0 when it was never counted)."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0


def spool_lines(directory):
    lines = 0
    for name in os.listdir(directory):
        if name.endswith(".jsonl"):
            with open(os.path.join(directory, name), "rb") as f:
                lines += f.read().count(b"\n")
    return lines


# -- the line format under hostile input ------------------------------------------------
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

TAG_LIKE = st.sampled_from(["$b64", "$dt", "$dict", "$x", "b64"])
HEADER_NAMES = st.one_of(TAG_LIKE, st.text(min_size=1, max_size=12))
HEADER_VALUES = st.one_of(st.text(max_size=20), st.sampled_from(["eA==", "2026-01-01T00:00:00"]))


@settings(max_examples=300, deadline=None)
@given(request_headers=st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=3),
       response_headers=st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=3),
       body=st.one_of(st.none(), st.binary(max_size=50)), error=st.one_of(st.none(), st.text(max_size=20)))
def test_any_headers_and_bodies_come_back_as_they_went_in(request_headers, response_headers,
                                                          body, error):
    """Client-chosen header names (`$b64`, `$dt`, ...) never turn into encoded values."""
    original = record(request_headers=request_headers, response_headers=response_headers,
                      request_body=body, error=error)
    assert decode(encode(original)) == original


def test_a_header_named_like_a_tag_is_saved_by_replay(tmp_path, db_url, database):
    spool = Spool(str(tmp_path / "spool"))
    poisoned = [record(request_headers={"$b64": "eA=="}), record(request_headers={"$dt": "x"})]
    spool.append([*poisoned, record()])
    spool.rotate()
    prices = pricing.load_prices(None)
    config = nexus_config.load({"DATABASE_URL": db_url})
    assert spool.replay(lambda batch: store.save_records(database, batch, prices, config)) == 3
    assert len(fetch_rows(db_url)) == 3
