"""The soak run (issue 7): mixed traffic through the real proxy for a long time.

    python -m bench.soak --minutes 10 [--rate 40] [--clients 6] [--workers 2]
                         [--database sqlite|postgresql|URL] [--json soak.json]

It starts the fake upstream (tests/fake_upstream.py) and the real proxy
(`nexus-proxy`: gunicorn, gevent workers), then sends paced traffic from a few
client threads: plain and streamed messages, token counts, model lists, upstream
errors (500, 529), streams cut mid-way by the upstream, and clients that leave
mid-stream. Every few seconds it samples each worker's resident memory and open
file descriptors. At the end it waits for the recorder and compares the rows
with the requests sent.

It passes when resident memory grew less than 10% from the end of the warm-up
(the first tenth of the run, at least 20 s) to the end, in every worker and in
every worker's writer process, those processes hold no more
file descriptors than after the warm-up (a few pooled connections of slack), and
the database holds one row per request sent (the run uses a fresh database),
including each answer's x-nexus-request-id.
"""
import argparse
import contextlib
import http.client
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

MODEL = "claude-haiku-4-5-20251001"
FD_SLACK = 8  # pooled upstream and database connections may differ by a few
# (kind, weight): the mix of traffic
MIX = (("message", 50), ("stream", 25), ("count_tokens", 5), ("models", 4),
       ("error-500", 3), ("overloaded-529", 3), ("midstream-reset", 3), ("leave", 4),
       ("midstream-error", 3))


def _body(stream, n):
    return json.dumps({"model": MODEL, "max_tokens": 128, "stream": stream, "messages": [
        {"role": "user", "content": f"soak request {n}: tell me about otters " * (1 + n % 7)}]}).encode()


class Traffic:
    """Client threads sending the mix at a fixed total rate; what they sent and got."""

    def __init__(self, port, rate, clients, seed=7):
        self.port, self.interval = port, clients / rate
        self.clients = clients
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.sent = 0
        self.ids = []             # x-nexus-request-id of every answer that carried one
        self.outcomes = {}        # kind/status -> count
        self.failures = []        # requests with no answer at all (a fault unless expected)
        kinds, weights = zip(*MIX)
        self.kinds, self.weights = kinds, weights

    def run(self):
        threads = [threading.Thread(target=self._client, args=(n,), daemon=True)
                   for n in range(self.clients)]
        for thread in threads:
            thread.start()
        return threads

    def _count(self, key, request_id=None):
        with self.lock:
            self.outcomes[key] = self.outcomes.get(key, 0) + 1
            if request_id:
                self.ids.append(request_id)

    def _client(self, number):
        rng = random.Random(number)
        next_at = time.monotonic() + rng.random() * self.interval
        n = 0
        while not self.stop.is_set():
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            next_at += self.interval
            n += 1
            kind = rng.choices(self.kinds, self.weights)[0]
            with self.lock:
                self.sent += 1
            try:
                self._one(kind, n)
            except (OSError, http.client.HTTPException) as exc:
                with self.lock:
                    self.failures.append(f"{kind}: {exc!r}")

    def _one(self, kind, n):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            headers = {"content-type": "application/json", "x-api-key": "sk-ant-soak"}
            if kind == "models":
                conn.request("GET", "/v1/models", headers=headers)
            elif kind == "count_tokens":
                conn.request("POST", "/v1/messages/count_tokens", _body(False, n), headers)
            else:
                stream = kind not in ("message", "error-500", "overloaded-529")
                if kind not in ("message", "stream", "leave"):
                    headers["x-fake-scenario"] = kind
                if kind == "leave":
                    headers.update({"x-fake-scenario": "slow-stream", "x-fake-delay-ms": "50",
                                    "x-fake-events": "40"})
                conn.request("POST", "/v1/messages", _body(stream, n), headers)
            response = conn.getresponse()
            request_id = response.getheader("x-nexus-request-id")
            if kind == "leave":
                response.read1(4096)
                conn.sock.shutdown(2)  # the client leaves mid-stream
                self._count("left mid-stream", request_id)
                return
            try:
                response.read()
                self._count(f"{kind} {response.status}", request_id)
            except (http.client.IncompleteRead, ConnectionError):
                self._count(f"{kind} cut", request_id)  # the upstream reset mid-stream
        except ConnectionError:
            if kind != "midstream-reset":
                raise
            self._count(f"{kind} cut before the first byte")  # see test_upstream_faults
        finally:
            conn.close()


def sample(proxy):
    """(seconds, {"worker <pid>" or "writer <pid>": (rss bytes, open fds)}) now.

    Writers are the workers' children (the process that saves records, ADR 0035).
    """
    from bench.procs import children
    from tests.reliability.support import fd_count, rss_bytes
    figures = {}
    for worker in proxy.worker_pids():
        for role, pid in [("worker", worker)] + [("writer", c) for c in children(worker)]:
            with contextlib.suppress(OSError):
                figures[f"{role} {pid}"] = (rss_bytes(pid), fd_count(pid))
    return time.monotonic(), figures


def _database(choice, workdir, stack):
    if choice == "sqlite":
        return f"sqlite:///{workdir}/nexus.db"
    if choice == "postgresql":
        from tests.databases import temporary_database
        return stack.enter_context(temporary_database("postgresql", workdir))
    return choice


def _rows(db_url, ids, sent, timeout):
    """Every recorded request id, once the ids we know of and `sent` rows are in (or time is up)."""
    from tests.proxy.rows import fetch_rows
    wanted = set(ids)
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = {r["request_id"] for r in fetch_rows(db_url)}
        except Exception:  # the table may not exist yet
            found = set()
        if (wanted <= found and len(found) >= sent) or time.monotonic() > deadline:
            return found


def run(seconds, rate=40.0, clients=6, workers=2, database="sqlite", interval=5.0, log=print):
    """Soak the proxy for `seconds`; the figures and whether each goal was met."""
    from tests.fake_upstream import start_fake_upstream
    from tests.proxy_server import running_proxy

    warmup = max(20.0, seconds / 10) if seconds >= 60 else seconds / 3
    workdir = tempfile.mkdtemp(prefix="nexus-soak-")
    with contextlib.ExitStack() as stack:
        upstream = stack.enter_context(start_fake_upstream(args=["--max-records", "500"]))
        db_url = _database(database, workdir, stack)
        proxy = stack.enter_context(running_proxy(
            {"CLAUDE_API_BASE_URL": upstream.url, "DATABASE_URL": db_url,
             "NEXUS_SPOOL_DIR": f"{workdir}/spool"}, workers=workers, cwd=workdir))
        traffic = Traffic(proxy.port, rate, clients)
        threads = traffic.run()
        started = time.monotonic()
        samples = []
        while time.monotonic() - started < seconds:
            time.sleep(min(interval, max(0.0, seconds - (time.monotonic() - started))))
            samples.append(sample(proxy))
            log(f"{time.monotonic() - started:6.0f} s  sent {traffic.sent:6d}  "
                + "  ".join(f"{name}: {rss / 2**20:.1f} MiB {fds} fds"
                            for name, (rss, fds) in samples[-1][1].items()))
        traffic.stop.set()
        for thread in threads:
            thread.join(60)
        time.sleep(2)  # in-flight streams end, pooled connections settle
        settled = sample(proxy)
        found = _rows(db_url, traffic.ids, traffic.sent, timeout=60)
        return summarize(traffic, samples, settled, found, started, warmup, seconds,
                         dict(rate=rate, clients=clients, worker_processes=workers,
                              database=database if database in ("sqlite", "postgresql") else "url"))


def summarize(traffic, samples, settled, found, started, warmup, seconds, settings):
    """The soak's figures, and each goal met or not."""
    after = [figures for at, figures in samples if at - started >= warmup]
    base = after[0] if after else samples[0][1]
    processes = {}
    for pid, (rss0, fds0) in base.items():
        if pid not in settled[1]:
            continue  # a process restarted: reported below as a failure
        rss1, fds1 = settled[1][pid]
        peak = max(f[pid][0] for f in after if pid in f) if after else rss1
        processes[pid] = {"rss_after_warmup_mib": round(rss0 / 2**20, 1),
                        "rss_end_mib": round(rss1 / 2**20, 1), "rss_peak_mib": round(peak / 2**20, 1),
                        "rss_growth_pct": round(100 * (rss1 - rss0) / rss0, 2),
                        "fds_after_warmup": fds0, "fds_end": fds1}
    missing = set(traffic.ids) - found
    growth = max((w["rss_growth_pct"] for w in processes.values()), default=None)
    goals = {
        "memory growth under 10%": growth is not None and growth < 10,
        "no file-descriptor leak": all(w["fds_end"] <= w["fds_after_warmup"] + FD_SLACK
                                       for w in processes.values()),
        "no process restarted": set(base) == set(settled[1]) and len(processes) == len(base),
        "every request recorded": not missing and len(found) == traffic.sent,
        "every request answered": not traffic.failures,
    }
    return {"seconds": round(seconds, 1), "warmup_seconds": round(warmup, 1), **settings,
            "requests_sent": traffic.sent, "answers_with_request_id": len(traffic.ids),
            "rows_recorded": len(found), "missing_rows": len(missing),
            "outcomes": dict(sorted(traffic.outcomes.items())),
            "failures": traffic.failures[:20], "failure_count": len(traffic.failures),
            "processes": processes, "max_rss_growth_pct": growth,
            "median_rss_mib": round(statistics.median(
                [rss for f in after for rss, _ in f.values()]) / 2**20, 1) if after else None,
            "goals": goals, "passed": all(goals.values())}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=40.0, help="requests per second, in all")
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--database", default="sqlite", help="sqlite, postgresql or a URL")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    # Stopped early (SIGTERM): unwind, so that the proxy and the upstream are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    result = run(args.minutes * 60, args.rate, args.clients, args.workers, args.database,
                 log=lambda line: print(line, flush=True))
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
