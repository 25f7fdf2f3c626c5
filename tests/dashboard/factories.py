"""Rows for dashboard tests: hand-made requests, and seeded synthetic traffic."""
import datetime
import json
import uuid

from bench import seed as bench_seed
from common.recording import aggregates
from common.models import ApiRequest, RequestBody, utcnow
from common.recording.bodies import Body, BodyWriter
from common.recording.rows import split_request


def make_request(body=None, response=None, headers=None, **fields):
    """Insert one api_requests row (and its bodies when given); return its request_id."""
    row = {"request_id": str(uuid.uuid4()), "domain": "hand.example", "timestamp": utcnow(),
           "method": "POST", "path": "/v1/messages", "model": "claude-sonnet-4-5-20250929",
           "request_type": "inference", "response_status": 200, "input_tokens": 10,
           "output_tokens": 20, "cost_usd": 0.001, "duration_ms": 1200.0,
           "first_token_ms": 300.0, **fields}
    ApiRequest.create(**row)
    if body is not None or response is not None or headers is not None:
        data = json.dumps(body).encode() if body is not None else None
        if response is not None:
            response = (response if isinstance(response, str) else json.dumps(response)).encode()
        stored = Body(row["request_id"], row["domain"], row["timestamp"], split_request(data),
                      len(data or b""), response, headers or {}, {})
        database = ApiRequest._meta.database
        with database.atomic():
            BodyWriter().save(database, [stored])
    return row["request_id"]


def make_legacy_bodies(request_id, body, response):
    """Bodies as rows written before pieces existed kept them: text columns."""
    RequestBody.create(request_id=request_id, request_body=body, response_body=response,
                       request_headers="{}", response_headers="{}")


def seed_traffic(database, rows=400, days=3):
    """Synthetic traffic over the last `days` days, with aggregates rebuilt."""
    count = bench_seed.seed(database, rows, days=days, seed_value=7, body_fraction=0.3)
    aggregates.rebuild(database)
    return count


def minutes_ago(n):
    """A naive UTC datetime `n` minutes ago."""
    return utcnow() - datetime.timedelta(minutes=n)
