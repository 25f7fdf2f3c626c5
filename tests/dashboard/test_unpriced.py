"""A model with no known price: recorded as unpriced (null cost), shown and exported as
"unpriced", counted on the overview, and priced by `nexus reprice` once a price is added."""
import csv
import datetime
import io
import json

from common import cli
from common import config as nexus_config
from common.models import ApiRequest, utcnow
from common.pricing import load_prices
from common.recording.store import save_records
from tests import scenarios

from .conftest import make_app

MODEL = "claude-unreleased-9"  # no row in common/data/prices.json
USAGE = {"input_tokens": 1000, "output_tokens": 2000}


def _records(*models):
    s = scenarios.Session()
    for n, model in enumerate(models):
        agent = s.agent()
        agent.user(f"Price me, {n}")
        s.send(str(n), agent.body(stream=False, model=model), s.message(model, "Done.", usage=USAGE))
    for n, record in enumerate(s.records):  # within the overview's last 24 hours
        record["timestamp"] = utcnow() - datetime.timedelta(minutes=10 - n)
    return s.records


def test_an_unpriced_model_is_unpriced_everywhere_until_repriced(database, db_url, tmp_path, capsys):
    unpriced, priced = _records(MODEL, scenarios.MAIN_MODEL)
    config = nexus_config.load({"DATABASE_URL": db_url})
    save_records(database, [unpriced, priced], load_prices(), config)
    row = ApiRequest.get(ApiRequest.request_id == unpriced["request_id"])
    assert row.cost_usd is None and row.input_tokens == 1000  # not a made-up $0

    client = make_app(db_url).test_client()
    api = {r["request_id"]: r for r in client.get("/api/requests").json["requests"]}
    assert api[unpriced["request_id"]]["cost_usd"] is None
    assert api[priced["request_id"]]["cost_usd"] > 0
    assert "unpriced" in client.get(f"/requests/{unpriced['request_id']}").get_data(as_text=True)
    assert "unpriced" in client.get("/requests").get_data(as_text=True)
    totals = client.get("/?since=24h&format=json").json["totals"]
    assert (totals["requests"], totals["unpriced"]) == (2, 1)
    assert totals["cost_usd"] == round(api[priced["request_id"]]["cost_usd"], 6)
    assert "+ 1 unpriced" in client.get("/?since=24h").get_data(as_text=True)
    exported = list(csv.DictReader(io.StringIO(client.get("/api/requests?format=csv").get_data(as_text=True))))
    assert {r["request_id"]: r["cost_usd"] for r in exported}[unpriced["request_id"]] == "unpriced"
    assert cli.main(["export", "--format", "csv"], environ={"DATABASE_URL": db_url}) == 0
    cells = {r["request_id"]: r["cost_usd"] for r in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    assert cells[unpriced["request_id"]] == "unpriced"

    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"models": {MODEL: {"input": 1.0, "output": 5.0}}}))
    environ = {"DATABASE_URL": db_url, "NEXUS_PRICING_FILE": str(prices)}
    assert cli.main(["reprice"], environ=environ) == 0
    assert "repriced rows: 1" in capsys.readouterr().out
    # 1,000 × $1 + 2,000 × $5 per million tokens
    assert ApiRequest.get(ApiRequest.request_id == unpriced["request_id"]).cost_usd == 0.011
    totals = client.get("/?since=24h&format=json").json["totals"]
    assert totals["unpriced"] == 0
    assert "unpriced" not in client.get("/?since=24h").get_data(as_text=True)
