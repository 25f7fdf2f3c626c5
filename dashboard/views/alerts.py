"""Alerts: the rules of NEXUS_ALERTS_FILE, what fires now, and the recent firings."""
from flask import Blueprint, current_app, request

from common.alerts.rules import RulesError, notify_host
from common.alerts.values import load_rules

from ..params import parse_int
from ..queries import alerts as aq
from . import respond

bp = Blueprint("alerts", __name__)


def _rule(rule, firing):
    # The notify URL is a credential for Slack: its host is all a page shows.
    return {"name": rule.name, "metric": rule.metric, "window": rule.window,
            "above": rule.above, "group_by": rule.group_by,
            "notify_host": notify_host(rule.notify), "firing": firing.get(rule.name, [])}


def alerts_data(args):
    """The rules (or why the file cannot be read), their firing groups, recent firings."""
    path = current_app.config["NEXUS"].alerts_file
    limit = parse_int("limit", args.get("limit"), 50, 1, 1000)
    try:
        rules, error = load_rules(path), None
    except RulesError as exc:
        rules, error = [], str(exc)
    firing = aq.firing_now()
    return {"alerts_file": path, "error": error,
            "rules": [_rule(rule, firing) for rule in rules],
            "firings": aq.recent_firings(limit)}


@bp.get("/alerts")
def index():
    """The page."""
    return respond("alerts/index.html", alerts_data(request.args))
