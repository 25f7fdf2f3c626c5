"""Rows → CSV or JSON, streamed in batches so that a large export holds little memory."""
import csv
import datetime
import io
import json

from flask import Response, stream_with_context


TIME_COLUMNS = ("timestamp",)
BOOL_COLUMNS = ("stream", "is_subtask")


def _time(value):
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    return value.replace(" ", "T", 1) if isinstance(value, str) else value


def _bool(value):
    return None if value is None else bool(value)


def _normaliser(columns):
    """A function making one row's times ISO strings and its booleans bools."""
    fixes = [(columns.index(c), _time) for c in TIME_COLUMNS if c in columns]
    fixes += [(columns.index(c), _bool) for c in BOOL_COLUMNS if c in columns]

    def normalise(row):
        row = list(row)
        for index, fix in fixes:
            row[index] = fix(row[index])
        return row
    return normalise


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value):
    return ("true" if value else "false") if isinstance(value, bool) else value


def _inert(value):
    """A text cell a spreadsheet would run as a formula, quoted with a leading apostrophe
    (OWASP's advice); numbers, including negative ones, stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_chunks(rows, columns):
    """CSV text in chunks: a header line, then one line per row (a tuple in `columns` order)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([_inert(c) for c in columns])
    normalise = _normaliser(columns)
    bools = [columns.index(c) for c in BOOL_COLUMNS if c in columns]
    cost = columns.index("cost_usd") if "cost_usd" in columns else None
    for n, row in enumerate(rows, start=1):
        row = normalise(row)
        for index in bools:
            row[index] = _csv_cell(row[index])
        if cost is not None and row[cost] is None:
            row[cost] = "unpriced"  # no known price: not free (an empty cell reads as 0)
        writer.writerow([_inert(cell) for cell in row])
        if n % 1000 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def json_chunks(rows, columns):
    """One JSON document {"requests": [...]}, written row by row."""
    head = '{"requests": ['  # sent with the first row, so the first byte means data
    normalise = _normaliser(columns)
    sent = False
    for row in rows:
        yield ("," if sent else head) + json.dumps(dict(zip(columns, normalise(row))))
        sent = True
    yield ("" if sent else head) + "]}\n"


def download(chunks, fmt, filename):
    """A streamed attachment response for `chunks` of format `fmt` ("csv" or "json")."""
    mimetype = "text/csv" if fmt == "csv" else "application/json"
    response = Response(stream_with_context(chunks), mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}.{fmt}"'
    return response
