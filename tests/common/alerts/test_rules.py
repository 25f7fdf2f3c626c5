"""The alert rules file: what it accepts, and errors that name the line to fix."""
import pytest

from common.alerts import rules
from common.alerts.rules import RulesError, parse
from common.alerts.values import load_rules, request_columns

GOOD = '''
# spend per developer
[[alert]]
name = "daily spend"
metric = "cost_usd"
window = "24h"
above = 50.0
group_by = "model"
notify = "https://hooks.slack.com/services/T0/B0/secret"

[[alert]]
name = "five hour"
metric = "five_hour_utilization"
window = "10m"
above = 0.9
notify = "http://127.0.0.1:9/hook"
'''


def test_a_good_file_gives_its_rules():
    spend, limit = parse(GOOD, "alerts.toml")
    assert (spend.name, spend.metric, spend.window, spend.seconds, spend.above) == \
        ("daily spend", "cost_usd", "24h", 86400, 50.0)
    assert (spend.group_by, spend.column, spend.line) == ("model", "model", 3)
    assert (limit.metric, limit.seconds, limit.group_by, limit.line) == \
        ("five_hour_utilization", 600, None, 11)


@pytest.mark.parametrize("window, seconds", [("5m", 300), ("1h", 3600), ("30s", 30), ("7d", 604800)])
def test_windows(window, seconds):
    assert rules.parse_window(window) == seconds


def _with(line_number_key, bad_line):
    lines = GOOD.splitlines()
    index = next(n for n, line in enumerate(lines) if line.startswith(line_number_key))
    lines[index] = bad_line
    return "\n".join(lines), index + 1


@pytest.mark.parametrize("key, bad, words", [
    ("metric", 'metric = "cost"', "metric 'cost' is not one of cost_usd"),
    ("window", 'window = "a day"', "window 'a day' is not a duration"),
    ("window", 'window = "0m"', "is not a duration"),
    ("above", 'above = "fifty"', "above must be a number"),
    ("group_by", 'group_by = "team"', "group_by 'team' is not one of project, branch"),
    ("notify", 'notify = "hooks.slack.com/x"', "notify must be an http:// or https:// URL"),
    ("above = 50", 'colour = "red"', "unknown key 'colour'"),
])
def test_a_wrong_value_names_its_line(key, bad, words):
    text, line = _with(key, bad)
    with pytest.raises(RulesError) as error:
        parse(text, "alerts.toml")
    assert f"alerts.toml, line {line}: " in str(error.value)
    assert words in str(error.value)


def test_a_missing_key_names_the_alert_header():
    text = GOOD.replace('window = "10m"\n', "")
    with pytest.raises(RulesError, match=r"alerts.toml, line 11: this alert has no 'window'"):
        parse(text, "alerts.toml")


def test_toml_syntax_errors_name_the_line():
    text = GOOD.replace('above = 0.9', 'above = 0.9 0.8')
    with pytest.raises(RulesError, match=r"alerts.toml, line 15: Expected newline .*\(column 13\)"):
        parse(text, "alerts.toml")


def test_duplicate_names_are_refused():
    text = GOOD.replace('"five hour"', '"daily spend"')
    with pytest.raises(RulesError, match=r"line 12: a second alert is named 'daily spend'"):
        parse(text, "alerts.toml")


def test_utilization_is_a_fraction_and_per_credential():
    with pytest.raises(RulesError, match=r"line 15: .*write 0.9 for 90 %"):
        parse(GOOD.replace("above = 0.9", "above = 90"), "alerts.toml")
    with pytest.raises(RulesError, match=r"line 16: five_hour_utilization is always per credential"):
        parse(GOOD.replace('above = 0.9\n', 'above = 0.9\ngroup_by = "model"\n'), "alerts.toml")


def test_group_by_needs_its_column_in_the_schema():
    columns = request_columns()
    for name, column in rules.GROUP_COLUMNS.items():
        text = GOOD.replace('group_by = "model"', f'group_by = "{name}"')
        if column in columns:
            assert parse(text, "a.toml", columns=columns)[0].column == column
        else:
            with pytest.raises(RulesError, match=rf"line 8: group_by '{name}' needs the "
                               rf"api_requests column '{column}'"):
                parse(text, "a.toml", columns=columns)


def test_load_reads_the_file_and_none_means_no_alerts(tmp_path):
    assert load_rules(None) == []
    path = tmp_path / "alerts.toml"
    path.write_text(GOOD)
    assert [r.name for r in load_rules(str(path))] == ["daily spend", "five hour"]
    with pytest.raises(RulesError, match="cannot read the alerts file"):
        load_rules(str(tmp_path / "missing.toml"))


def test_nexus_alerts_check_lists_the_rules(tmp_path, capsys):
    from common.cli import main
    path = tmp_path / "alerts.toml"
    path.write_text(GOOD)
    assert main(["alerts", "check", str(path)], environ={}) == 0
    out = capsys.readouterr().out
    assert "daily spend: cost_usd over 24h above 50 per model → hooks.slack.com" in out
    assert "secret" not in out and f"{path}: 2 alert rules, valid" in out
    path.write_text(GOOD.replace('"24h"', '"24 hours"'))
    assert main(["alerts", "check"], environ={"NEXUS_ALERTS_FILE": str(path)}) == 1
    assert "line 6: window '24 hours'" in capsys.readouterr().out
