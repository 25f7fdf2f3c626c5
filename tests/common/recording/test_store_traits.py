"""The grouping keys the writer stores on each row and in the hourly aggregates, and the
backfill `nexus relink` makes of them."""
import peewee as pw

from common import cli, keys
from common import config as nexus_config
from common.models import ApiRequest, HourlyUsage, HourlyUsageByKey
from common.recording import aggregates
from common.pricing import load_prices
from common.recording.store import save_records
from tests import scenarios

CONFIG = nexus_config.load({})
MAIN_ENV = ("\n# Environment\nYou have been invoked in the following environment:\n"
            " - Primary working directory: /work/shop\n - Is a git repository: true\n"
            "gitStatus: This is the git status at the start of the conversation.\n"
            "Current branch: feature/cart\n\nMain branch: main\n")
SUB_ENV = "\n<env>\nWorking directory: /work/shop\nIs directory a git repo: Yes\n</env>\n"


def _session(seed=1, key_id=None, agent_types=False):
    """Main loop (2 turns, the first spawning an Explore sub-agent of 2 turns) and a title."""
    s = scenarios.Session(seed=seed)
    main = s.agent(system=[{"type": "text", "text": scenarios.IDENTITY},
                           {"type": "text", "text": scenarios.MAIN_PROMPT + MAIN_ENV}])
    main.user("Survey the repository")
    call = s.tool_use("Agent", description="Survey", subagent_type="Explore",
                      prompt="List the files of this repository.")
    s.turn("M1", main, s.message(scenarios.MAIN_MODEL, "Delegating.", call), None)
    sub = s.agent(system=[{"type": "text", "text": scenarios.IDENTITY},
                          {"type": "text", "text": scenarios.SUBAGENT_PROMPT + SUB_ENV}],
                  model=scenarios.SMALL_MODEL)
    sub.user(call["input"]["prompt"])
    if agent_types:  # Claude Code 2.1 lists agent types in a system message after the prompt
        sub.messages.append({"role": "system", "content": "Available agent types: Explore."})
    s.turn("S1", sub, s.message(scenarios.SMALL_MODEL, s.tool_use("Bash", command="ls")), None)
    sub.results("README.md")
    s.turn("S2", sub, s.message(scenarios.SMALL_MODEL, "A README."), None)
    main.results("A README.")
    s.turn("M2", main, s.message(scenarios.MAIN_MODEL, "Done."), None)
    s.side_call("title", "Please write a title for: Survey the repository")
    for record in s.records:
        record["client_key_id"] = key_id
    return s


def _rows(s):
    by_id = {r["request_id"]: r for r in ApiRequest.select().dicts()}
    return {label: by_id[request_id] for label, request_id in s.ids.items()}


def test_each_row_gets_its_project_branch_developer_and_subagent(database):
    s = _session()
    assert save_records(database, s.records, load_prices(), CONFIG) == 5
    rows = _rows(s)
    for label in ("M1", "M2", "S1", "S2"):
        assert rows[label]["project"] == "/work/shop", label
        # The sub-agent's prompt has no git status: its branch is its spawner's.
        assert rows[label]["git_branch"] == "feature/cart", label
        assert rows[label]["developer"] == s.account, label
    assert [rows[k]["subagent"] for k in ("M1", "S1", "S2", "M2")] == [None, "Explore", "Explore", None]
    # A title call names no directory: no project, but the developer all the same.
    assert (rows["title"]["project"], rows["title"]["developer"]) == (None, s.account)


def test_a_subagent_whose_first_request_lists_agent_types_is_found(database):
    s = _session(agent_types=True)
    save_records(database, s.records, load_prices(), CONFIG)
    rows = _rows(s)
    assert rows["S1"]["message_count"] == 2
    assert (rows["S1"]["parent_task_request_id"], rows["S1"]["subagent"]) == (s.ids["M1"], "Explore")
    assert rows["S2"]["subagent"] == "Explore"


def test_the_hourly_aggregates_keep_each_key(database):
    s = _session()
    save_records(database, s.records, load_prices(), CONFIG)
    K = HourlyUsageByKey
    for column in ("project", "git_branch", "developer", "subagent", "session_id"):
        field = getattr(K, column)
        hours = dict(K.select(field, pw.fn.SUM(K.output_tokens)).group_by(field).tuples())
        rows = {}
        for row in ApiRequest.select().dicts():
            rows[row[column] or ""] = rows.get(row[column] or "", 0) + row["output_tokens"]
        assert {k: int(v) for k, v in hours.items()} == rows, column
    assert K.get(K.subagent == "Explore").requests == 2
    # The overview's table keeps one row per hour, domain, model, type and account.
    narrow = {(aggregates.hour_of(r.timestamp), r.domain, r.model, r.request_type, r.account_id or "")
              for r in ApiRequest.select()}
    assert HourlyUsage.select().count() == len(narrow)
    assert HourlyUsage.select(pw.fn.SUM(HourlyUsage.requests)).scalar() == 5


def test_a_client_keys_name_is_the_developer(database):
    key, _ = keys.create(name="alice")
    s = _session(key_id=key.key_id)
    save_records(database, s.records, load_prices(), CONFIG)
    assert {r["developer"] for r in _rows(s).values()} == {"alice"}


def test_relink_backfills_rows_recorded_before_the_keys_existed(database, db_url, capsys):
    s = _session()
    save_records(database, s.records, load_prices(), CONFIG)
    expected = {k: {c: r[c] for c in ("project", "git_branch", "developer", "subagent")}
                for k, r in _rows(s).items()}
    # As an older release left them: no keys on the rows, none in the aggregates.
    ApiRequest.update(project=None, git_branch=None, developer=None, subagent=None).execute()
    aggregates.rebuild(database)
    assert cli.main(["relink"], environ={"DATABASE_URL": db_url}) == 0
    assert "rows changed: 5" in capsys.readouterr().out
    database.connect(reuse_if_open=True)
    assert {k: {c: r[c] for c in expected[k]} for k, r in _rows(s).items()} == expected
    assert HourlyUsageByKey.get(HourlyUsageByKey.subagent == "Explore").requests == 2
    assert HourlyUsageByKey.select(pw.fn.SUM(HourlyUsageByKey.requests)).scalar() == 5
    assert HourlyUsage.select(pw.fn.SUM(HourlyUsage.requests)).scalar() == 5
    assert cli.main(["relink"], environ={"DATABASE_URL": db_url}) == 0
    assert "rows changed: 0" in capsys.readouterr().out
