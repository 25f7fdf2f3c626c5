"""`nexus retention`: old rows, their bodies and task calls go; aggregates stay."""
import datetime
import random

from common import cli
from common import config as nexus_config
from common.models import ApiRequest, BodyPiece, HourlyUsage, RequestBody, TaskInvocation, utcnow
from common.recording import bodies
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
    done = prune(database, utcnow(), batch_size=5)
    assert (done.requests, done.pieces > 0, done.bytes_freed > 0) == (22, True, True)
    assert prune(database, utcnow()).requests == 0
    assert BodyPiece.select().count() == 0


def _conversation(database, start, turns, shared_text, own_text):
    """A growing conversation whose first message is shared with other conversations."""
    session = scenarios.Session(seed=sum(map(ord, own_text)), start=start)
    agent = session.agent()
    agent.user(shared_text)
    for turn in range(turns):
        session.turn(f"t{turn}", agent, session.message(scenarios.MAIN_MODEL, f"{own_text} {turn}"),
                     ("C", "main", None, None))
        agent.user(f"{own_text} next {turn} " + "x" * 2000)
    save_records(database, session.records, load_prices(), CONFIG)
    return session


def test_pieces_shared_with_kept_requests_stay_and_the_rest_go(database):
    shared = "Open the repository and explain the build " * 50
    old = _conversation(database, utcnow() - datetime.timedelta(days=40), 4, shared, "old")
    new = _conversation(database, utcnow() - datetime.timedelta(days=1), 4, shared, "new")
    before = BodyPiece.select().count()
    done = prune(database, utcnow() - datetime.timedelta(days=30))
    assert done.requests == len(old.records)
    assert 0 < done.pieces < before and done.bytes_freed > 0
    # Every kept request still comes back whole, the shared first message included.
    for record in new.records:
        assert bodies.load_one(record["request_id"]).request == record["request_body"]
    # What went was used by the old conversation only.
    assert not BodyPiece.select().where(BodyPiece.first_request_id.in_(
        [r["request_id"] for r in old.records]), BodyPiece.last_seen < utcnow() - datetime.timedelta(days=30)).exists()


def test_sqlite_gives_the_space_back(tmp_path):
    import os

    from common import db as nexus_db
    from common.migrations import migrate
    path = tmp_path / "nexus.db"
    database = nexus_db.connect(f"sqlite:///{path}")
    migrate(database)
    for n in range(6):  # random text: what is stored is not compressed away
        _conversation(database, utcnow() - datetime.timedelta(days=60 + n), 6,
                      f"start {n} " + random.randbytes(20_000).hex(),
                      f"conversation {n} " + random.randbytes(5_000).hex())
    database.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    full = os.path.getsize(path)
    assert prune(database, utcnow()).requests > 0
    database.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    assert os.path.getsize(path) < full / 2
    database.close()
