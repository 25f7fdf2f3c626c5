"""Rows → CSV or JSON, streamed in batches so that a large export holds little memory."""
import csv
import datetime
import io
import json

from flask import Response, stream_with_context


def _cell(value):
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _converters(columns, sample):
    """Indexes of the columns that need converting (times, booleans), from a first row."""
    return [i for i, value in enumerate(sample) if isinstance(value, (datetime.datetime, bool))]


def csv_chunks(rows, columns):
    """CSV text in chunks: a header line, then one line per row (a tuple in `columns` order)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    convert = None
    for n, row in enumerate(rows, start=1):
        if convert is None:
            convert = _converters(columns, row)
        if convert:
            row = list(row)
            for i in convert:
                row[i] = _cell(row[i])
        writer.writerow(row)
        if n % 1000 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def json_chunks(rows, columns):
    """One JSON document {"requests": [...]}, written row by row."""
    head = '{"requests": ['  # sent with the first row, so the first byte means data
    sent = False
    for row in rows:
        yield ("," if sent else head) + json.dumps(dict(zip(columns, row)), default=_cell)
        sent = True
    yield ("" if sent else head) + "]}\n"


def download(chunks, fmt, filename):
    """A streamed attachment response for `chunks` of format `fmt` ("csv" or "json")."""
    mimetype = "text/csv" if fmt == "csv" else "application/json"
    response = Response(stream_with_context(chunks), mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}.{fmt}"'
    return response
