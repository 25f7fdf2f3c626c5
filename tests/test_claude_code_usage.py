"""Issue 11's acceptance run: real Claude Code, two developers (two HOMEs, subscription-style
bearer tokens) in two git repositories on different branches, each delegating to a
sub-agent, through the real proxy; /api/usage then groups every request correctly."""
import os

from common import config as nexus_config
from dashboard.app import create_app
from tests.claude_code import git_repository, run_claude, session_script
from tests.claude_code_upstream import script_tag, start_claude_code_upstream
from tests.proxy.rows import wait_for_rows
from tests.proxy_server import running_proxy

KEY = "usage-test-dashboard-key"
PEOPLE = (("alice", "shop", "feature/cart", "Explore"), ("bob", "blog", "fix/typo", "general-purpose"))


def _usage(db_url, group_by):
    app = create_app(nexus_config.load({"DATABASE_URL": db_url, "DASHBOARD_API_KEY": KEY}))
    response = app.test_client().get(f"/api/usage?group_by={group_by}&since=1h",
                                     headers={"X-Dashboard-Key": KEY})
    assert response.status_code == 200, response.get_data(as_text=True)
    return {g["key"]: g for g in response.json["groups"]}


def test_two_developers_two_repositories_group_apart(claude_code, db_url, tmp_path):
    runs = {}
    with start_claude_code_upstream() as upstream, \
            running_proxy({"CLAUDE_API_BASE_URL": upstream.url, "DATABASE_URL": db_url}) as proxy:
        for person, repo_name, branch, agent in PEOPLE:
            repo = git_repository(tmp_path / repo_name, branch)
            run = run_claude(claude_code, "Check the repository. "
                             + script_tag(session_script(repo, subagent=agent)),
                             base_url=proxy.url, home=tmp_path / person, cwd=repo,
                             auth_token=f"sk-ant-oat01-{person}-test", timeout=150)
            assert run.returncode == 0, run.stderr[-2000:]
            runs[person] = (run, os.path.realpath(repo))
        received = [r for r in upstream.requests() if r["path"] == "/v1/messages"]
        rows = wait_for_rows(db_url, len(received))
    assert len(rows) == len(received)
    # Sub-agents' requests carry their agent id (the general-purpose one offers Agent too).
    assert sum(1 for r in received if r.header("x-claude-code-agent-id")) == 4

    by_session = {run.session_id: person for person, (run, _) in runs.items()}
    assert {row["session_id"] for row in rows} == set(by_session)
    mine = {person: [r for r in rows if by_session[r["session_id"]] == person] for person in runs}
    developers = {person: {r["developer"] for r in own} for person, own in mine.items()}
    assert all(len(d) == 1 and None not in d for d in developers.values()), developers
    assert developers["alice"] != developers["bob"]
    for person, repo_name, branch, agent in PEOPLE:
        tools = [r for r in mine[person] if r["request_type"] == "inference"]
        assert {os.path.realpath(r["project"]) for r in tools} == {runs[person][1]}, person
        assert {r["git_branch"] for r in tools} == {branch}, person  # sub-agents' too
        assert [r["subagent"] for r in tools].count(agent) == 2, person

    for group_by, column in (("project", "project"), ("branch", "git_branch"),
                             ("developer", "developer"), ("session", "session_id"),
                             ("subagent", "subagent"), ("model", "model")):
        groups = _usage(db_url, group_by)
        expected = {}
        for row in rows:
            sums = expected.setdefault(row[column], [0, 0, 0])
            sums[0] += 1
            sums[1] += row["output_tokens"]
            sums[2] += row["cache_read_input_tokens"]
        assert {k: [g["requests"], g["output_tokens"], g["cache_read_input_tokens"]]
                for k, g in groups.items()} == expected, group_by
    subagents = _usage(db_url, "subagent")
    assert subagents["Explore"]["requests"] == 2 and subagents["general-purpose"]["requests"] == 2
    branches = _usage(db_url, "branch")
    assert branches["feature/cart"]["requests"] == len([r for r in mine["alice"]
                                                        if r["git_branch"]])
