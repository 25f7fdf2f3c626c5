"""The link rules one at a time: retries, missing parents, sessions, task windows."""
import datetime

from common import config as nexus_config
from common.models import ApiRequest
from common.pricing import load_prices
from common.recording.store import save_records
from tests import scenarios

CONFIG = nexus_config.load({})


def _save(database, records):
    save_records(database, records, load_prices(), CONFIG)
    return {r["request_id"]: r for r in ApiRequest.select().dicts()}


def test_a_missing_parent_links_to_the_nearest_stored_ancestor(database):
    day = scenarios.claude_code_day()
    lost = day.ids["A2"]
    rows = _save(database, [r for r in day.records if r["request_id"] != lost])
    a3 = rows[day.ids["A3"]]
    assert a3["parent_request_id"] == day.ids["A1"]
    assert a3["conversation_id"] == rows[day.ids["A1"]]["conversation_id"]
    assert a3["branch_id"] == "main"


def test_with_no_ancestor_stored_the_session_and_system_prompt_decide(database):
    day = scenarios.claude_code_day()
    lost = {day.ids[k] for k in ("A2", "A3", "S1", "S2")}
    rows = _save(database, [r for r in day.records if r["request_id"] not in lost])
    a4 = rows[day.ids["A4"]]
    # A4 continues A3, whose ancestors A2 and A1... A1 is stored: the hash chain still finds it
    assert a4["parent_request_id"] == day.ids["A1"]
    lost |= {day.ids["A1"]}
    database.execute_sql("DELETE FROM api_requests")
    rows = _save(database, [r for r in day.records if r["request_id"] not in lost])
    a4 = rows[day.ids["A4"]]
    assert a4["parent_request_id"] is None and a4["conversation_id"] == day.ids["A4"]
    a5 = rows[day.ids["A5"]]
    assert a5["conversation_id"] == day.ids["A4"]


def test_without_a_session_an_orphan_starts_a_conversation(database):
    day = scenarios.claude_code_day(header=False, user_id_form="old")
    for record in day.records:
        record["request_body"] = record["request_body"].replace(day.session_id.encode(), b"0" * 36)
    rows = _save(database, [r for r in day.records if r["request_id"] != day.ids["A1"]])
    assert rows[day.ids["A2"]]["conversation_id"] == day.ids["A2"]


def test_a_retry_after_529_stays_on_the_branch_and_the_success_is_the_parent(database):
    day = scenarios.claude_code_day()
    rows = _save(database, day.records)
    failed, retried = rows[day.ids["A7-failed"]], rows[day.ids["A7"]]
    assert failed["branch_id"] == retried["branch_id"] == rows[day.ids["A6"]]["branch_id"]
    assert rows[day.ids["A8"]]["parent_request_id"] == day.ids["A7"]


def test_a_sub_agent_long_after_its_task_call_is_not_linked(database):
    day = scenarios.claude_code_day()
    late = {day.ids["S1"], day.ids["S2"]}
    for record in day.records:
        if record["request_id"] in late:
            record["timestamp"] += datetime.timedelta(days=2)
    rows = _save(database, day.records)
    assert rows[day.ids["S1"]]["is_subtask"] is False
    assert rows[day.ids["S1"]]["conversation_id"] == day.ids["S1"]


def test_domains_never_link_to_each_other(database):
    day = scenarios.claude_code_day()
    for record in day.records:
        if record["request_id"] == day.ids["A1"]:
            record["domain"] = "other.example.com"
    rows = _save(database, day.records)
    assert rows[day.ids["A2"]]["parent_request_id"] != day.ids["A1"]


def test_cleared_old_tool_results_keep_every_link(database):
    """Claude Code may replace old tool results with a placeholder mid-session."""
    day = scenarios.claude_code_day()
    old = b'"def parse_line(line):\\n    return line.split(\',\')"'
    start = next(r["timestamp"] for r in day.records if r["request_id"] == day.ids["A4"])
    changed = 0
    for record in day.records:
        if record["timestamp"] >= start and old in record["request_body"]:
            record["request_body"] = record["request_body"].replace(old, b'"[Old tool result content cleared]"')
            changed += 1
    assert changed > 5
    rows = _save(database, day.records)
    assert scenarios.link_mismatches(rows, [day]) == []


def test_parallel_sub_agents_each_get_a_branch_under_the_same_call(database):
    s = scenarios.Session(seed=3)
    main = s.agent()
    main.user("Review the three modules")
    calls = [s.tool_use("Task", prompt=f"Review module {n} for bugs.") for n in "abc"]
    s.turn("A1", main, s.message(scenarios.MAIN_MODEL, *calls), ("A", "main", None, None))
    subs = []
    for n, call in zip("abc", calls):
        sub = s.agent(system=scenarios.subagent_system())
        sub.user(call["input"]["prompt"])
        subs.append(sub)
    for n, sub in zip("abc", subs):  # interleaved, as parallel agents are
        s.turn(f"{n}1", sub, s.message(scenarios.MAIN_MODEL, s.tool_use("Read", file_path=n)),
               ("A", n, "A1", "A1"), seconds=1)
    for n, sub in zip("abc", subs):
        sub.results("contents")
        s.turn(f"{n}2", sub, s.message(scenarios.MAIN_MODEL, "No bugs."), ("A", n, f"{n}1", "A1"), seconds=1)
    main.results("a: none", "b: none", "c: none")
    s.turn("A2", main, s.message(scenarios.MAIN_MODEL, "All three are clean."), ("A", "main", "A1", None))
    rows = _save(database, s.records)
    assert scenarios.link_mismatches(rows, [s]) == []
