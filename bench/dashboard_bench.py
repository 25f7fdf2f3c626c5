"""Time every dashboard page and API route at server side on a seeded database.

    python -m bench.seed --database-url URL --rows 1000000
    python -m bench.dashboard_bench --database-url URL [--repeat 5] [--markdown out.md]
        [--only 'overview|API usage']   (a regular expression over the labels)

Each route is requested through the WSGI app in this process (no network), with the
X-Dashboard-Key header; the time is from the call to the last byte of the body. The
first run of each route is reported apart (cold caches), then the median and the worst
of the next `--repeat` runs, and the median CPU time of this process (on SQLite that
includes the database's work; it does not grow when other processes share the cores).
"""
import argparse
import os
import re
import statistics
import sys
import time

from common import config as nexus_config
from peewee import fn

from common.models import ApiRequest, RequestBody

KEY = "bench-key"


def _samples(database):
    """Ids the detail routes need: a recent request with a body, a large conversation."""
    with database.connection_context():
        newest = (ApiRequest.select(ApiRequest.request_id).join(
            RequestBody, on=(RequestBody.request_id == ApiRequest.request_id))
            .order_by(ApiRequest.timestamp.desc()).limit(1).scalar())
        conv = (ApiRequest.select(ApiRequest.conversation_id)
                .where(ApiRequest.conversation_id.is_null(False), ApiRequest.message_count > 90)
                .order_by(ApiRequest.timestamp.desc()).limit(1).scalar())
        old = (ApiRequest.select(ApiRequest.timestamp, ApiRequest.id)
               .order_by(ApiRequest.timestamp).offset(1000).limit(1).tuples().first())
        account = (ApiRequest.select(ApiRequest.account_id)
                   .where(ApiRequest.account_id.is_null(False)).limit(1).scalar())
        domain = ApiRequest.select(ApiRequest.domain).limit(1).scalar()
        project = (ApiRequest.select(ApiRequest.project)
                   .where(ApiRequest.project.is_null(False)).limit(1).scalar())
        last_id = ApiRequest.select(fn.MAX(ApiRequest.id)).scalar()
    from dashboard.params import make_cursor
    return {"rid": newest, "cid": conv, "cursor": make_cursor(*old), "account": account,
            "domain": domain, "after": last_id - 20, "project": project}


def routes(s):
    """(label, path) of every page and API route, with realistic filters."""
    return [
        ("overview, 7 days", "/"), ("overview, 24 h", "/?since=24h"),
        ("overview, 30 days", "/?since=30d"), ("overview, one domain", f"/?domain={s['domain']}"),
        ("requests", "/requests"), ("requests, domain", f"/requests?domain={s['domain']}"),
        ("requests, model", "/requests?model=claude-opus-4-1-20250805"),
        ("requests, status 5xx", "/requests?status=5xx"),
        ("requests, type quota", "/requests?type=quota"),
        ("requests, last 3 days", "/requests?since=3d"),
        ("requests, search id", f"/requests?q={s['rid']}"),
        ("requests, search text", "/requests?q=prompt+is+too+long"),
        ("requests, deep page", f"/requests?before={s['cursor']}"),
        ("requests, live poll (20 new rows)", f"/requests/live?after={s['after']}"),
        ("requests, live poll (nothing new)", f"/requests/live?after={s['after'] + 20}"),
        ("request detail", f"/requests/{s['rid']}"),
        ("conversations", "/conversations"), ("conversations, domain", f"/conversations?domain={s['domain']}"),
        ("conversation detail", f"/conversations/{s['cid']}"),
        ("token usage", "/token-usage"), ("token usage, one account", f"/token-usage?account_id={s['account']}"),
        ("export CSV (10,000 rows)", "/requests/export.csv"),
        ("export JSON (10,000 rows)", "/requests/export.json"),
        ("API requests", "/api/requests"), ("API requests CSV", "/api/requests?format=csv"),
        ("API request", f"/api/requests/{s['rid']}"),
        ("API conversations", "/api/conversations"),
        ("API conversation", f"/api/conversations/{s['cid']}"),
        ("API stats", "/api/stats"), ("API token usage", "/api/token-usage"),
        ("limits", "/limits"), ("API limits", "/api/limits"),
        *[(f"API usage by {by}, 7 days", f"/api/usage?group_by={by}")
          for by in ("project", "branch", "developer", "session", "subagent", "model")],
        ("API usage by project, 30 days", "/api/usage?group_by=project&since=30d"),
        ("API usage by session, 30 days", "/api/usage?group_by=session&since=30d"),
        ("usage page, 7 days", "/usage"), ("usage page by branch, 30 days",
                                           "/usage?group_by=branch&since=30d"),
        ("requests, one project", f"/requests?project={s['project']}"),
        ("health", "/health"),
    ]


def _time(client, path):
    """(wall ms, this process's CPU ms) of one request, to the last byte."""
    started, cpu = time.perf_counter(), time.process_time()
    response = client.get(path, headers={"X-Dashboard-Key": KEY})
    response.get_data()
    elapsed = ((time.perf_counter() - started) * 1000, (time.process_time() - cpu) * 1000)
    if response.status_code not in (200, 204):
        raise RuntimeError(f"{path}: {response.status_code} {response.get_data()[:200]!r}")
    return elapsed


def first_byte(client, path):
    """Milliseconds until a streamed response yields its first chunk."""
    started = time.perf_counter()
    response = client.get(path, headers={"X-Dashboard-Key": KEY}, buffered=False)
    next(iter(response.response))
    elapsed = (time.perf_counter() - started) * 1000
    response.close()
    return elapsed


def run(database_url, repeat=5, only=None):
    """[(label, path, cold ms, median ms, worst ms, median CPU ms)] for every route (whose
    label matches the regular expression `only`, if given)."""
    from dashboard.app import create_app
    app = create_app(nexus_config.load({"DATABASE_URL": database_url, "DASHBOARD_API_KEY": KEY}))
    from common.db import database
    samples = _samples(database)
    client = app.test_client()
    results = []
    for label, path in routes(samples):
        if only and not re.search(only, label):
            continue
        cold = _time(client, path)[0]
        timed = [_time(client, path) for _ in range(repeat)]
        warm = [wall for wall, _ in timed]
        cpu = statistics.median(c for _, c in timed)
        if "export" in path:
            ttfb = statistics.median(first_byte(client, path) for _ in range(repeat))
            label = f"{label}; first byte after {ttfb:.0f} ms"
        results.append((label, path, cold, statistics.median(warm), max(warm), cpu))
        print(f"{label:32} cold {cold:8.1f}  median {statistics.median(warm):8.1f}  "
              f"worst {max(warm):8.1f}  cpu {cpu:8.1f} ms", file=sys.stderr)
    return results


def markdown(title, results):
    """A table of `results` in Markdown."""
    load = os.getloadavg()[0]
    lines = [f"### {title}", "", f"Load average when the run ended: {load:.1f} on {os.cpu_count()} cores.", "",
             "| route | cold ms | median ms | worst ms | median CPU ms (this process) |",
             "|---|---:|---:|---:|---:|"]
    for label, path, cold, median, worst, cpu in results:
        route = path.split("?")[0]
        route = re.sub(r"/[0-9a-f-]{36}$", "/<id>", route)
        lines.append(f"| {label} (`{route}`) | {cold:.0f} | {median:.0f} | {worst:.0f} | {cpu:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--title", default="")
    parser.add_argument("--markdown", help="append a Markdown table to this file")
    parser.add_argument("--only", help="time only the routes whose label matches this regex")
    args = parser.parse_args(argv)
    results = run(args.database_url, args.repeat, args.only)
    if args.markdown:
        with open(args.markdown, "a", encoding="utf-8") as handle:
            handle.write(markdown(args.title or args.database_url, results) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
