"""A rule's value now, per group, from `api_requests` (the database edge of alerts)."""
import peewee as pw

from ..models import ApiRequest as A
from . import rules as alert_rules
from ..limits import latest_utilization


def request_columns():
    """The api_requests columns this version's schema has (what group_by may use)."""
    return {field.column_name for field in A._meta.sorted_fields}


def load_rules(path):
    """The rules of the file at `path`, their group_by checked against the schema."""
    return alert_rules.load(path, columns=request_columns())


def _count_if(condition):
    return pw.fn.SUM(pw.Case(None, ((condition, 1),), 0))


def _expressions():
    errors = _count_if((A.response_status >= 400) | A.error.is_null(False))
    return {"cost_usd": pw.fn.SUM(A.cost_usd), "requests": pw.fn.COUNT(A.id),
            "errors": errors, "input_tokens": pw.fn.SUM(A.input_tokens),
            "output_tokens": pw.fn.SUM(A.output_tokens)}


def current(rule, now):
    """{group key: value} of `rule` over the window ending `now`; '' is the key of an
    ungrouped rule and of requests without the group's trait."""
    since = now - rule.duration
    if rule.metric in alert_rules.UTILIZATION_METRICS:
        window = alert_rules.UTILIZATION_METRICS[rule.metric]
        return {key: sample[window] for key, sample in latest_utilization(since).items()
                if sample[window] is not None}
    exprs = _expressions()
    if rule.metric == "error_rate":
        selected = [exprs["errors"].alias("a"), exprs["requests"].alias("b")]
    else:
        selected = [exprs[rule.metric].alias("a")]
    query = A.select(*selected).where(A.timestamp > since, A.timestamp <= now)
    if rule.column:
        group = getattr(A, _field_name(rule.column))
        query = query.select_extend(group.alias("g")).group_by(group)
    out = {}
    for row in query.dicts():
        value = _value(rule.metric, row)
        if value is not None:
            key = row.get("g")
            out["" if key is None else str(key)[:255]] = value  # the state column's size
    return out


def _value(metric, row):
    if metric == "error_rate":
        return float(row["a"] or 0) / row["b"] if row["b"] else None
    return float(row["a"] or 0)


def _field_name(column):
    for field in A._meta.sorted_fields:
        if field.column_name == column:
            return field.name
    raise ValueError(f"api_requests has no column {column!r}")


def cmd_check(args, config):
    """`nexus alerts check [FILE]`: the rules, or the line that is wrong (exit 1)."""
    path = args.file or config.alerts_file
    if not path:
        print("no rules file: set NEXUS_ALERTS_FILE or name one")
        return 1
    try:
        rules = load_rules(path)
    except alert_rules.RulesError as exc:
        print(exc)
        return 1
    for rule in rules:
        grouped = f" per {rule.group_by}" if rule.group_by else ""
        print(f"{rule.name}: {rule.metric} over {rule.window} above {rule.above:g}{grouped}"
              f" → {alert_rules.notify_host(rule.notify)}")
    print(f"{path}: {len(rules)} alert rule{'s' if len(rules) != 1 else ''}, valid")
    return 0
