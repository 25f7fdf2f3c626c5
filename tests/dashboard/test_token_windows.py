"""Token windows per account: 7 and 30 days are exact sums of each account's own rows,
even when two accounts send through the same domain."""
import datetime
import uuid

import peewee as pw

from common.recording import aggregates
from common.models import ApiRequest, utcnow

from .conftest import KEY, make_app

TOKENS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
# Ages kept hours away from the 7- and 30-day boundaries (which start at the top of an hour).
AGES = [datetime.timedelta(hours=1), datetime.timedelta(days=3), datetime.timedelta(days=6, hours=20),
        datetime.timedelta(days=7, hours=4), datetime.timedelta(days=20),
        datetime.timedelta(days=29, hours=20), datetime.timedelta(days=30, hours=4),
        datetime.timedelta(days=35)]


def _rows(now):
    rows = []
    for n, age in enumerate(AGES):
        for account, scale in (("acc_a", 1), ("acc_b", 7), (None, 3)):
            rows.append({"request_id": str(uuid.uuid4()), "domain": "shared.example",
                         "timestamp": now - age, "method": "POST", "path": "/v1/messages",
                         "model": "claude-sonnet-4-5-20250929", "request_type": "inference",
                         "response_status": 200, "account_id": account,
                         "input_tokens": 10 * scale + n, "output_tokens": 100 * scale + n,
                         "cache_creation_input_tokens": 1000 * scale, "cache_read_input_tokens": 5 * n,
                         "cost_usd": 0.01 * scale + n / 1000, "duration_ms": 900.0})
    # The latest request of the shared domain is acc_b's: charging the domain to one
    # account, as before, would move acc_a's traffic to acc_b.
    rows[-3]["timestamp"] = rows[1]["timestamp"] = now - datetime.timedelta(minutes=5)
    return rows


def _raw(account, since):
    cond = ApiRequest.account_id.is_null() if account is None else ApiRequest.account_id == account
    row = (ApiRequest.select(*[pw.fn.SUM(getattr(ApiRequest, c)).alias(c) for c in TOKENS],
                             pw.fn.COUNT(ApiRequest.id).alias("requests"),
                             pw.fn.SUM(ApiRequest.cost_usd).alias("cost_usd"))
           .where(cond, ApiRequest.timestamp >= since).dicts().get())
    return {k: (round(float(v), 6) if k == "cost_usd" else int(v or 0)) for k, v in row.items()}


def test_two_accounts_on_one_domain_get_their_own_7_and_30_days(db_url, database):
    now = utcnow()
    rows = _rows(now)
    ApiRequest.insert_many(rows).execute()
    aggregates.add(rows)  # as the recorder does, in the same transaction as the rows
    client = make_app(db_url, DASHBOARD_API_KEY=KEY).test_client()
    data = client.get("/api/token-usage", headers={"X-Dashboard-Key": KEY}).json
    accounts = {a["account_id"]: a for a in data["accounts"]}
    assert set(accounts) == {"acc_a", "acc_b", "(no account)"}
    for name, account in (("acc_a", "acc_a"), ("acc_b", "acc_b"), ("(no account)", None)):
        shown = accounts[name]
        for key, days in (("last_7d", 7), ("last_30d", 30)):
            expected = _raw(account, aggregates.hour_of(now - datetime.timedelta(days=days)))
            got = {k: shown[key][k] for k in expected}
            assert got == expected, (name, key)
        assert sum(d["requests"] for d in shown["daily"]) == shown["last_30d"]["requests"]
    assert accounts["acc_a"]["last_7d"]["requests"] == 4   # 3 recent ages + the moved row
    assert accounts["acc_a"]["last_30d"]["input_tokens"] != accounts["acc_b"]["last_30d"]["input_tokens"]
    only = client.get("/api/token-usage?account_id=acc_a", headers={"X-Dashboard-Key": KEY}).json
    assert [a["account_id"] for a in only["accounts"]] == ["acc_a"]
    assert only["accounts"][0]["last_30d"] == accounts["acc_a"]["last_30d"]
