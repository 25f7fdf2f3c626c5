"""Real Claude Code through the proxy: each body comes back byte for byte, and a session
is stored in a twentieth of what it sent."""
import base64
import hashlib
import os

from common.models import BodyPiece, RequestBody
from tests.claude_code import git_repository, run_claude
from tests.claude_code_upstream import script_tag, start_claude_code_upstream
from tests.dashboard.conftest import KEY, make_app
from tests.proxy.rows import wait_for_rows
from tests.proxy_server import running_proxy

STEPS = 24  # tool turns: with the side calls, about thirty requests of 80-100 KB


def _script(repo):
    steps = []
    for n in range(STEPS):
        if n % 2:
            steps.append({"tool": "Read", "input": {"file_path": os.path.join(repo, f"notes_{n}.md")}})
        else:
            steps.append({"tool": "Bash", "input": {"command": f"wc -c notes_{n + 1}.md",
                                                    "description": "Count the bytes"}})
    return steps + [{"text": "Read every note."}]


def _files():
    return {f"notes_{n}.md": f"# Note {n}\n\n" + f"Line {n} of the notes, with detail.\n" * 40
            for n in range(STEPS + 1)}


def test_a_real_session_round_trips_and_is_stored_in_a_twentieth(claude_code, db_url, tmp_path,
                                                                 database):
    repo = git_repository(tmp_path / "shop", "feature/notes", files=_files())
    with start_claude_code_upstream() as upstream, running_proxy(
            {"CLAUDE_API_BASE_URL": upstream.url, "DATABASE_URL": db_url}) as proxy:
        run = run_claude(claude_code, "Read the notes. " + script_tag(_script(repo)),
                         base_url=proxy.url, home=tmp_path / "alice", cwd=repo,
                         auth_token="sk-ant-oat01-alice-test", max_turns=STEPS + 5, timeout=300)
        assert run.returncode == 0, run.stderr[-2000:]
        received = [r for r in upstream.requests() if r["path"].startswith("/v1/")]
        wait_for_rows(db_url, len(received), timeout=60)
    sent = [base64.b64decode(r["body_b64"]) for r in received]  # what Claude Code sent
    client = make_app(db_url, DASHBOARD_API_KEY=KEY).test_client()
    stored_ids = [b.request_id for b in RequestBody.select(RequestBody.request_id)]
    assert len(stored_ids) == len(received)
    round_trips = set()
    for request_id in stored_ids:
        answer = client.get(f"/api/requests/{request_id}/raw/request",
                            headers={"X-Dashboard-Key": KEY})
        assert answer.status_code == 200 and answer.headers.get("x-nexus-exact") is None
        round_trips.add(hashlib.sha256(answer.data).hexdigest())
    assert round_trips == {hashlib.sha256(body).hexdigest() for body in sent}
    request_bytes = sum(len(body) for body in sent)
    stored = (sum(p.stored for p in BodyPiece.select(BodyPiece.stored))
              + sum(len(b.request_recipe or b"") + len(b.response_data or b"")
                    + len(b.response_headers_data or b"") for b in RequestBody.select()))
    parts = {"pieces": sum(p.stored for p in BodyPiece.select(BodyPiece.stored)),
             "recipes": sum(len(b.request_recipe or b"") for b in RequestBody.select()),
             "responses": sum(len(b.response_data or b"") for b in RequestBody.select()),
             "response headers": sum(len(b.response_headers_data or b"")
                                     for b in RequestBody.select())}
    by_kind = {}
    for piece in BodyPiece.select():
        by_kind[piece.kind] = by_kind.get(piece.kind, 0) + piece.stored
    print(parts, by_kind)
    print(f"{len(received)} requests, {request_bytes} bytes sent, {stored} bytes stored "
          f"({100 * stored / request_bytes:.1f} %)")
    assert stored <= 0.05 * request_bytes
