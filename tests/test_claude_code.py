"""The harness drives real Claude Code through the real proxy to a scripted upstream."""
import json

from tests.claude_code import git_repository, kind_of, run_claude, session_script
from tests.claude_code_upstream import script_tag, start_claude_code_upstream
from tests.proxy.rows import wait_for_rows
from tests.proxy_server import running_proxy


def test_a_session_runs_its_agent_loop_through_the_proxy(claude_code, db_url, tmp_path):
    repo = git_repository(tmp_path / "shop", "feature/cart")
    with start_claude_code_upstream() as upstream, \
            running_proxy({"CLAUDE_API_BASE_URL": upstream.url, "DATABASE_URL": db_url}) as proxy:
        run = run_claude(claude_code, "Check the repository. " + script_tag(session_script(repo)),
                         base_url=proxy.url, home=tmp_path / "alice", cwd=repo,
                         auth_token="sk-ant-oat01-alice-test", timeout=120)
        received = [r for r in upstream.requests() if r["path"] == "/v1/messages"]
        rows = wait_for_rows(db_url, len(received))
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.result["result"] == "All done: the repository is clean and documented."
    kinds = [kind_of(r.json()) for r in received]
    # Bash, Read and Agent turns, the sub-agent's own two turns, then the last answer.
    assert kinds.count("main") >= 4 and kinds.count("subagent") == 2, kinds
    assert all(r.header("authorization") == "Bearer sk-ant-oat01-alice-test" for r in received)
    assert len(rows) == len(received)
    assert {row["session_id"] for row in rows} == {run.session_id}
    ratelimits = [json.loads(row["ratelimit"]) for row in rows]
    assert all("anthropic-ratelimit-unified-5h-utilization" in r for r in ratelimits)
