"""`nexus export`: the contract columns as CSV or JSON lines, filtered, page by page."""
import csv
import datetime
import io
import json

import pytest

from common import cli, export
from common import config as nexus_config
from common.pricing import load_prices
from common.recording.store import save_records
from tests import scenarios

CONFIG = nexus_config.load({})


@pytest.fixture
def stored(database):
    sessions = [scenarios.claude_code_day(), *scenarios.parallel_strangers()]
    records = [r for s in sessions for r in s.records]
    save_records(database, records, load_prices(), CONFIG)
    return records


def test_csv_has_the_contract_columns_and_every_row(stored, db_url, tmp_path):
    out = tmp_path / "rows.csv"
    assert cli.main(["export", "-o", str(out)], environ={"DATABASE_URL": db_url}) == 0
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == list(export.COLUMNS)
    assert len(rows) == len(stored)
    assert {r["request_id"] for r in rows} == {r["request_id"] for r in stored}
    assert {r["is_subtask"] for r in rows} == {"true", "false"}
    timestamps = [r["timestamp"] for r in rows]
    assert timestamps == sorted(timestamps)


def test_jsonl_filters_by_domain_and_time(stored, db_url, capsys):
    first = min(r["timestamp"] for r in stored)
    since = (first + datetime.timedelta(seconds=10)).isoformat()
    until = (first + datetime.timedelta(seconds=40)).isoformat()
    env = {"DATABASE_URL": db_url}
    assert cli.main(["export", "--format", "jsonl", "--domain", "team.example.com",
                     "--since", since, "--until", until], environ=env) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    expected = [r for r in stored if r["domain"] == "team.example.com"
                and since <= r["timestamp"].isoformat() < until]
    assert len(lines) == len(expected) > 0
    assert all(line["domain"] == "team.example.com" for line in lines)


def test_rows_come_in_pages(stored):
    seen = list(export.rows(page=4))
    assert len(seen) == len(stored)
    assert len({r["request_id"] for r in seen}) == len(stored)


def test_a_bad_date_is_a_clear_error(database, db_url, capsys):
    assert cli.main(["export", "--since", "last tuesday"], environ={"DATABASE_URL": db_url}) == 2
    assert "not an ISO date" in capsys.readouterr().err


def test_csv_writer_handles_nulls(tmp_path):
    buffer = io.StringIO()
    export.write_csv(buffer, [dict.fromkeys(export.COLUMNS)])
    cells = buffer.getvalue().splitlines()[1].split(",")
    # a null cost is a request whose model has no price: "unpriced", not an empty (zero) cell
    assert cells == ["unpriced" if c == "cost_usd" else "" for c in export.COLUMNS]
