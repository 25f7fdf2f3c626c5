"""Evaluating rules against real rows on SQLite and PostgreSQL, posting to a real receiver:
once per crossing, again only after falling below, per group."""
import datetime
import json
import uuid

import pytest
import requests

from common.alerts import state
from common.alerts.rules import parse
from common.alerts.watcher import Evaluator
from common.models import ApiRequest, utcnow
from common.recording import ratelimit_samples
from tests.webhook_receiver import webhook_receiver

NOW = utcnow().replace(microsecond=0)


def row(minutes_ago=1.0, **fields):
    values = {"request_id": str(uuid.uuid4()), "domain": "a.example",
              "timestamp": NOW - datetime.timedelta(minutes=minutes_ago), "method": "POST",
              "path": "/v1/messages", "model": "claude-sonnet-4-5", "response_status": 200,
              "input_tokens": 100, "output_tokens": 10, "cost_usd": 1.0, **fields}
    ApiRequest.create(**values)


def rule_text(url, **fields):
    fields = {"name": "spend", "metric": "cost_usd", "window": "10m", "above": 2.5,
              "notify": url, **fields}
    return "[[alert]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in fields.items())


@pytest.fixture
def hooks():
    with webhook_receiver() as receiver:
        yield receiver


def evaluator(database, text):
    return Evaluator(parse(text), database, requests.Session())


def test_posts_once_per_crossing_and_again_after_falling_below(database, hooks):
    alerts = evaluator(database, rule_text(hooks.url + "/json"))
    row(), row()
    assert alerts.run_once(NOW) == []                  # 2.0: not above 2.5
    row()
    assert len(alerts.run_once(NOW)) == 1              # 3.0: crossed
    row()
    assert alerts.run_once(NOW) == []                  # 4.0: still above, no second post
    assert len(hooks.received) == 1
    # Ten minutes on, the window holds nothing: below again (re-armed), nothing posted.
    later = NOW + datetime.timedelta(minutes=11)
    assert alerts.run_once(later) == []
    for _ in range(3):
        row(minutes_ago=-10)
    assert len(alerts.run_once(later)) == 1            # crossed again: posted again
    posts = hooks.wait_for(2)
    assert [p["json"]["value"] for p in posts] == [3.0, 3.0]
    assert posts[0]["json"] == {"alert": "spend", "metric": "cost_usd", "value": 3.0,
                                "threshold": 2.5, "window": "10m", "group": None,
                                "at": NOW.isoformat() + "Z"}
    assert [f["delivered"] for f in state.recent_firings()] == [True, True]


def test_a_second_evaluator_does_not_post_again(database, hooks):
    """State is in the database: a restarted (or another) process sees the alert firing."""
    text = rule_text(hooks.url)
    for _ in range(3):
        row()
    assert len(evaluator(database, text).run_once(NOW)) == 1
    assert evaluator(database, text).run_once(NOW) == []
    assert len(hooks.received) == 1
    assert state.firing_groups()["spend"][0]["group"] is None


@pytest.mark.parametrize("group_by, column", [("model", "model"), ("domain", "domain"),
                                              ("session", "session_id")])
def test_groups_cross_on_their_own(database, hooks, group_by, column):
    alerts = evaluator(database, rule_text(hooks.url, metric="requests", above=1,
                                           group_by=group_by))
    row(**{column: "one"}), row(**{column: "one"}), row(**{column: "two"})
    assert [f.group_key for f in alerts.run_once(NOW)] == ["one"]
    row(**{column: "two"})
    assert [f.group_key for f in alerts.run_once(NOW)] == ["two"]
    assert alerts.run_once(NOW) == []
    assert sorted(p["json"]["group"] for p in hooks.wait_for(2)) == ["one", "two"]
    # "one" falls out of the window while "two" gets new traffic: only "one" re-arms.
    later = NOW + datetime.timedelta(minutes=10, seconds=30)
    row(minutes_ago=-10, **{column: "two"}), row(minutes_ago=-10, **{column: "two"})
    assert alerts.run_once(later) == []
    assert [g["group"] for g in state.firing_groups()["spend"]] == ["two"]
    row(minutes_ago=-10, **{column: "one"}), row(minutes_ago=-10, **{column: "one"})
    assert [f.group_key for f in alerts.run_once(later)] == ["one"]


@pytest.mark.parametrize("metric, above, expected", [
    ("errors", 1, 2.0), ("error_rate", 0.4, 0.5), ("input_tokens", 350, 400.0),
    ("output_tokens", 35, 40.0), ("requests", 3, 4.0)])
def test_each_metric(database, hooks, metric, above, expected):
    row(), row(), row(response_status=529), row(response_status=None, error="upstream timeout")
    row(minutes_ago=30, response_status=500)  # outside the window
    alerts = evaluator(database, rule_text(hooks.url, metric=metric, above=above))
    assert [f.value for f in alerts.run_once(NOW)] == [expected]


def test_utilization_per_credential(database, hooks):
    def headers(five_hour, seven_day):
        return json.dumps({"anthropic-ratelimit-unified-5h-utilization": str(five_hour),
                           "anthropic-ratelimit-unified-7d-utilization": str(seven_day),
                           "anthropic-ratelimit-unified-status": "allowed"})
    row(minutes_ago=5, account_id="acct-a", ratelimit=headers(0.95, 0.2))
    row(minutes_ago=1, account_id="acct-a", ratelimit=headers(0.5, 0.3))   # newest counts
    row(minutes_ago=2, auth_hash="f" * 64, ratelimit=headers(0.92, 0.1))
    ratelimit_samples.backfill(database)  # what the writer keeps as it saves these rows
    text = rule_text(hooks.url, metric="five_hour_utilization", above=0.9)
    fired = evaluator(database, text).run_once(NOW)
    assert [(f.group_key, f.value) for f in fired] == [("sha256:" + "f" * 16, 0.92)]
    text = rule_text(hooks.url, name="week", metric="seven_day_utilization", above=0.25)
    assert [f.group_key for f in evaluator(database, text).run_once(NOW)] == ["acct-a"]


def test_slack_urls_get_a_slack_message(database, hooks):
    """A hooks.slack.com URL gets Slack's {"text"}; the receiver stands in for Slack."""
    text = rule_text("https://hooks.slack.com/services/T0/B0/x", metric="requests", above=0,
                     group_by="model")
    alerts = evaluator(database, text)
    sent = []

    class ToReceiver(requests.Session):
        def post(self, url, **kwargs):
            sent.append(url)
            return super().post(hooks.url + "/services/T0/B0/x", **kwargs)
    alerts.session = ToReceiver()
    row(model="claude-opus-4-1")
    alerts.run_once(NOW)
    (post,) = hooks.wait_for(1)
    assert sent == ["https://hooks.slack.com/services/T0/B0/x"]
    assert set(post["json"]) == {"text"}
    assert post["json"]["text"].startswith(":rotating_light: *spend*: requests over 10m is 1 "
                                           "for model *claude-opus-4-1*, above 0")


def test_a_failed_post_is_recorded_and_not_repeated(database, hooks):
    hooks.answer(500)
    alerts = evaluator(database, rule_text(hooks.url, above=0))
    row()
    alerts.run_once(NOW)
    alerts.run_once(NOW)
    assert len(hooks.received) == 1
    (firing,) = state.recent_firings()
    assert firing["delivered"] is False
    assert firing["delivery_error"] == "127.0.0.1 answered 500"


def test_one_turn_per_interval_however_many_processes_ask(database):
    assert state.take_turn(NOW, 30) is True
    assert state.take_turn(NOW, 30) is False
    assert state.take_turn(NOW + datetime.timedelta(seconds=29), 30) is False
    assert state.take_turn(NOW + datetime.timedelta(seconds=30), 30) is True
