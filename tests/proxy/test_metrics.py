"""Prometheus metrics: right numbers, from any worker, in the text format."""
import http.client
import json
import os
import re
import threading
import time

from proxy.metrics import Metrics, merge, render
from tests.proxy.conftest import MODEL
from tests.proxy.rows import wait_for_rows
from tests.proxy_server import running_proxy


def parse(text):
    """{sample name with labels: value} of a Prometheus text page."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def test_histograms_are_cumulative_and_counters_add_up():
    m = Metrics(shared_dir="")
    m.inc("nexus_requests_total", 'method="POST",status="200"')
    m.inc("nexus_requests_total", 'method="POST",status="200"')
    for seconds in (0.0004, 0.003, 0.003, 700):
        m.observe("nexus_request_duration_seconds", seconds)
    samples = parse(m.render())
    assert samples['nexus_requests_total{method="POST",status="200"}'] == 2
    assert samples['nexus_request_duration_seconds_bucket{le="0.0005"}'] == 1
    assert samples['nexus_request_duration_seconds_bucket{le="0.005"}'] == 3
    assert samples['nexus_request_duration_seconds_bucket{le="600.0"}'] == 3
    assert samples['nexus_request_duration_seconds_bucket{le="+Inf"}'] == 4
    assert samples["nexus_request_duration_seconds_count"] == 4
    assert abs(samples["nexus_request_duration_seconds_sum"] - 700.0064) < 1e-6


def test_counters_of_exited_workers_stay_and_their_gauges_go():
    live = Metrics(shared_dir="")
    live.inc("nexus_records_written_total", amount=3)
    live.set("nexus_in_flight_requests", 2)
    gone = {"pid": 2 ** 22 + 7, "counters": [["nexus_records_written_total", "", 5]],
            "gauges": [["nexus_in_flight_requests", "", 9]], "histograms": []}
    samples = parse(render(merge([live.snapshot(), gone])))
    assert samples["nexus_records_written_total"] == 8
    assert samples["nexus_in_flight_requests"] == 2


def test_metrics_add_up_across_two_workers(tmp_path, upstream):
    env = {"CLAUDE_API_BASE_URL": upstream.url, "DATABASE_URL": f"sqlite:///{tmp_path}/n.db"}
    with running_proxy(env, workers=2, cwd=str(tmp_path)) as proxy:
        assert len(proxy.worker_pids()) == 2
        served_by = set()
        body = json.dumps({"model": MODEL, "max_tokens": 5,
                           "messages": [{"role": "user", "content": "hi"}]})
        for _ in range(40):  # a fresh connection each time, so both workers get some
            conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
            conn.request("POST", "/v1/messages", body, {"content-type": "application/json"})
            response = conn.getresponse()
            response.read()
            assert response.status == 200
            conn.close()
        for event in proxy.log_events():
            if event.get("event") == "request":
                served_by.add(event.get("pid"))
        time.sleep(1.2)  # each worker publishes its numbers every second
        scrapes = [parse(proxy.get("/metrics")[2].decode()) for _ in range(6)]
    assert len(served_by) == 2, "both workers should have served requests"
    for samples in scrapes:  # whichever worker answers the scrape, the totals are the same
        assert samples['nexus_requests_total{method="POST",status="200"}'] == 40
        assert samples["nexus_request_duration_seconds_count"] == 40
        assert samples["nexus_overhead_seconds_count"] == 40


def test_overhead_header_matches_the_metric(proxy):
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    conn.request("GET", "/v1/models")
    response = conn.getresponse()
    response.read()
    conn.close()
    overhead = float(response.getheader("x-nexus-overhead-ms"))
    assert 0 < overhead < 50
    text = proxy.get("/metrics")[2].decode()
    assert re.search(r"^nexus_overhead_seconds_count [1-9]", text, re.M)


def test_flushes_and_scrapes_at_once_never_fail(tmp_path):
    m = Metrics(shared_dir=str(tmp_path))
    errors, stop = [], time.monotonic() + 1.0

    def hammer(action):
        try:
            while time.monotonic() < stop:
                m.inc("nexus_records_written_total")
                action()
        except Exception as exc:  # the failure under test: recorded, asserted below
            errors.append(repr(exc))

    threads = [threading.Thread(target=hammer, args=(m.flush,)) for _ in range(3)]
    threads += [threading.Thread(target=hammer, args=(m.render,)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert os.listdir(tmp_path) == [f"{os.getpid()}.json"]  # no temporary file left behind
    assert parse(m.render())["nexus_records_written_total"] == m.counters[
        ("nexus_records_written_total", "")]


def test_the_written_counter_advances_under_continuous_load(tmp_path, upstream):
    env = {"CLAUDE_API_BASE_URL": upstream.url, "DATABASE_URL": f"sqlite:///{tmp_path}/n.db"}
    body = json.dumps({"model": MODEL, "max_tokens": 5, "messages": [
        {"role": "user", "content": "a long prompt " * 8000}]})  # more than the writer keeps up with
    statuses, scrapes, done = [], [], threading.Event()

    def load():
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
        while not done.is_set():
            conn.request("POST", "/v1/messages", body, {"content-type": "application/json"})
            response = conn.getresponse()
            response.read()
            statuses.append(response.status)
        conn.close()

    with running_proxy(env, cwd=str(tmp_path)) as proxy:
        clients = [threading.Thread(target=load) for _ in range(4)]
        for t in clients:
            t.start()
        try:
            for _ in range(12):  # 6 s of load, a scrape every half second
                time.sleep(0.5)
                status, _, text = proxy.get("/metrics")
                scrapes.append((status, parse(text.decode()) if status == 200 else {}))
        finally:
            done.set()
            for t in clients:
                t.join()
    assert [status for status, _ in scrapes] == [200] * len(scrapes)
    written = [samples.get("nexus_records_written_total", 0) for _, samples in scrapes]
    first = next(i for i, value in enumerate(written) if value > 0)
    # Published every second, busy or not: each 2-second window after the first rows shows
    # more written (before, the writer published only when idle, which under load is never).
    assert first < 6 and all(written[i + 4] > written[i] for i in range(first, len(written) - 4)), \
        written
    assert written[-1] > 0 and len(statuses) > written[-1] / 2


def test_gauges_of_processes_add_up_but_database_up_is_the_lowest(tmp_path):
    here = Metrics(shared_dir=str(tmp_path))
    here.set("nexus_recorder_queue_depth", 100)  # stale: the scrape measures it afresh
    writers = []
    for depth, up in ((7, 1), (5, 0)):
        other = Metrics(shared_dir="")
        other.set("nexus_recorder_queue_depth", depth)
        other.set("nexus_database_up", up)
        writers.append(other.snapshot())
    for n, snap in enumerate(writers):  # live processes of their own: our parent and init
        snap["pid"] = (os.getppid(), 1)[n]
        with open(tmp_path / f"{snap['pid']}.json", "w") as f:
            json.dump(snap, f)
    samples = parse(here.render([("nexus_recorder_queue_depth", "", 3),
                                 ("nexus_spool_backlog_bytes", "", 4096)]))
    assert samples["nexus_recorder_queue_depth"] == 3 + 7 + 5
    assert samples["nexus_database_up"] == 0
    assert samples["nexus_spool_backlog_bytes"] == 4096


def test_stored_body_bytes_are_exported_beside_the_bytes_received(tmp_path, upstream):
    db_url = f"sqlite:///{tmp_path}/n.db"
    env = {"CLAUDE_API_BASE_URL": upstream.url, "DATABASE_URL": db_url}
    history = [{"role": "user", "content": "line of a long history " * 800}]
    body = json.dumps({"model": MODEL, "max_tokens": 5, "messages": history})
    with running_proxy(env, cwd=str(tmp_path)) as proxy:
        for _ in range(20):  # the same history resent, as Claude Code does
            conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
            conn.request("POST", "/v1/messages", body, {"content-type": "application/json"})
            conn.getresponse().read()
            conn.close()
        wait_for_rows(db_url, 20)
        time.sleep(1.5)  # the writer publishes its numbers every second
        samples = parse(proxy.get("/metrics")[2].decode())
    received = samples["nexus_body_bytes_received_total"]
    assert received >= 20 * len(body)
    assert 0 < samples["nexus_body_bytes_stored_total"] < received / 10
