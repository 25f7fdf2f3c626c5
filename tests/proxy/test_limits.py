"""Per-key rate limits and budgets, shared through the database by every process."""
import datetime
import json
import multiprocessing
import os
import time
import uuid

import pytest

from common import config as nexus_config
from common import db as nexus_db
from common import keys
from common.models import ApiRequest, UsageWindow, utcnow
from proxy.auth import Authenticator
from proxy.refusals import Refusal
from proxy.limits import Limiter


def setup_dir(tmp_path):
    with open(os.path.join(tmp_path, "team.example.credentials.json"), "w") as f:
        json.dump({"type": "api_key", "api_key": "sk-ant-api03-UPSTREAM"}, f)
    return nexus_config.load({"CREDENTIALS_DIR": str(tmp_path), "ENABLE_CLIENT_AUTH": "true"})


def attempt(a, secret):
    try:
        a.authorize("team.example", {"x-api-key": secret})
        return "ok"
    except Refusal as exc:
        return (exc.status, exc.error_type, dict(exc.headers).get("retry-after"))


def wait_clear_of_minute_boundary(seconds_needed=8):
    """Sleep past the next UTC minute if it would start within the next few seconds."""
    second = utcnow().second
    if second > 60 - seconds_needed:
        time.sleep(61 - second)


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


def test_rpm_is_enforced_and_the_window_resets(tmp_path, database):
    clock = Clock(datetime.datetime(2026, 3, 1, 12, 0, 45))
    a = Authenticator(setup_dir(tmp_path), limiter=Limiter(clock=clock))
    _, secret = keys.create(requests_per_minute=3)
    results = [attempt(a, secret) for _ in range(5)]
    assert results[:3] == ["ok"] * 3
    assert results[3:] == [(429, "rate_limit_error", "15")] * 2
    clock.now += datetime.timedelta(seconds=15)
    assert attempt(a, secret) == "ok"
    # refused requests were not counted against the next minute
    assert UsageWindow.select().where(UsageWindow.requests > 3).count() == 0


def _hammer(directory, db_url, secret, n, barrier, results):
    nexus_db.connect(db_url)
    a = Authenticator(nexus_config.load({"CREDENTIALS_DIR": directory, "ENABLE_CLIENT_AUTH": "true"}))
    barrier.wait(30)
    results.put([attempt(a, secret) for _ in range(n)])


def test_rpm_holds_across_processes(tmp_path, db_url):
    setup_dir(tmp_path)
    db = nexus_db.connect(db_url)
    with db.connection_context():
        _, secret = keys.create(requests_per_minute=10)
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_hammer, args=(str(tmp_path), db_url, secret, 8, barrier, results))
             for _ in range(2)]
    wait_clear_of_minute_boundary()
    for p in procs:
        p.start()
    outcomes = [r for _ in procs for r in results.get(timeout=60)]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert outcomes.count("ok") == 10, outcomes
    assert all(o == "ok" or o[:2] == (429, "rate_limit_error") for o in outcomes)


def _spend(key_id, usd, when):
    ApiRequest.create(request_id=str(uuid.uuid4()), method="POST", path="/v1/messages",
                      client_key_id=key_id, cost_usd=usd, timestamp=when)


def test_daily_budget_gives_429_until_midnight(tmp_path, database):
    now = datetime.datetime(2026, 3, 1, 23, 0, 0)
    a = Authenticator(setup_dir(tmp_path), limiter=Limiter(clock=Clock(now)))
    row, secret = keys.create(daily_budget_usd=1.0)
    other, _ = keys.create()
    _spend(row.key_id, 5.0, now - datetime.timedelta(days=1))  # yesterday's spend is forgotten
    _spend(other.key_id, 5.0, now)                              # another key's spend is not ours
    _spend(row.key_id, 0.6, now - datetime.timedelta(hours=1))
    assert attempt(a, secret) == "ok"

    b = Authenticator(setup_dir(tmp_path), limiter=Limiter(clock=Clock(now)))
    _spend(row.key_id, 0.5, now)
    status, kind, retry_after = attempt(b, secret)
    assert (status, kind) == (429, "rate_limit_error") and int(retry_after) == 3600


def test_an_unpriced_request_stops_a_budget_until_it_is_priced(tmp_path, database):
    """A request to a model with no known price (cost_usd null) cannot be shown to fit a
    budget: the key is refused, with a message saying how to fix it, until it has a cost."""
    now = datetime.datetime(2026, 3, 1, 12, 0, 0)
    row, secret = keys.create(daily_budget_usd=100.0)
    _spend(row.key_id, 0.1, now - datetime.timedelta(hours=1))
    assert attempt(Authenticator(setup_dir(tmp_path), limiter=Limiter(clock=Clock(now))), secret) == "ok"
    _spend(row.key_id, None, now - datetime.timedelta(minutes=5))
    refused = Authenticator(setup_dir(tmp_path), limiter=Limiter(clock=Clock(now)))
    with pytest.raises(Refusal) as info:
        refused.authorize("team.example", {"x-api-key": secret})
    assert (info.value.status, info.value.error_type) == (429, "rate_limit_error")
    assert "without a known price" in info.value.message and "nexus reprice" in info.value.message
    ApiRequest.update(cost_usd=0.2).where(ApiRequest.cost_usd.is_null()).execute()  # repriced
    assert attempt(Authenticator(setup_dir(tmp_path), limiter=Limiter(clock=Clock(now))), secret) == "ok"


def test_keys_without_limits_touch_no_counters(tmp_path, database):
    a = Authenticator(setup_dir(tmp_path))
    _, secret = keys.create()
    assert [attempt(a, secret) for _ in range(20)] == ["ok"] * 20
    assert UsageWindow.select().count() == 0


def test_limits_fail_open_while_the_database_is_down(tmp_path, database, caplog):
    a = Authenticator(setup_dir(tmp_path))
    row, secret = keys.create(requests_per_minute=1, daily_budget_usd=1.0)
    assert attempt(a, secret) == "ok"
    assert attempt(a, secret)[0] == 429
    database.close()
    nexus_db.connect("postgresql://postgres@127.0.0.1:1/nothing_listens_here")
    assert attempt(a, secret) == "ok"  # the key is cached; its limits cannot be checked
    assert "limits not checked" in caplog.text
