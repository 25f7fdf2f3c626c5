"""Time /api/search on a seeded database: words from the most common to absent.

    python -m bench.search_bench                      # seeds 1,000,000 rows per database
    python -m bench.search_bench --rows 50000 --databases sqlite --no-docs
    python -m bench.search_bench --database-url URL   # a database bench.seed filled

Without --database-url it seeds a fresh SQLite file and a fresh PostgreSQL database with
`bench.seed` (every request keeping its bodies, tool results carrying --text-words words
of Zipf-distributed prose, answers a quarter as many), ANALYZEs PostgreSQL, then asks
/api/search through the WSGI app (as bench.dashboard_bench does) for each query of
QUERIES, --repeat times, and reports the median and worst per query and the p50 over all.
The result replaces the search section of docs/performance-dashboard.md.
"""
import argparse
import datetime
import os
import re
import statistics
import sys
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path

from common import config as nexus_config
from common import db as nexus_db
from common.migrations import migrate

from . import seed as bench_seed
from .synthetic import DOMAINS, VOCABULARY

ROOT = Path(__file__).resolve().parent.parent
KEY = "bench-key"
TARGET_MS = 300
BEGIN, END = "<!-- search-bench -->", "<!-- /search-bench -->"
# (label, query string): word ranks by Zipf frequency (rank 1 is in nearly every entry).
QUERIES = (
    ("most common word (rank 1)", {"q": VOCABULARY[0]}),
    ("frequent word (rank 50)", {"q": VOCABULARY[49]}),
    ("medium word (rank 1,000)", {"q": VOCABULARY[999]}),
    ("rare word (rank 15,000)", {"q": VOCABULARY[14999]}),
    ("absent word", {"q": "xylophonequartz"}),
    ("two words (ranks 1 and 1,000)", {"q": f"{VOCABULARY[0]} {VOCABULARY[999]}"}),
    ("every answer's word", {"q": "working"}),
    ("common word, one domain", {"q": VOCABULARY[0], "domain": DOMAINS[3]}),
    ("medium word, last day", {"q": VOCABULARY[999], "since": "1d"}),
    ("rare word, limit 100", {"q": VOCABULARY[14999], "limit": "100"}),
)


def _time(client, query):
    path = "/api/search?" + urllib.parse.urlencode(query)
    started = time.perf_counter()
    response = client.get(path, headers={"X-Dashboard-Key": KEY})
    response.get_data()
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"{path}: {response.status_code} {response.get_data()[:200]!r}")
    return elapsed, len(response.json["results"])


def run(database_url, repeat=5):
    """[(label, hits, cold ms, median ms, worst ms)] for every query, and all warm times."""
    from dashboard.app import create_app
    app = create_app(nexus_config.load({"DATABASE_URL": database_url, "DASHBOARD_API_KEY": KEY}))
    client = app.test_client()
    results, every = [], []
    for label, query in QUERIES:
        cold, hits = _time(client, query)
        warm = [_time(client, query)[0] for _ in range(repeat)]
        every += warm
        results.append((label, hits, cold, statistics.median(warm), max(warm)))
        print(f"{label:34} hits {hits:4}  cold {cold:7.1f}  median {statistics.median(warm):7.1f}"
              f"  worst {max(warm):7.1f} ms", file=sys.stderr)
    return results, every


def entries(database_url):
    """How many requests and search entries the database holds."""
    database = nexus_db.open_database(database_url)
    try:
        return tuple(database.execute_sql(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                     for table in ("api_requests", "search_entries"))
    finally:
        database.close()


def create(kind, workdir, pg_admin):
    """The URL of a new, empty database of `kind`."""
    if kind == "sqlite":
        return f"sqlite:///{workdir}/search-bench-{uuid.uuid4().hex[:8]}.db"
    import psycopg2
    name = f"nexus_bench_search_{uuid.uuid4().hex[:8]}"
    conn = psycopg2.connect(pg_admin)
    conn.autocommit = True
    conn.cursor().execute(f"CREATE DATABASE {name}")
    conn.close()
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


def seeded(kind, url, rows, text_words):
    """Seed `url` with `rows` rows; the seconds it took."""
    database = nexus_db.connect(url)
    migrate(database)
    started = time.monotonic()
    with database.connection_context():
        bench_seed.seed(database, rows, days=30, body_fraction=1.0, text_words=text_words,
                        workers=os.cpu_count() or 1,
                        progress=lambda n: print(f"\r{kind}: {n} rows", end="", file=sys.stderr))
        if kind == "postgresql":
            database.execute_sql("ANALYZE")  # what autovacuum does after a bulk load
    print(file=sys.stderr)
    database.close()
    return time.monotonic() - started


def drop(url, pg_admin):
    """Remove a database `seeded` made."""
    if url.startswith("sqlite:///"):
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(url[len("sqlite:///"):] + suffix):
                os.remove(url[len("sqlite:///"):] + suffix)
        return
    import psycopg2
    conn = psycopg2.connect(pg_admin)
    conn.autocommit = True
    conn.cursor().execute(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")
    conn.close()


def markdown(title, results, every, counts):
    """A table of one database's results."""
    p50 = statistics.median(every)
    lines = [f"### {title}", "",
             f"{counts[0]:,} requests, {counts[1]:,} search entries. p50 over every query: "
             f"**{p50:.0f} ms** (target {TARGET_MS} ms); load average at the end "
             f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.", "",
             "| query | results | cold ms | median ms | worst ms |", "|---|---:|---:|---:|---:|"]
    for label, hits, cold, median, worst in results:
        lines.append(f"| {label} | {hits} | {cold:.0f} | {median:.0f} | {worst:.0f} |")
    return "\n".join(lines) + "\n"


def write_page(page, section):
    """Replace the search section of `page` (between BEGIN and END) with `section`."""
    text = Path(page).read_text(encoding="utf-8")
    block = f"{BEGIN}\n{section}{END}"
    if BEGIN in text:
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    Path(page).write_text(text, encoding="utf-8")


def main(argv=None):
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m bench.search_bench",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="time this seeded database instead of seeding")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--text-words", type=int, default=200)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workdir", default=tempfile.gettempdir())
    parser.add_argument("--pg-admin-dsn", default="host=127.0.0.1 port=5432 user=postgres dbname=postgres")
    parser.add_argument("--page", default=str(ROOT / "docs" / "performance-dashboard.md"))
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the databases it seeded")
    args = parser.parse_args(argv)
    targets = ([("given", args.database_url)] if args.database_url
               else [(kind, None) for kind in args.databases.split(",")])
    sections = []
    for kind, url in targets:
        note = ""
        if url is None:
            url, note = create(kind, args.workdir, args.pg_admin_dsn), " (seeded)"
        try:
            if note:
                note = f" (seeded in {seeded(kind, url, args.rows, args.text_words):.0f} s)"
            results, every = run(url, args.repeat)
            title = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}.get(kind, url.split(":")[0])
            sections.append(markdown(f"{title}, {datetime.date.today().isoformat()}{note}",
                                     results, every, entries(url)))
        finally:
            if note and not args.keep:
                drop(url, args.pg_admin_dsn)
            elif note:
                print(f"kept {url}", file=sys.stderr)
        print(sections[-1])
    if not args.no_docs:
        write_page(args.page, "\n".join(sections))
    return 0


if __name__ == "__main__":
    sys.exit(main())
