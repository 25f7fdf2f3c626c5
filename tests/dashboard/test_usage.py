"""/api/usage and /usage: group sums equal the rows, on SQLite and PostgreSQL."""
import datetime

import pytest

from common.models import ApiRequest, utcnow
from common.pricing import load_prices
from common.recording import aggregates

from dashboard.queries import usage as usage_queries

from .conftest import KEY, make_app
from .factories import make_request

GROUPS = {"project": "project", "branch": "git_branch", "developer": "developer",
          "session": "session_id", "subagent": "subagent", "model": "model"}
SUMMED = ("requests", "input_tokens", "output_tokens", "cache_creation_input_tokens",
          "cache_read_input_tokens", "cost_usd")


def _by_rows(column):
    found = {}
    for row in ApiRequest.select().dicts():
        sums = found.setdefault(row[column] or None, dict.fromkeys(SUMMED, 0))
        sums["requests"] += 1
        for name in SUMMED[1:]:
            sums[name] += row[name] or 0
    return found


@pytest.mark.parametrize("group_by", list(GROUPS))
def test_group_sums_equal_the_rows(client, seeded, group_by):
    data = client.get(f"/api/usage?group_by={group_by}&since=5d").json
    assert data["group_by"] == group_by and not data["truncated"]
    expected = _by_rows(GROUPS[group_by])
    got = {g["key"]: g for g in data["groups"]}
    assert set(got) == set(expected)
    for key, sums in expected.items():
        for name in SUMMED[:-1]:
            assert got[key][name] == sums[name], (key, name)
        assert abs(got[key]["cost_usd"] - sums["cost_usd"]) < 1e-6
    costs = [g["cost_usd"] for g in data["groups"]]
    assert costs == sorted(costs, reverse=True)
    if group_by in ("project", "branch", "developer", "subagent"):
        assert len(got) > 1  # the synthetic traffic names several of each


def test_seeded_subagents_group_under_their_type(client, seeded):
    keys = {g["key"] for g in client.get("/api/usage?group_by=subagent&since=5d").json["groups"]}
    assert keys == {None, "general-purpose"}
    branches = ApiRequest.select().where(ApiRequest.subagent == "general-purpose",
                                         ApiRequest.git_branch.is_null())
    assert branches.count() == 0  # a sub-agent's branch is its spawner's


@pytest.fixture
def empty(database, db_url):
    """A client of a dashboard over an empty database (the API key as a header)."""
    client = make_app(db_url, DASHBOARD_API_KEY=KEY).test_client()
    client.environ_base["HTTP_X_DASHBOARD_KEY"] = KEY
    return client


def test_cache_hit_rate_and_savings(empty, database):
    now = utcnow().replace(microsecond=0)
    for n in range(2):
        make_request(timestamp=now - datetime.timedelta(minutes=n + 1), project="/p/one",
                     model="claude-sonnet-4-5-20250929", input_tokens=1000,
                     cache_creation_input_tokens=1000, cache_read_input_tokens=8000, cost_usd=0.5)
    make_request(timestamp=now, project="/p/two", model="made-up-model", input_tokens=5,
                 cache_read_input_tokens=100, cost_usd=0.0)
    make_request(timestamp=now, model="claude-sonnet-4-5-20250929", cost_usd=0.25)
    aggregates.rebuild(database)
    groups = empty.get("/api/usage?group_by=project&since=1h").json["groups"]
    assert [g["key"] for g in groups] == ["/p/one", None, "/p/two"]
    one = groups[0]
    assert one["cache_hit_rate"] == 16000 / (2000 + 16000 + 2000)
    # Sonnet 4.5: input $3, cache read $0.30 per million tokens.
    prices = load_prices().lookup("claude-sonnet-4-5-20250929")[1]
    assert abs(one["cache_savings_usd"] - 16000 * (prices["input"] - prices["cache_read"]) / 1e6) < 1e-9
    # An unpriced model: savings unknown, never a made-up number.
    assert groups[2]["cache_savings_usd"] is None
    assert groups[1]["cache_hit_rate"] == 0.0


def test_a_null_cost_is_unknown_not_a_crash():
    # Where unpriced requests keep cost_usd null, a group of them has no known cost.
    prices = load_prices()
    rows = [("/p/y", 2, 10, 20, 0, 300, 0.5), ("/p/x", 2, 10, 20, 0, 100, None)]
    reads = {"/p/y": [("claude-sonnet-4-5-20250929", 200), ("made-up-model", 100)],
             "/p/x": [("made-up-model", 100)]}
    groups = usage_queries.fold(rows, reads, prices)
    assert [(g["key"], g["cost_usd"], g["requests"]) for g in groups] == [
        ("/p/y", 0.5, 2), ("/p/x", None, 2)]
    assert groups[0]["cache_savings_usd"] == round(200 * (3 - 0.3) / 1e6, 6)  # the priced part
    assert groups[1]["cache_hit_rate"] == 100 / 110 and groups[1]["cache_savings_usd"] is None


def test_limit_keeps_the_costliest_groups(client, seeded):
    every = client.get("/api/usage?group_by=session&since=5d").json["groups"]
    few = client.get("/api/usage?group_by=session&since=5d&limit=3").json
    assert few["truncated"] and few["groups"] == every[:3]


def test_a_group_links_to_its_requests(client, seeded):
    page = client.get("/usage?group_by=branch&since=5d").get_data(as_text=True)
    assert 'href="/requests?branch=fix/login&amp;since=5d"' in page
    rows = client.get("/api/requests?branch=fix/login&limit=500").json["requests"]
    ids = {r["request_id"] for r in rows}
    expected = {r.request_id for r in ApiRequest.select().where(ApiRequest.git_branch == "fix/login")}
    assert ids == expected and ids
    html = client.get("/requests?branch=fix/login").get_data(as_text=True)
    assert 'name="branch" value="fix/login"' in html  # the filter survives the form


@pytest.mark.parametrize("param", ["project", "developer", "session", "subagent"])
def test_request_filters_by_each_key(client, seeded, param):
    column = GROUPS[param]
    value = (ApiRequest.select(getattr(ApiRequest, column))
             .where(getattr(ApiRequest, column).is_null(False)).limit(1).scalar())
    rows = client.get("/api/requests", query_string={param: value, "limit": 500}).json["requests"]
    assert rows and len(rows) == ApiRequest.select().where(getattr(ApiRequest, column) == value).count()


def test_usage_page_switches_and_charts(client, seeded):
    page = client.get("/usage?group_by=developer&since=5d").get_data(as_text=True)
    assert "Usage by developer" in page
    for by in GROUPS:
        assert f'data-group-by="{by}"' in page
    data = client.get("/usage?group_by=developer&since=5d&format=json").json
    assert data["groups"][0]["key"] in page


def test_bad_group_by_is_a_400(client):
    response = client.get("/api/usage?group_by=planet")
    assert response.status_code == 400
    assert "group_by" in response.get_data(as_text=True)
