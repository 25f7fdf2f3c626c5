"""Bodies stored before pieces existed, converted in place by `nexus migrate`.

Such rows keep their bodies as text in `api_request_bodies.request_body` and
`response_body`. `convert` turns them into pieces and a recipe a batch at a time,
each batch in its own transaction, oldest request id first: it can stop at any
point and resume, and the proxy may keep writing meanwhile (new rows are never
legacy). A text holding U+FFFD may stand for bytes that were not valid UTF-8 (or a
NUL), so the exact bytes are unknown: such a body stays as it is, served marked
inexact. A stream's legacy response is the message rebuilt from its events, not the
events: it stays text too.
"""
import json

from ..models import ApiRequest, RequestBody
from .bodies import Body, BodyWriter, add_daily
from .rows import split_request

REPLACEMENT = "\ufffd"


def _candidates(after, batch_size):
    query = (RequestBody.select(RequestBody.request_id, RequestBody.request_body,
                                RequestBody.response_body, RequestBody.request_headers,
                                RequestBody.response_headers, ApiRequest.domain,
                                ApiRequest.timestamp, ApiRequest.stream)
             .join(ApiRequest, on=(ApiRequest.request_id == RequestBody.request_id))
             .where(RequestBody.request_recipe.is_null(), RequestBody.response_data.is_null(),
                    (RequestBody.request_body.is_null(False)
                     | RequestBody.response_body.is_null(False)),
                    RequestBody.request_id > after)
             .order_by(RequestBody.request_id).limit(batch_size))
    return list(query.dicts())


def _convertible(text):
    return text is not None and REPLACEMENT not in text


def _body(row):
    request = row["request_body"] if _convertible(row["request_body"]) else None
    response = None if row["stream"] or not _convertible(row["response_body"]) else row["response_body"]
    if request is None and response is None:
        return None
    data = request.encode("utf-8") if request is not None else None
    return Body(row["request_id"], row["domain"], row["timestamp"], split_request(data),
                len(data or b""), response.encode("utf-8") if response is not None else None,
                _headers(row["request_headers"]), _headers(row["response_headers"]))


def _headers(text):
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def convert(database, batch_size=500, progress=None):
    """Convert every legacy body that can be converted exactly; return (request bodies
    converted, request bodies kept as text)."""
    writer = BodyWriter()
    converted = kept = 0
    after = ""
    while True:
        rows = _candidates(after, batch_size)
        if not rows:
            return converted, kept
        after = rows[-1]["request_id"]
        kept += sum(1 for row in rows if row["request_body"] is not None
                    and not _convertible(row["request_body"]))
        work = [(row, body) for row, body in ((row, _body(row)) for row in rows) if body is not None]
        with database.atomic():
            values, sizes = writer.rows(database, [body for _, body in work])
            for (row, body), value in zip(work, values):
                changes = {RequestBody.request_recipe: value["request_recipe"],
                           RequestBody.request_size: value["request_size"],
                           RequestBody.response_headers_data: value["response_headers_data"],
                           RequestBody.request_headers: None, RequestBody.response_headers: None}
                if body.split is not None:
                    changes[RequestBody.request_body] = None
                if body.response is not None:
                    changes.update({RequestBody.response_data: value["response_data"],
                                    RequestBody.response_size: value["response_size"],
                                    RequestBody.response_body: None})
                RequestBody.update(changes).where(RequestBody.request_id == row["request_id"]).execute()
            add_daily(database, [body for _, body in work], sizes)
        writer.commit()
        converted += sum(1 for _, body in work if body.split is not None)
        if progress:
            progress(converted, kept)


def legacy_rows():
    """How many rows still hold a body as text."""
    return (RequestBody.select().where(RequestBody.request_body.is_null(False)
                                       | RequestBody.response_body.is_null(False)).count())
