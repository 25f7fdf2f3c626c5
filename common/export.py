"""`nexus export`: rows as CSV or JSON lines, streamed in pages, never the whole table."""
import csv
import datetime
import json
import sys
from contextlib import contextmanager

import peewee as pw

from .models import CONTRACT_COLUMNS, ApiRequest

COLUMNS = CONTRACT_COLUMNS


def parse_when(text):
    """A naive UTC datetime from an ISO date or datetime (an offset is converted)."""
    try:
        moment = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not an ISO date or datetime: {text!r} (try 2026-11-26 or "
                         "2026-11-26T09:30:00)") from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return moment


def rows(since=None, until=None, domain=None, page=1000):
    """Dicts of the contract columns, oldest first, fetched a page at a time."""
    fields = [getattr(ApiRequest, c) for c in COLUMNS] + [ApiRequest.id]
    last = None
    while True:
        query = ApiRequest.select(*fields).order_by(ApiRequest.timestamp, ApiRequest.id).limit(page)
        if since:
            query = query.where(ApiRequest.timestamp >= since)
        if until:
            query = query.where(ApiRequest.timestamp < until)
        if domain:
            query = query.where(ApiRequest.domain == domain)
        if last:  # a row-value comparison, so that the (timestamp, id) index serves it
            query = query.where(pw.Tuple(ApiRequest.timestamp, ApiRequest.id) > pw.Tuple(*last))
        batch = list(query.dicts())
        for row in batch:
            yield {c: row[c] for c in COLUMNS}
        if len(batch) < page:
            return
        last = (batch[-1]["timestamp"], batch[-1]["id"])


def _plain(value):
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    return value


def write_csv(out, records):
    """CSV with a header row; booleans as true/false, empty cells for nulls, and
    `unpriced` for the cost of a request whose model has no known price."""
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for row in records:
        writer.writerow(["unpriced" if k == "cost_usd" and v is None else
                         "true" if v is True else "false" if v is False else
                         "" if v is None else _plain(v) for k, v in row.items()])


def write_jsonl(out, records):
    """One JSON object per line."""
    for row in records:
        out.write(json.dumps({k: _plain(v) for k, v in row.items()}) + "\n")


@contextmanager
def _output(path):
    if path in (None, "-"):
        yield sys.stdout
    else:
        with open(path, "w", encoding="utf-8", newline="") as handle:
            yield handle


def cmd_export(args, config):
    """Write the rows matching --since/--until/--domain as CSV or JSON lines."""
    from .db import connect
    try:
        since = parse_when(args.since) if args.since else None
        until = parse_when(args.until) if args.until else None
    except ValueError as error:
        print(f"nexus export: {error}", file=sys.stderr)
        return 2
    database = connect(config.database_url)
    writer = write_csv if args.format == "csv" else write_jsonl
    try:
        with _output(args.output) as out:
            writer(out, rows(since, until, args.domain))
    finally:
        database.close()
    return 0
