"""Bodies stored as text before pieces: `nexus migrate` converts them, exactly, in batches."""
import json
import os

from common import cli
from common import config as nexus_config
from common.models import BodyPiece, RequestBody
from common.pricing import load_prices
from common.recording import bodies, legacy
from common.recording.rows import shown_response
from common.recording.store import save_records
from tests import scenarios

CONFIG = nexus_config.load({})


def _text(data):
    """Bytes as those releases stored them: invalid bytes and NUL became U+FFFD."""
    return data.decode("utf-8", "replace").replace("\x00", "\ufffd")


def as_before_pieces(database, records):
    """Rewrite the stored bodies the way releases before pieces kept them: text columns."""
    by_id = {r["request_id"]: r for r in records}
    for stored in RequestBody.select():
        record = by_id[stored.request_id]
        response = record["response_body"] or b""
        text = (json.dumps(shown_response(response)) if record["stream"]
                else _text(response))
        (RequestBody.update(request_body=_text(record["request_body"]),
                            response_body=text, request_recipe=None, response_data=None,
                            request_size=None, response_size=None)
         .where(RequestBody.request_id == stored.request_id).execute())
    BodyPiece.delete().execute()


def test_migrate_converts_legacy_bodies_exactly_and_resumes(database, db_url, capsys):
    day = scenarios.claude_code_day(seed=5)
    odd = dict(day.records[0], request_id="0" * 8 + day.records[0]["request_id"][8:],
               request_body=b'{"messages": [], "x": "\x00\xff"}')
    records = day.records + [odd]
    save_records(database, records, load_prices(), CONFIG)
    as_before_pieces(database, records)
    assert legacy.legacy_rows() == len(records)
    env = {"DATABASE_URL": db_url}
    assert cli.main(["migrate", "--batch-size", "7"], environ=env) == 0
    out = capsys.readouterr().out
    assert f"bodies converted to pieces: {len(records) - 1}; kept as text: 1" in out
    database.connect(reuse_if_open=True)
    for record in day.records:
        stored = bodies.load_one(record["request_id"])
        assert stored.request == record["request_body"] and stored.exact
        if record["stream"]:  # only the rebuilt message was kept: it stays as it was
            assert not stored.raw_response and stored.answer(True)
    # A body whose text lost bytes to U+FFFD stays text and says it is not exact.
    kept = bodies.load_one(odd["request_id"])
    assert not kept.exact and "\ufffd" in kept.request.decode()
    assert BodyPiece.select().count() > 0
    # Nothing left to do: a second run converts nothing.
    assert cli.main(["migrate"], environ=env) == 0
    assert "bodies converted" not in capsys.readouterr().out


def test_a_converted_sqlite_file_gives_its_space_back(tmp_path, capsys):
    from common import db as nexus_db
    from common.migrations import migrate
    path = tmp_path / "old.db"
    database = nexus_db.connect(f"sqlite:///{path}")
    database.execute_sql("PRAGMA auto_vacuum = NONE")
    database.execute_sql("VACUUM")  # as files made before incremental auto-vacuum
    migrate(database)
    records = []
    for seed in range(6):
        records += scenarios.claude_code_day(seed=10 + seed).records
    save_records(database, records, load_prices(), CONFIG)
    as_before_pieces(database, records)
    database.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    before = os.path.getsize(path)
    database.close()
    assert cli.main(["migrate"], environ={"DATABASE_URL": f"sqlite:///{path}"}) == 0
    assert "rewriting the file once" in capsys.readouterr().out
    assert os.path.getsize(path) < before / 2
