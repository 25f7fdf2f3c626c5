"""Not a test: rows/s and CPU per row of the recording writer's `save_records`.

    .venv/bin/python -m tests.common.writer_throughput [--kinds sqlite,postgresql]
        [--root OLD_CHECKOUT]

Small records (the bench's one-line request) in batches of 50, and Claude Code-shaped
requests near 1 MB (`bench.bodies.claude_code`) in batches of 5: a growing conversation
(each request two messages longer, as Claude Code sends them), the same body again, and
the same with the message cache off. `--root` measures another checkout's `common`
(`git archive <commit> common | tar -x -C DIR`) with this checkout's bodies and
databases. Figures: docs/recording-performance.md.
"""
import argparse
import datetime
import importlib
import json
import sys
import tempfile
import time
import uuid

from bench import bodies
from tests.databases import temporary_database

MESSAGE = {"id": "msg_1", "type": "message", "role": "assistant", "model": bodies.MODEL,
           "content": [{"type": "text", "text": "Hello there, five words."}],
           "stop_reason": "end_turn", "usage": {"input_tokens": 12, "output_tokens": 7}}


def record(body, now):
    return {"request_id": str(uuid.uuid4()), "timestamp": now, "domain": "localhost",
            "method": "POST", "path": "/v1/messages", "query": "",
            "request_headers": {"content-type": "application/json", "user-agent": "claude-cli/1.0"},
            "request_body": body, "response_status": 200,
            "response_headers": {"content-type": "application/json", "request-id": "req_1"},
            "response_body": json.dumps(MESSAGE).encode(), "stream": False,
            "duration_ms": 12.5, "first_token_ms": 11.0, "error": None,
            "upstream_request_id": "req_1", "auth_hash": "ab" * 32, "client_key_id": None,
            "account_id": None, "session_header": None}


def run(save_records, database, body_of, batches, size, prices, config):
    t0, c0, n = time.perf_counter(), time.process_time(), 0
    base = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    for b in range(batches):
        batch = [record(body_of(b * size + i), base + datetime.timedelta(milliseconds=b * size + i))
                 for i in range(size)]
        n += save_records(database, batch, prices, config)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return n, n / wall, cpu / max(n, 1) * 1000


def growing(total):
    """Bodies of one conversation near 1 MB, each two messages longer than the one before."""
    body = json.loads(bodies.claude_code())
    messages = body["messages"]
    out = []
    for i in range(total):
        cut = len(messages) - 2 * (total - 1 - i)
        out.append(json.dumps(dict(body, messages=messages[:cut])).encode())
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--kinds", default="sqlite,postgresql")
    p.add_argument("--small", type=int, default=40, help="batches of 50 small records")
    p.add_argument("--big", type=int, default=12, help="batches of 5 requests near 1 MB")
    p.add_argument("--root", help="measure the `common` package of this directory instead")
    a = p.parse_args()
    if a.root:
        sys.path.insert(0, a.root)
    nexus_config, nexus_db = (importlib.import_module(f"common.{m}") for m in ("config", "db"))
    try:
        rows = importlib.import_module("common.recording.rows")
    except ImportError:  # a checkout from before the recording wing
        rows = importlib.import_module("common.rows")
    migrate = importlib.import_module("common.migrations").migrate
    load_prices = importlib.import_module("common.pricing").load_prices
    save_records = importlib.import_module("common.recording.store").save_records
    prices, config = load_prices(), nexus_config.load({})
    small, big = bodies.small(), bodies.claude_code()
    grow = growing(5 + a.big * 5)
    caches = [c for c in (getattr(rows, "MESSAGE_CACHE", None), getattr(rows, "ELEMENT_CACHE", None))
              if c is not None]
    for kind in a.kinds.split(","):
        with tempfile.TemporaryDirectory() as tmp, temporary_database(kind, tmp) as url:
            database = nexus_db.connect(url)
            migrate(database)
            database.connect(reuse_if_open=True)
            run(save_records, database, lambda i: small, 2, 50, prices, config)  # warm-up
            n, rate, cpu = run(save_records, database, lambda i: small, a.small, 50, prices, config)
            print(f"{kind:10s} small          rows={n:5d} rows/s={rate:8.0f} cpu ms/row={cpu:.3f}")
            run(save_records, database, lambda i: grow[i], 1, 5, prices, config)  # warm-up, fills the cache
            n, rate, cpu = run(save_records, database, lambda i: grow[i + 5], a.big, 5, prices, config)
            print(f"{kind:10s} 1MB growing    rows={n:5d} rows/s={rate:8.1f} cpu ms/row={cpu:.2f}")
            n, rate, cpu = run(save_records, database, lambda i: big, a.big, 5, prices, config)
            print(f"{kind:10s} 1MB same body  rows={n:5d} rows/s={rate:8.1f} cpu ms/row={cpu:.2f}")
            if caches:
                bounds = [c.max_bytes for c in caches]
                for c in caches:
                    c.max_bytes = 0
                n, rate, cpu = run(save_records, database, lambda i: big, a.big, 5, prices, config)
                print(f"{kind:10s} 1MB cache off  rows={n:5d} rows/s={rate:8.1f} cpu ms/row={cpu:.2f}")
                for c, bound in zip(caches, bounds):
                    c.max_bytes = bound
            database.close()


if __name__ == "__main__":
    main()
