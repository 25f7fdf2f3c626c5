"""Fill a database with realistic synthetic traffic, fast, then rebuild the aggregates.

    python -m bench.seed --database-url sqlite:///data/bench.db --rows 1000000

Records come from `bench.synthetic` (conversations with branches, sub-agents, side
calls, errors, streams, cache tokens) spread over `--days` days ending now. Each day is
turned into rows by the recorder's own pure code: `common.recording.rows.derive` (model, usage,
cost with `common.pricing`, hashes, request type, session) and `common.recording.conversation_index.link`
over an in-memory index of the day, so that `nexus relink` and `nexus reprice` find
nothing to change. Rows, the kept bodies and Task invocations are then inserted in time
order with bulk statements: executemany on SQLite, execute_values on PostgreSQL.
"""
import argparse
import concurrent.futures
import datetime
import functools
import json
import multiprocessing
import os
import random
import sys
import time

import peewee

from common import config as nexus_config
from common import db as nexus_db
from common.migrations import migrate
from common.models import ApiRequest, TaskInvocation, utcnow
from common.pricing import load_prices
from common.recording import ratelimit_samples
from common.recording.bodies import BodyWriter
from common.recording.conversation_index import LinkIndex, inherit, link
from common.recording.rows import derive, shown_response

from . import synthetic

ROW_COLUMNS = tuple(f.column_name for f in ApiRequest._meta.sorted_fields if f.name != "id")
LEGACY_COLUMNS = ("request_id", "request_body", "response_body", "request_headers",
                  "response_headers")
TASK_COLUMNS = tuple(f.column_name for f in TaskInvocation._meta.sorted_fields if f.name != "id")
BATCH = 2000


def _values(rows, columns, sqlite):
    out = []
    for row in rows:
        values = []
        for col in columns:
            value = row.get(col)
            if sqlite and isinstance(value, datetime.datetime):
                value = value.isoformat(" ", "microseconds")
            values.append(value)
        out.append(tuple(values))
    return out


def _insert(database, table, columns, rows):
    """Insert `rows` (dicts) into `table` in batches, in one transaction."""
    sqlite = isinstance(database, peewee.SqliteDatabase)
    names = ", ".join(columns)
    with database.atomic():
        cursor = database.cursor()
        for start in range(0, len(rows), BATCH):
            values = _values(rows[start:start + BATCH], columns, sqlite)
            if sqlite:
                marks = ", ".join("?" for _ in columns)
                cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", values)
            else:
                from psycopg2.extras import execute_values
                execute_values(cursor, f"INSERT INTO {table} ({names}) VALUES %s", values,
                               page_size=BATCH)


def rebuild_aggregates(database):
    """Rebuild the hourly aggregates with common.recording.aggregates (helper B's module)."""
    from common.recording import aggregates
    return aggregates.rebuild(database)


def legacy_body(record, body):
    """`body` as releases before pieces stored it: text columns (to time `nexus migrate`)."""
    def text(data):
        return None if data is None else bytes(data).decode("utf-8", "replace").replace("\x00", "\ufffd")
    response = record.get("response_body")
    if record.get("stream") and response is not None:
        shown = shown_response(response)
        response = json.dumps(shown).encode() if shown else None
    return {"request_id": body.request_id, "request_body": text(record.get("request_body")),
            "response_body": text(response), "request_headers": json.dumps(body.request_headers),
            "response_headers": json.dumps(body.response_headers)}


def rows_of(records, prices, config, keep_body, legacy=False):
    """(rows, bodies, task invocations) the recorder would store for `records` (oldest
    first), linked to each other in memory; bodies only where `keep_body()` says so."""
    index = LinkIndex(stored=False)
    rows, bodies, tasks = [], [], []
    for record in records:
        derived = derive(record, prices, config)
        derived.row.update(link(derived.row, derived.features, index))
        inherit(derived.row, index)
        index.add(derived.row, derived.features)
        rows.append(derived.row)
        if derived.body and keep_body():
            bodies.append(legacy_body(record, derived.body) if legacy else derived.body)
        tasks += [{"request_id": derived.row["request_id"], "domain": derived.row["domain"],
                   "tool_use_id": tool_use_id, "prompt_hash": prompt_hash,
                   "timestamp": derived.row["timestamp"],
                   "subagent_type": derived.features.subagent_types.get(tool_use_id)}
                  for tool_use_id, prompt_hash in derived.features.invocations]
    return rows, bodies, tasks


def _day(job):
    """Rows, bodies and Task invocations of one day: pure, so days run in any process.

    Each day has its own random stream (seeded by the seed and the day's number), so
    the traffic is the same whether days run one after another or side by side.
    """
    seed_value, number, day, want, end, body_fraction, prices, settings, legacy, *more = job
    text_words = more[0] if more else 0  # --text-words (jobs made before it have no 10th)
    config = _config(tuple(sorted(settings.items())))
    rng = random.Random(f"{seed_value}/{number}")
    records = [r for r in synthetic.day_of_records(rng, day, want, text_words)
               if r["timestamp"] <= end][:want]
    return rows_of(records, prices, config, lambda: rng.random() < body_fraction, legacy)


@functools.lru_cache(maxsize=4)
def _config(settings):
    return nexus_config.load(dict(settings))


def _store(database, rows, bodies, tasks, body_writer):
    _insert(database, "api_requests", ROW_COLUMNS, rows)
    if bodies and isinstance(bodies[0], dict):  # --legacy-bodies
        _insert(database, "api_request_bodies", LEGACY_COLUMNS, bodies)
    else:
        with database.atomic():  # as the recorder stores them: pieces once, a recipe each
            body_writer.save(database, bodies)
        body_writer.commit()
    _insert(database, "task_invocations", TASK_COLUMNS, tasks)
    return len(rows)


def _results(jobs, workers):
    if workers <= 1:
        yield from map(_day, jobs)
        return
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        yield from pool.map(_day, jobs)


def seed(database, rows, days=30, seed_value=1, body_fraction=0.05, end=None, progress=None,
         prices=None, config=None, workers=1, legacy_bodies=False, text_words=0):
    """Insert about `rows` rows over `days` days ending at `end`; return the count inserted.

    `prices` and `config` (price table, Task tool names) default to the built-in ones;
    pass those `nexus relink`/`reprice` will use if they differ. `workers` processes
    derive days in parallel; this process inserts them in order."""
    prices = prices or load_prices()
    config = config or nexus_config.load({})
    # What derive() reads, as plain data for other processes; the seeder keeps bodies itself.
    settings = {"NEXUS_SUBTASK_TOOLS": config.subtask_tools, "NEXUS_CAPTURE_BODIES": "all"}
    end = end or utcnow()
    first_day = end.date() - datetime.timedelta(days=days - 1)
    per_day = max(1, rows // days)
    wants = [per_day] * (days - 1) + [max(0, rows - per_day * (days - 1))]
    jobs = [(seed_value, n, first_day + datetime.timedelta(days=n), want, end, body_fraction,
             prices, settings, legacy_bodies, text_words) for n, want in enumerate(wants) if want > 0]
    inserted, number = 0, days
    rng = random.Random(seed_value)
    body_writer = BodyWriter()
    while True:
        for result in _results(jobs, workers):
            inserted += _store(database, *result, body_writer)
            if progress:
                progress(inserted)
        if inserted >= rows:
            return inserted
        # Today is cut at `end`: top up on an earlier day.
        day = first_day + datetime.timedelta(days=rng.randrange(max(1, days - 1)))
        jobs = [(seed_value, number, day, rows - inserted, end, body_fraction, prices, settings,
                 legacy_bodies, text_words)]
        number += 1


def main(argv=None):
    """Entry point: parse arguments, migrate, seed, rebuild aggregates."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--body-fraction", type=float, default=0.05,
                        help="share of rows that get stored bodies and headers")
    parser.add_argument("--legacy-bodies", action="store_true",
                        help="store bodies as releases before pieces did (to time `nexus migrate`)")
    parser.add_argument("--text-words", type=int, default=0,
                        help="words of prose in each tool result, a quarter as many in answers "
                             "(searchable text for bench.search_bench)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="processes that derive rows (default: one per CPU)")
    args = parser.parse_args(argv)
    config = nexus_config.load()  # NEXUS_PRICING_FILE and NEXUS_SUBTASK_TOOLS, as relink/reprice
    database = nexus_db.connect(args.database_url)
    migrate(database)
    started = time.monotonic()
    with database.connection_context():
        count = seed(database, args.rows, args.days, args.seed, args.body_fraction,
                     progress=lambda n: print(f"\r{n} rows", end="", file=sys.stderr),
                     prices=load_prices(config.pricing_file), config=config,
                     workers=args.workers, legacy_bodies=args.legacy_bodies,
                     text_words=args.text_words)
        print(f"\ninserted {count} rows in {time.monotonic() - started:.0f} s", file=sys.stderr)
        started = time.monotonic()
        rebuild_aggregates(database)
        print(f"aggregates rebuilt in {time.monotonic() - started:.0f} s", file=sys.stderr)
        # The writer keeps the subscription-window samples; rows inserted here bypass it.
        with database.atomic():
            samples = ratelimit_samples.backfill(database)
        print(f"{samples} subscription-window samples", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
