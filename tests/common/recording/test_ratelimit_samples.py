"""The writer's subscription-window samples: the newest row is the last headers exactly,
history is kept per change and bounded, keys never hold a credential."""
import datetime
import hashlib
import json

from common import limits
from common.models import RateLimitSample
from common.recording import ratelimit_samples as rs

T0 = datetime.datetime(2026, 12, 7, 12, 0)
RESET = 1_796_650_000  # a Unix time, as the API sends it


def headers(five, seven=0.1, status="allowed", reset=RESET):
    return {"anthropic-ratelimit-unified-status": status,
            "anthropic-ratelimit-unified-representative-claim": "five_hour",
            "anthropic-ratelimit-unified-5h-utilization": str(five),
            "anthropic-ratelimit-unified-5h-reset": str(reset),
            "anthropic-ratelimit-unified-5h-status": status,
            "anthropic-ratelimit-unified-7d-utilization": str(seven),
            "anthropic-ratelimit-unified-7d-reset": str(reset + 86400),
            "anthropic-ratelimit-unified-7d-status": "allowed"}


def row(n, five, account="acct-1", auth_hash="ab" * 32, seconds=60, **kw):
    return {"request_id": f"req-{n}", "timestamp": T0 + datetime.timedelta(seconds=n * seconds),
            "account_id": account, "auth_hash": auth_hash,
            "ratelimit": json.dumps(headers(five, **kw))}


def test_newest_row_is_the_last_headers_and_changes_make_history(database):
    rs.add([row(0, 0.5), row(1, 0.5), row(2, 0.5, reset=RESET + 2)])
    rs.add([row(3, 0.6), row(4, 0.7, status="allowed_warning")])
    stored = list(RateLimitSample.select().order_by(RateLimitSample.timestamp).dicts())
    assert [s["five_hour_utilization"] for s in stored] == [0.5, 0.6, 0.7]
    # Same values: the first row stays at its first sight and its last_seen moved on,
    # with the last reset time exactly.
    assert stored[0]["timestamp"] == T0 and stored[0]["last_seen"] == T0 + datetime.timedelta(minutes=2)
    assert stored[0]["five_hour_resets_at"] == datetime.datetime(2026, 12, 7, 13, 26, 42)
    assert stored[-1]["status"] == "allowed_warning" and stored[-1]["request_id"] == "req-4"
    assert limits.latest_utilization() == {"acct-1": {"five_hour": 0.7, "seven_day": 0.1}}
    assert limits.latest_utilization(since=T0 + datetime.timedelta(hours=1)) == {}


def test_a_credential_without_an_account_is_a_fingerprint_or_joins_its_account(database):
    secret_hash = hashlib.sha256(b"sk-ant-oat01-secret").hexdigest()
    rs.add([row(0, 0.2, account=None, auth_hash=secret_hash)])
    assert set(limits.latest_utilization()) == {"sha256:" + secret_hash[:16]}
    rs.add([row(1, 0.3, account="acct-9", auth_hash=secret_hash),
            row(2, 0.4, account=None, auth_hash=secret_hash)])
    latest = limits.latest_utilization()
    assert latest["acct-9"]["five_hour"] == 0.4  # count_tokens and the like join the account
    stored = json.dumps(list(RateLimitSample.select().dicts()), default=str)
    assert "sk-ant" not in stored


def test_rows_without_unified_headers_or_credential_are_skipped(database):
    plain = {"request_id": "r", "timestamp": T0, "account_id": "a", "auth_hash": None,
             "ratelimit": json.dumps({"anthropic-ratelimit-requests-limit": "50"})}
    assert rs.add([plain, dict(row(1, 0.1), account_id=None, auth_hash=None),
                   dict(row(2, 0.1), ratelimit=None)]) == 0
    assert RateLimitSample.select().count() == 0


def test_history_is_bounded_per_key(database, monkeypatch):
    monkeypatch.setattr(rs, "MAX_SAMPLES", 5)
    rs.add([row(n, round(0.01 * n, 2)) for n in range(12)])
    assert RateLimitSample.select().count() == 5
    rs.add([row(n, 0.5, seconds=3600) for n in range(40, 43)])  # hours later: old rows go
    kept = [s.timestamp for s in RateLimitSample.select()]
    assert min(kept) >= T0 + datetime.timedelta(hours=40) - rs.HISTORY


def test_a_late_record_is_history_and_never_the_latest(database):
    rs.add([row(5, 0.5)])
    rs.add([row(2, 0.3)])  # another worker's older response, written after
    assert limits.latest_utilization()["acct-1"]["five_hour"] == 0.5
    assert RateLimitSample.select().count() == 2


def test_current_limits_have_the_contract_fields(database):
    rs.add([row(n, round(0.4 + 0.1 * n, 2), seconds=10) for n in range(4)])
    (entry,) = limits.current_limits()
    assert entry["key"] == "acct-1" and entry["status"] == "allowed"
    assert entry["representative_claim"] == "five_hour"
    assert entry["five_hour"]["utilization"] == 0.7
    assert entry["five_hour"]["resets_at"] == "2026-12-07T13:26:40+00:00"
    assert entry["seven_day"]["resets_at"] == "2026-12-08T13:26:40+00:00"
    assert abs(entry["burn_rate_per_hour"] - 36.0) < 1e-6  # 10 % per 10 s
    # 0.7 at 12:00:30 and 30 % to go at 36 per hour: 30 s later, well before the reset.
    assert entry["projected_exhausted_at"] == "2026-12-07T12:01:00+00:00"
    assert entry["five_hour"]["projected_exhausted_at"] == entry["projected_exhausted_at"]
    assert entry["as_of"] == "2026-12-07T12:00:30+00:00"


def test_backfill_fills_an_empty_table_from_the_last_day_of_rows(database):
    from common.models import ApiRequest, utcnow
    now = utcnow()
    for n, (age, five) in enumerate(((48, 0.9), (3, 0.2), (2, 0.3), (1, 0.4))):
        ApiRequest.create(**dict(row(n, five), timestamp=now - datetime.timedelta(hours=age)),
                          method="POST", path="/v1/messages")
    assert rs.backfill(database) == 3  # the 48-hour-old row is beyond the history kept
    assert limits.latest_utilization() == {"acct-1": {"five_hour": 0.4, "seven_day": 0.1}}
    assert rs.backfill(database) == 0  # only ever into an empty table
