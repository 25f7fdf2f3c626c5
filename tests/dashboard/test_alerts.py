"""The alerts page: the rules of NEXUS_ALERTS_FILE, what fires now and recent firings, as
HTML and JSON; never the notify URL (a Slack webhook URL is a credential)."""
import datetime

import pytest

from common.alerts import state
from common.alerts.rules import parse
from common.models import utcnow

from .conftest import log_in, make_app

SECRET_HOOK = "https://hooks.slack.com/services/T0/B0/very-secret-path"
RULES = f'''
[[alert]]
name = "daily spend"
metric = "cost_usd"
window = "24h"
above = 50
group_by = "model"
notify = "{SECRET_HOOK}"

[[alert]]
name = "five hour window"
metric = "five_hour_utilization"
window = "10m"
above = 0.9
notify = "http://127.0.0.1:9/hook"
'''


@pytest.fixture
def alerts_file(tmp_path):
    path = tmp_path / "alerts.toml"
    path.write_text(RULES)
    return path


def client_for(db_url, alerts_file):
    client = make_app(db_url, DASHBOARD_API_KEY="k" * 24,
                      NEXUS_ALERTS_FILE=str(alerts_file)).test_client()
    log_in(client, "k" * 24)
    return client


def test_rules_firing_groups_and_recent_firings(database, db_url, alerts_file):
    spend = parse(RULES)[0]
    when = utcnow().replace(microsecond=0) - datetime.timedelta(minutes=3)
    firing = state.claim(database, spend, "claude-opus-4-1", 61.5, when)
    state.delivered(firing, None)
    state.claim(database, spend, "claude-haiku-4-5", 52.0, when)
    state.delivered(state.AlertFiring.get(state.AlertFiring.group_key == "claude-haiku-4-5"),
                    "hooks.slack.com answered 500")
    client = client_for(db_url, alerts_file)

    data = client.get("/api/alerts").get_json()
    assert [r["name"] for r in data["rules"]] == ["daily spend", "five hour window"]
    assert data["rules"][0]["notify_host"] == "hooks.slack.com"
    assert sorted(f["group"] for f in data["rules"][0]["firing"]) == ["claude-haiku-4-5",
                                                                      "claude-opus-4-1"]
    assert data["rules"][1]["firing"] == []
    assert [(f["group"], f["delivered"]) for f in data["firings"]] == \
        [("claude-haiku-4-5", False), ("claude-opus-4-1", True)]
    assert client.get("/alerts?format=json").get_json() == data

    html = client.get("/alerts").get_data(as_text=True)
    assert "daily spend" in html and "claude-opus-4-1" in html
    assert "failed: hooks.slack.com answered 500" in html
    assert 'href="/alerts" aria-current="page"' in html
    assert "very-secret-path" not in html and "very-secret-path" not in str(data)


def test_a_bad_rules_file_is_shown_with_its_line(database, db_url, alerts_file):
    alerts_file.write_text(RULES.replace('window = "24h"', 'window = "daily"'))
    client = client_for(db_url, alerts_file)
    data = client.get("/api/alerts").get_json()
    assert data["error"] == f"{alerts_file}, line 5: window 'daily' is not a duration such as " \
                            '"5m", "1h" or "24h"'
    assert "line 5: window" in client.get("/alerts").get_data(as_text=True)


def test_without_a_rules_file_the_page_says_how_to_set_one(database, db_url):
    client = make_app(db_url, DASHBOARD_API_KEY="k" * 24).test_client()
    log_in(client, "k" * 24)
    html = client.get("/alerts").get_data(as_text=True)
    assert "No rules file is set for the dashboard" in html
    assert "No alert has fired yet." in html
