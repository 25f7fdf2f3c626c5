"""What an alert posts: a Slack message to a Slack incoming webhook, JSON to any other URL.

The payloads are pure functions of a firing; `post` is the one network call. A failure is
returned as text for the firings table and the log, never with the URL in it (a Slack
webhook URL is itself a credential).
"""
import requests

from .rules import notify_host

POST_TIMEOUT = (3, 10)


def is_slack(url):
    """True for a Slack incoming-webhook URL."""
    return notify_host(url) == "hooks.slack.com"


def iso(moment):
    """A naive UTC datetime as ISO 8601 with a Z."""
    return moment.replace(microsecond=0).isoformat() + "Z"


def json_payload(rule, group, value, at):
    """The JSON body for a URL that is not Slack's."""
    return {"alert": rule.name, "metric": rule.metric, "value": value, "threshold": rule.above,
            "window": rule.window, "group": group, "at": iso(at)}


def _number(metric, value):
    if metric == "cost_usd":
        return f"${value:,.2f}"
    if metric == "error_rate" or metric.endswith("_utilization"):
        return f"{value * 100:.1f} %"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _escape(text):
    # Slack's mrkdwn treats these three as control characters.
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_text(rule, group, value, at):
    """One line for Slack: which alert, the value against the threshold, the group."""
    grouped = ""
    if group is not None:
        by = rule.group_by or "credential"
        grouped = f" for {by} *{_escape(group)}*"
    return (f":rotating_light: *{_escape(rule.name)}*: {rule.metric} over {rule.window} is "
            f"{_number(rule.metric, value)}{grouped}, above {_number(rule.metric, rule.above)}"
            f" (at {iso(at)})")


def payload(rule, group, value, at):
    """The body to post to `rule.notify`."""
    if is_slack(rule.notify):
        return {"text": slack_text(rule, group, value, at)}
    return json_payload(rule, group, value, at)


def post(session, rule, body):
    """POST `body` as JSON to the rule's URL; None on success, else why it failed."""
    try:
        response = session.post(rule.notify, json=body, timeout=POST_TIMEOUT)
    except requests.RequestException as exc:
        return f"{type(exc).__name__} posting to {notify_host(rule.notify)}"
    if response.status_code >= 300:
        return f"{notify_host(rule.notify)} answered {response.status_code}"
    return None
