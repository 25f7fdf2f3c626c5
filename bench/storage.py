"""The storage workload: a Claude Code session of 100+ turns through the proxy, and what
the database grew by, on SQLite and on PostgreSQL.

The session is shaped like real Claude Code's: its system prompt and tool definitions
are those of a real request (tests/data/claude_code/, Claude Code 2.1), and each turn
adds an assistant message with a Read call and a tool result holding a source file of
this repository, with `cache_control` moved to the newest message as Claude Code moves
it. Every request resends the whole history. What is measured: bytes sent (request
bodies), rows written, and the database's growth (SQLite: the file after a WAL
checkpoint; PostgreSQL: `pg_database_size`), besides the body tables' own share.

    python -m bench.storage [--turns 120] [--targets proxy-sqlite,proxy-postgresql]

The figures go to bench/results/storage-<date>.json and, between markers, to
docs/recording-performance.md ("Storage of a long session").
"""
import argparse
import contextlib
import copy
import datetime
import http.client
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from bench import lineup, servers
from bench.scenarios import settle

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "tests" / "data" / "claude_code" / "auth_token" / "main.json"
BEGIN = "<!-- BEGIN storage (bench/storage.py) -->"
END = "<!-- END storage -->"
MAX_FILE = 12_000  # characters of a file a Read result holds


def source_files():
    """This repository's Python sources, as a Read tool result would show them."""
    files = sorted(p for p in ROOT.glob("*/**/*.py") if ".venv" not in p.parts)
    return [(str(p.relative_to(ROOT)), p.read_text()[:MAX_FILE]) for p in files]


def session(turns):
    """Request bodies (bytes) of one session of `turns` turns, in order."""
    template = json.loads(TEMPLATE.read_text())
    files = source_files()
    messages = copy.deepcopy(template["messages"])
    bodies = []
    for turn in range(turns):
        for message in messages:  # the breakpoint moves to the newest message
            if isinstance(message.get("content"), list):
                for block in message["content"]:
                    block.pop("cache_control", None)
        last = messages[-1]["content"]
        if isinstance(last, list) and last:
            last[-1]["cache_control"] = {"type": "ephemeral"}
        bodies.append(json.dumps({**template, "messages": messages}).encode())
        name, text = files[turn % len(files)]
        tool_id = f"toolu_bench{turn:05d}"
        messages = messages + [
            {"role": "assistant", "content": [
                {"type": "text", "text": f"Let me read {name}."},
                {"type": "tool_use", "id": tool_id, "name": "Read",
                 "input": {"file_path": f"/work/project/{name}"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": tool_id,
                 "content": "\n".join(f"{n:6}\t{line}" for n, line in
                                      enumerate(text.splitlines(), start=1))}]}]
    return bodies


def _post(port, body):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", "/v1/messages", body, {
            "content-type": "application/json", "anthropic-version": "2023-06-01",
            "authorization": "Bearer sk-ant-oat01-bench", "user-agent": "claude-cli/2.1.197",
            "x-app": "cli", "x-claude-code-session-id": "bench-session"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def _database_bytes(db_url):
    from common.db import open_database
    database = open_database(db_url, pool_size=1)
    try:
        if db_url.startswith("sqlite"):
            database.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            path = db_url.split("sqlite:///", 1)[1]
            total = os.path.getsize(path)
            bodies = database.execute_sql(
                "SELECT SUM(pgsize) FROM dbstat WHERE name IN (SELECT name FROM sqlite_master "
                "WHERE tbl_name IN ('body_pieces', 'api_request_bodies'))").fetchone()[0]
        else:
            total = database.execute_sql("SELECT pg_database_size(current_database())").fetchone()[0]
            bodies = sum(database.execute_sql("SELECT pg_total_relation_size(%s)", (t,)).fetchone()[0]
                         for t in ("body_pieces", "api_request_bodies"))
        return total, bodies or 0
    finally:
        database.close()


def measure(target_name, bodies, workdir):
    """Send the session through one proxy target; its figures."""
    with servers.upstream(workdir) as upstream, \
            lineup.start(target_name, upstream, workdir) as target:
        db_url = target.notes.get("db_url")
        warm_up = {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]}
        _post(target.port, json.dumps(warm_up).encode())  # migrations, the writer process
        settle(target.count_rows, 30, expected=1)
        before_total, before_bodies = _database_bytes(db_url)
        started = time.monotonic()
        statuses = [_post(target.port, body) for body in bodies]
        rows, _ = settle(target.count_rows, 120, expected=len(bodies) + 1)
        elapsed = time.monotonic() - started
        after_total, after_bodies = _database_bytes(db_url)
    sent = sum(len(b) for b in bodies)
    grown = after_total - before_total
    return {"target": target_name, "requests": len(bodies), "ok": statuses.count(200),
            "rows": rows - 1, "bytes_sent": sent, "database_growth": grown,
            "body_tables_growth": after_bodies - before_bodies,
            "share": grown / sent, "bytes_per_request": grown / len(bodies),
            "largest_request": max(len(b) for b in bodies), "seconds": round(elapsed, 1)}


def section(results):
    """The generated part of the page."""
    lines = [BEGIN, "",
             f"Run {results['started']}: one session of {results['turns']} turns "
             f"({results['runs'][0]['requests']} requests, the last "
             f"{results['runs'][0]['largest_request'] / 1000:.0f} KB), "
             f"{results['runs'][0]['bytes_sent'] / 1e6:.1f} MB of request bodies sent. "
             "Growth is the whole database's (rows, indexes, aggregates, bodies) after the "
             "session, against before it.", "",
             "| database | bytes sent | database growth | share of sent | per request | "
             "body tables | rows |", "|---|---|---|---|---|---|---|"]
    for run in results["runs"]:
        lines.append(f"| {run['target'].split('-', 1)[1]} | {run['bytes_sent'] / 1e6:.1f} MB | "
                     f"{run['database_growth'] / 1e6:.2f} MB | {100 * run['share']:.1f} % | "
                     f"{run['bytes_per_request'] / 1000:.1f} KB | "
                     f"{run['body_tables_growth'] / 1e6:.2f} MB | {run['rows']} |")
    lines += ["", "Goal: at most 5 % of the bytes sent: "
              + ", ".join(f"{r['target'].split('-', 1)[1]} {'met' if r['share'] <= 0.05 else 'missed'}"
                          for r in results["runs"]) + ".", "", END]
    return "\n".join(lines)


def update_page(page, generated):
    text = page.read_text()
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + generated + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n## Storage of a long session\n\n" + generated + "\n"
    page.write_text(text)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.storage", description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=120)
    parser.add_argument("--targets", default="proxy-sqlite,proxy-postgresql")
    parser.add_argument("--results-dir", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--page", default=str(ROOT / "docs" / "recording-performance.md"))
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args(argv)
    bodies = session(args.turns)
    started = datetime.datetime.now(datetime.timezone.utc)
    runs = []
    with tempfile.TemporaryDirectory(prefix="nexus-storage-") as workdir:
        for name in args.targets.split(","):
            runs.append(measure(name, bodies, workdir))
            print(json.dumps(runs[-1]), file=sys.stderr)
    results = {"started": started.strftime("%Y-%m-%d %H:%M UTC"), "turns": args.turns, "runs": runs}
    results_dir = Path(args.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"storage-{started:%Y-%m-%d}.json"
    path.write_text(json.dumps(results, indent=1) + "\n")
    if not args.no_docs:
        update_page(Path(args.page), section(results))
    return 0 if all(r["ok"] == r["requests"] for r in runs) else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
