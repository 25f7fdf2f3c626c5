"""Alert state in the database: which rule+group is firing, and the firings so far.

The state row is what makes an alert post once however many writer processes and proxy
replicas evaluate it: a crossing is *claimed* by the one UPDATE that turns `firing` from
false to true (the database lets exactly one of several concurrent updates match the
`firing = false` condition), and only the claimer posts. Falling back below the threshold
turns it false again (re-arms it). State outlives restarts because it is rows. A schedule
row lets one process per interval do the evaluating; the claim is what guarantees once.
"""
import datetime

import peewee as pw

from ..models import BaseModel, utcnow


class AlertState(BaseModel):
    """One row per rule and group that has been evaluated above its threshold."""

    id = pw.BigAutoField()
    rule = pw.CharField(max_length=255)
    group_key = pw.CharField(max_length=255, default="")  # '' when the rule has no group_by
    firing = pw.BooleanField(default=False)
    value = pw.DoubleField(null=True)    # the value when it last changed state
    changed_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "alert_state"
        indexes = ((("rule", "group_key"), True),)


class AlertFiring(BaseModel):
    """One row per notification: the history the dashboard lists."""

    id = pw.BigAutoField()
    rule = pw.CharField(max_length=255)
    metric = pw.CharField(max_length=64)
    window = pw.CharField(max_length=16)
    threshold = pw.DoubleField()
    group_key = pw.CharField(max_length=255, default="")
    value = pw.DoubleField()
    fired_at = pw.DateTimeField(default=utcnow)
    notify_host = pw.CharField(max_length=255, default="")  # never the URL (a credential)
    delivered = pw.BooleanField(null=True)  # None while posting, then whether it arrived
    delivery_error = pw.TextField(null=True)

    class Meta:
        table_name = "alert_firings"
        indexes = ((("fired_at",), False), (("rule", "fired_at"), False))


class AlertSchedule(BaseModel):
    """One row: when the rules are next due, so that one of all the writer processes of
    all the replicas evaluates them per interval instead of every one of them."""

    id = pw.IntegerField(primary_key=True)
    next_at = pw.DateTimeField()

    class Meta:
        table_name = "alert_schedule"


MODELS = (AlertState, AlertFiring, AlertSchedule)


def take_turn(now, interval):
    """True for the one caller that moves the schedule on at `now` (the others skip)."""
    AlertSchedule.insert(id=1, next_at=now).on_conflict_ignore().execute()
    later = now + datetime.timedelta(seconds=interval)
    return bool(AlertSchedule.update(next_at=later)
                .where(AlertSchedule.id == 1, AlertSchedule.next_at <= now).execute())


def claim(database, rule, group_key, value, now):
    """Mark rule+group firing; the new AlertFiring if this call did it, else None
    (it was firing already, here or in another process)."""
    with database.atomic():
        AlertState.insert(rule=rule.name, group_key=group_key, firing=False, value=value,
                          changed_at=now).on_conflict_ignore().execute()
        won = (AlertState.update(firing=True, value=value, changed_at=now)
               .where(AlertState.rule == rule.name, AlertState.group_key == group_key,
                      AlertState.firing == False)  # noqa: E712 (SQL, not Python)
               .execute())
        if not won:
            return None
        return AlertFiring.create(rule=rule.name, metric=rule.metric, window=rule.window,
                                  threshold=rule.above, group_key=group_key, value=value,
                                  fired_at=now, notify_host=_host(rule.notify))


def rearm(rule, above_groups, now):
    """Groups of `rule` that fire but are no longer above: firing false again. How many."""
    query = AlertState.update(firing=False, changed_at=now).where(
        AlertState.rule == rule.name, AlertState.firing == True)  # noqa: E712
    if above_groups:
        query = query.where(AlertState.group_key.not_in(list(above_groups)))
    return query.execute()


def delivered(firing, error=None):
    """Record how posting `firing` went."""
    (AlertFiring.update(delivered=error is None, delivery_error=error)
     .where(AlertFiring.id == firing.id).execute())


def firing_groups():
    """{rule name: [{group, value, since}]} of what fires now."""
    out = {}
    for row in (AlertState.select().where(AlertState.firing == True)  # noqa: E712
                .order_by(AlertState.rule, AlertState.group_key)):
        out.setdefault(row.rule, []).append({"group": row.group_key or None, "value": row.value,
                                             "since": row.changed_at})
    return out


def recent_firings(limit=100):
    """The newest firings first, as dicts."""
    rows = AlertFiring.select().order_by(AlertFiring.fired_at.desc(), AlertFiring.id.desc())
    return [{"rule": r.rule, "metric": r.metric, "window": r.window, "threshold": r.threshold,
             "group": r.group_key or None, "value": r.value, "fired_at": r.fired_at,
             "notify_host": r.notify_host, "delivered": r.delivered,
             "delivery_error": r.delivery_error} for r in rows.limit(limit)]


def _host(url):
    from .rules import notify_host
    return notify_host(url)
