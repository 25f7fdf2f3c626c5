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
