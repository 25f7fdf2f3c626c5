"""Rows for dashboard tests: hand-made requests, and seeded synthetic traffic."""
import datetime
import json
import uuid

from bench import seed as bench_seed
from common.recording import aggregates
from common.models import ApiRequest, RequestBody, utcnow


def make_request(body=None, response=None, headers=None, **fields):
    """Insert one api_requests row (and its bodies when given); return its request_id."""
    row = {"request_id": str(uuid.uuid4()), "domain": "hand.example", "timestamp": utcnow(),
           "method": "POST", "path": "/v1/messages", "model": "claude-sonnet-4-5-20250929",
           "request_type": "inference", "response_status": 200, "input_tokens": 10,
           "output_tokens": 20, "cost_usd": 0.001, "duration_ms": 1200.0,
           "first_token_ms": 300.0, **fields}
    ApiRequest.create(**row)
    if body is not None or response is not None or headers is not None:
        RequestBody.create(
            request_id=row["request_id"],
            request_body=json.dumps(body) if body is not None else None,
            response_body=response if isinstance(response, str) or response is None
            else json.dumps(response),
            request_headers=json.dumps(headers or {}), response_headers=json.dumps({}))
    return row["request_id"]


def seed_traffic(database, rows=400, days=3):
    """Synthetic traffic over the last `days` days, with aggregates rebuilt."""
    count = bench_seed.seed(database, rows, days=days, seed_value=7, body_fraction=0.3)
    aggregates.rebuild(database)
    return count


def minutes_ago(n):
    """A naive UTC datetime `n` minutes ago."""
    return utcnow() - datetime.timedelta(minutes=n)
