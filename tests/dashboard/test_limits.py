"""Subscription limits end to end: the real proxy, the fake upstream's unified window
headers, the writer's samples, and /api/limits and /limits of the dashboard."""
import datetime
import hashlib
import json
import time

import pytest
import requests

from tests.fake_upstream import start_fake_upstream
from tests.proxy.rows import wait_for_rows
from tests.proxy_server import running_proxy

from .conftest import KEY, make_app

MODEL = "claude-haiku-4-5-20251001"
ACCOUNT = "6b0d0e1c-4a37-4d0e-9a51-2f1c9e0d7a11"
SUBSCRIPTION_TOKEN = "sk-ant-oat01-test-subscription-token"
API_KEY = "sk-ant-api03-test-key-without-account"


def _send(proxy, utilization, auth, session="sess-a"):
    metadata = {"user_id": json.dumps({"device_id": "dev-1", "account_uuid": ACCOUNT,
                                       "session_id": session})} if "Authorization" in auth else {}
    reply = requests.post(proxy.url + "/v1/messages", timeout=30, headers={
        **auth, "anthropic-version": "2023-06-01", "x-fake-unified": f"{utilization:.2f}"}, json={
        "model": MODEL, "max_tokens": 50, "metadata": metadata,
        "messages": [{"role": "user", "content": f"at {utilization}"}]})
    assert reply.status_code == 200
    return reply.headers


def _iso(unix):
    return datetime.datetime.fromtimestamp(int(unix), datetime.timezone.utc).isoformat()


@pytest.fixture
def proxy(db_url, tmp_path):
    with start_fake_upstream() as upstream, running_proxy(
            {"CLAUDE_API_BASE_URL": upstream.url, "DATABASE_URL": db_url}, cwd=str(tmp_path)) as running:
        yield running


def test_limits_follow_the_last_headers_exactly_and_project_exhaustion_when_utilization_rises(
        proxy, db_url):
    bearer = {"Authorization": f"Bearer {SUBSCRIPTION_TOKEN}"}
    sent = []
    for n, utilization in enumerate((0.40, 0.50, 0.60, 0.70)):
        sent.append(_send(proxy, utilization, bearer, session="sess-a" if n < 3 else "sess-b"))
        time.sleep(0.3)
    _send(proxy, 0.30, {"x-api-key": API_KEY})
    assert len(wait_for_rows(db_url, 5)) == 5
    client = make_app(db_url, DASHBOARD_API_KEY=KEY).test_client()
    answer = client.get("/api/limits", headers={"X-Dashboard-Key": KEY})
    assert answer.status_code == 200
    entries = {e["key"]: e for e in answer.get_json()["limits"]}
    fingerprint = "sha256:" + hashlib.sha256(API_KEY.encode()).hexdigest()[:16]
    assert set(entries) == {ACCOUNT, fingerprint}
    assert SUBSCRIPTION_TOKEN not in answer.get_data(as_text=True)
    assert API_KEY not in answer.get_data(as_text=True)

    last, entry = sent[-1], entries[ACCOUNT]
    prefix = "anthropic-ratelimit-unified-"
    assert entry["status"] == last[prefix + "status"]
    assert entry["representative_claim"] == last[prefix + "representative-claim"]
    for window, short in (("five_hour", "5h"), ("seven_day", "7d")):
        assert entry[window]["utilization"] == float(last[f"{prefix}{short}-utilization"])
        assert entry[window]["resets_at"] == _iso(last[f"{prefix}{short}-reset"])
        assert entry[window]["status"] == last[f"{prefix}{short}-status"]
    assert entry["five_hour"]["utilization"] == 0.70

    # 10 points in ~0.3 s each: the window fills within seconds, long before its reset.
    as_of = datetime.datetime.fromisoformat(entry["as_of"])
    projected = datetime.datetime.fromisoformat(entry["projected_exhausted_at"])
    resets = datetime.datetime.fromisoformat(entry["five_hour"]["resets_at"])
    assert entry["burn_rate_per_hour"] > 100
    assert as_of < projected < as_of + datetime.timedelta(seconds=30) < resets
    expected = as_of + datetime.timedelta(hours=0.3 / entry["burn_rate_per_hour"])
    assert abs((projected - expected).total_seconds()) < 0.01
    assert entry["projection_window"] == "five_hour"

    # One sample of the API key: its last headers, but too little data for a rate.
    other = entries[fingerprint]
    assert other["five_hour"]["utilization"] == 0.30
    assert other["burn_rate_per_hour"] is None and other["projected_exhausted_at"] is None

    page = client.get("/limits?format=json", headers={"X-Dashboard-Key": KEY}).get_json()
    usage = {e["key"]: e["window_usage"] for e in page["limits"]}[ACCOUNT]
    assert [s["session_id"] for s in usage["sessions"]] == ["sess-a", "sess-b"]
    assert [s["requests"] for s in usage["sessions"]] == [3, 1]
    assert usage["total"]["requests"] == 4


def test_real_claude_code_on_a_subscription_shows_its_windows(claude_code, db_url, tmp_path):
    """Real Claude Code with a subscription-style token: the upstream's utilization rises
    with every answer; /api/limits shows the newest recorded headers and a projection."""
    from tests.claude_code import git_repository, run_claude, session_script
    from tests.claude_code_upstream import script_tag, start_claude_code_upstream
    token = "sk-ant-oat01-limits-test"
    repo = git_repository(tmp_path / "shop", "feature/limits")
    with start_claude_code_upstream(start=0.5, step=0.05) as upstream, \
            running_proxy({"CLAUDE_API_BASE_URL": upstream.url, "DATABASE_URL": db_url}) as proxy:
        run = run_claude(claude_code, "Check the repository. " + script_tag(session_script(repo)),
                         base_url=proxy.url, home=tmp_path / "home", cwd=repo,
                         auth_token=token, timeout=120)
        received = [r for r in upstream.requests() if r["path"].startswith("/v1/messages")]
        rows = wait_for_rows(db_url, len(received))
    assert run.returncode == 0, run.stderr[-2000:]
    with_headers = [r for r in rows if r["ratelimit"] and "unified" in r["ratelimit"]]
    assert len(with_headers) >= 4
    newest = max(with_headers, key=lambda r: (r["timestamp"], r["id"]))
    headers = json.loads(newest["ratelimit"])
    accounts = {r["account_id"] for r in with_headers} - {None}
    expected_key = accounts.pop() if accounts else (
        "sha256:" + hashlib.sha256(token.encode()).hexdigest()[:16])

    client = make_app(db_url, DASHBOARD_API_KEY=KEY).test_client()
    answer = client.get("/api/limits", headers={"X-Dashboard-Key": KEY})
    assert token not in answer.get_data(as_text=True)
    (entry,) = answer.get_json()["limits"]
    prefix = "anthropic-ratelimit-unified-"
    assert entry["key"] == expected_key
    assert entry["status"] == headers[prefix + "status"]
    assert entry["five_hour"]["utilization"] == float(headers[prefix + "5h-utilization"]) > 0.5
    assert entry["five_hour"]["resets_at"] == _iso(headers[prefix + "5h-reset"])
    assert entry["seven_day"]["utilization"] == float(headers[prefix + "7d-utilization"])
    assert entry["burn_rate_per_hour"] > 0
    assert entry["projected_exhausted_at"] < entry["five_hour"]["resets_at"]


def test_without_subscription_headers_the_page_says_where_they_come_from(client):
    """Seeded traffic is recorded straight into the rows, so no window was sampled."""
    assert client.get("/api/limits").get_json() == {"limits": []}
    page = client.get("/limits")
    assert page.status_code == 200
    assert "No response has carried subscription-window headers yet" in page.get_data(as_text=True)
    assert client.get("/limits?format=json").get_json()["limits"] == []
