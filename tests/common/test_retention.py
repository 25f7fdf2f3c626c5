"""`nexus retention`: old rows, their bodies and task calls go; aggregates stay."""
import datetime

from common import cli
from common import config as nexus_config
from common.models import ApiRequest, HourlyUsage, RequestBody, TaskInvocation, utcnow
from common.pricing import load_prices
from common.retention import prune
from common.recording.store import save_records
from tests import scenarios

CONFIG = nexus_config.load({})


def _store(database, days_ago):
    day = scenarios.claude_code_day(seed=days_ago)
    shift = utcnow() - datetime.timedelta(days=days_ago) - day.records[0]["timestamp"]
    for record in day.records:
        record["timestamp"] += shift
    save_records(database, day.records, load_prices(), CONFIG)
    return day


def _totals():
    return (sum(r.requests for r in HourlyUsage.select()),
            round(sum(r.cost_usd for r in HourlyUsage.select()), 9))


def test_old_rows_go_with_their_bodies_and_tasks(database, db_url, capsys):
    old, new = _store(database, 40), _store(database, 2)
    totals = _totals()
    assert cli.main(["retention", "--days", "30", "--batch-size", "7"],
                    environ={"DATABASE_URL": db_url}) == 0
    assert f"deleted {len(old.records)} requests" in capsys.readouterr().out
    database.connect(reuse_if_open=True)
    kept = {r.request_id for r in ApiRequest.select()}
    assert kept == set(new.ids.values())
    assert {b.request_id for b in RequestBody.select()} == kept
    assert {t.request_id for t in TaskInvocation.select()} <= kept
    assert TaskInvocation.select().count() > 0
    assert _totals() == totals  # the charts still cover the pruned days


def test_zero_days_keeps_everything(database, db_url, capsys):
    _store(database, 400)
    assert cli.main(["retention"], environ={"DATABASE_URL": db_url, "NEXUS_RETENTION_DAYS": "0"}) == 0
    assert "nothing deleted" in capsys.readouterr().out
    database.connect(reuse_if_open=True)
    assert ApiRequest.select().count() == 22


def test_the_environment_sets_the_default_days(database, db_url):
    _store(database, 10)
    _store(database, 1)
    cli.main(["retention"], environ={"DATABASE_URL": db_url, "NEXUS_RETENTION_DAYS": "5"})
    database.connect(reuse_if_open=True)
    assert ApiRequest.select().count() == 22


def test_prune_returns_the_count(database):
    _store(database, 3)
    assert prune(database, utcnow(), batch_size=5) == 22
    assert prune(database, utcnow()) == 0
