"""The real dashboard (gunicorn) against hostile callers and a bad database.

- DNS rebinding: a keyless dashboard answers only loopback host names (and those in
  DASHBOARD_ALLOWED_HOSTS), so a page on another name cannot read it.
- Wrong X-Dashboard-Key headers are throttled like wrong logins.
- A session cookie copied before logout is refused after it.
- Query parameters far out of range are 400s, CSV cells cannot run as formulas.
- A database that is down or not migrated is a 503 that says so, and /ready says it too.
"""
import csv
import io
import re

import requests
import pytest

from common import db as nexus_db
from tests.dashboard.factories import make_request
from tests.dashboard.server import running_dashboard
from tests.proxy.conftest import free_port

KEY = "reliability-dashboard-key-0123456789"


def nested(depth):
    value = []
    for _ in range(depth):
        value = [value]
    return {"model": "claude-sonnet-4-5", "messages": value}


@pytest.fixture(scope="module")
def hostile_row(module_db_url):
    database = nexus_db.connect(module_db_url)
    with database.connection_context():
        make_request(domain="=HYPERLINK(\"http://evil.example\")", model="@SUM(A1)",
                     account_id="+cmd|' /C calc'!A0", session_id="-2+3")
        deep = make_request(body=nested(900), response=nested(900), domain="deep.example")
    database.close()
    return deep


@pytest.fixture(scope="module")
def keyed(module_db_url, hostile_row, tmp_path_factory):
    env = {"DATABASE_URL": module_db_url, "DASHBOARD_API_KEY": KEY, "WEB_CONCURRENCY": "1"}
    with running_dashboard(env, str(tmp_path_factory.mktemp("keyed"))) as dashboard:
        yield dashboard


@pytest.fixture(scope="module")
def keyless(module_db_url, tmp_path_factory):
    env = {"DATABASE_URL": module_db_url, "DASHBOARD_ALLOWED_HOSTS": "dash.example, other.test"}
    env.pop("DASHBOARD_API_KEY", None)
    with running_dashboard(env, str(tmp_path_factory.mktemp("keyless"))) as dashboard:
        yield dashboard


class client(requests.Session):
    """A session against `dashboard` that keeps cookies and never follows redirects."""

    def __init__(self, dashboard, cookies=None):
        super().__init__()
        self.base = dashboard.url
        self.cookies.update(cookies or {})

    def request(self, method, path, **kwargs):
        kwargs.setdefault("allow_redirects", False)
        kwargs.setdefault("timeout", 15)
        return super().request(method, self.base + path, **kwargs)


@pytest.mark.parametrize("host, status", [
    ("localhost", 200), ("127.0.0.1", 200), ("[::1]", 200), ("dash.example", 200),
    ("other.test:8080", 200), ("evil.example", 421), ("127.0.0.1.evil.example", 421),
    ("localhost.evil.example", 421), ("", 421)])
def test_a_keyless_dashboard_answers_only_its_own_host_names(keyless, host, status):
    with client(keyless) as c:
        assert c.get("/api/requests", headers={"Host": host}).status_code == status
        assert c.get("/health", headers={"Host": host}).status_code == 200


def log_in(c):
    token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text).group(1)
    assert c.post("/login", data={"key": KEY, "csrf_token": token, "next": "/"}).status_code == 302
    return token


def test_a_session_cookie_copied_before_logout_is_refused_after_it(keyed):
    with client(keyed) as c:
        log_in(c)
        copied = c.cookies.get_dict()
        assert c.get("/api/requests").status_code == 200
        token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/logout").text).group(1)
        assert c.post("/logout", data={"csrf_token": token}).status_code == 302
    with client(keyed, copied) as thief:
        assert thief.get("/api/requests").status_code == 401


@pytest.mark.parametrize("query", [
    "/api/requests?since=0001-01-01", "/api/requests?until=9999-12-31T23:59:59",
    "/api/stats?since=0001-01-01T00:00:00%2B01:00", "/api/stats?until=9999-12-31",
    "/api/requests?before=2026-01-01T00:00:00~9223372036854775808",
    "/api/requests?before=2026-02-30T00:00:00~1", "/api/requests?before=0001-01-01T00:00:00~1",
    "/api/conversations?before=0001-01-01", "/?since=0001-01-01", "/requests?until=9999-12-31"])
def test_parameters_out_of_range_are_400s(keyed, query):
    with client(keyed) as c:
        response = c.get(query, headers={"X-Dashboard-Key": KEY})
    assert response.status_code == 400, response.text[:300]


def test_a_next_with_cr_lf_is_not_a_500(keyed):
    with client(keyed) as c:
        token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text).group(1)
        response = c.post("/login?next=/%0d%0aSet-Cookie:%20x=1",
                          data={"key": KEY, "csrf_token": token})
    assert response.status_code == 302 and "set-cookie: x=1" not in str(response.headers).lower()
    assert "\n" not in response.headers["location"]


def test_csv_cells_cannot_run_as_formulas(keyed):
    with client(keyed) as c:
        response = c.get("/api/requests?format=csv", headers={"X-Dashboard-Key": KEY})
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.text)))
    [row] = [r for r in rows if "HYPERLINK" in r["domain"]]
    assert row["domain"].startswith("'=") and row["model"] == "'@SUM(A1)"
    assert row["account_id"].startswith("'+")
    assert all(not cell.startswith(("=", "+", "@")) for r in rows for cell in r.values())
    assert any(r["cost_usd"] for r in rows)  # numbers are left as they are


def test_a_deeply_nested_stored_body_is_shown_as_text(keyed, hostile_row):
    with client(keyed) as c:
        api = c.get(f"/api/requests/{hostile_row}", headers={"X-Dashboard-Key": KEY})
        page = c.get(f"/requests/{hostile_row}", headers={"X-Dashboard-Key": KEY})
    assert api.status_code == 200 and isinstance(api.json()["request_body"], str)
    assert api.json()["request_body"].startswith('{"model"')
    assert page.status_code == 200 and "[[[[" in page.text


def test_a_database_that_is_down_is_a_503_with_the_cause(tmp_path):
    env = {"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"}
    with running_dashboard(env, str(tmp_path)) as dashboard, client(dashboard) as c:
        for path in ("/", "/requests", "/api/requests"):
            response = c.get(path)
            assert response.status_code == 503 and "unavailable" in response.text, path
        ready = c.get("/ready")
        assert ready.status_code == 503 and ready.json()["database"].startswith("unreachable")
        assert c.get("/health").status_code == 200


def test_a_database_that_is_not_migrated_is_a_503_that_says_so(tmp_path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/empty.db"}
    with running_dashboard(env, str(tmp_path)) as dashboard, client(dashboard) as c:
        response = c.get("/api/requests")
        assert response.status_code == 503 and "nexus migrate" in response.json()["error"]["message"]
        ready = c.get("/ready")
        assert ready.status_code == 503 and ready.json()["database"].startswith("not migrated")


# -- fuzzing the query parameters of the real server -------------------------------------
from urllib.parse import urlencode  # noqa: E402

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

ROUTES = ("/", "/requests", "/api/requests", "/api/stats", "/conversations", "/api/conversations",
          "/token-usage", "/api/token-usage", "/requests/export.csv", "/usage", "/limits",
          "/search", "/login")
PARAMS = ("since", "until", "before", "after", "limit", "domain", "model", "status", "type", "q",
          "account_id", "window_hours", "format", "next")
DATES = st.builds(lambda y, m, d, rest: f"{y:04d}-{m:02d}-{d:02d}{rest}",
                  st.sampled_from([1, 2, 1969, 1970, 2026, 2199, 2200, 2201, 9999]),
                  st.integers(0, 13), st.integers(0, 32),
                  st.sampled_from(["", "T00:00:00", "T23:59:59.999999+14:00", "Z", "T25:00",
                                   "T00:00:00-23:59", "~1", "T00:00:00~9223372036854775807",
                                   "T00:00:00~9223372036854775808", "T00:00:00~99999999999999999999"]))
VALUES = st.one_of(DATES, st.text(max_size=30), st.integers(-2**70, 2**70).map(str),
                   st.sampled_from(["99999d", "0h", "1e9", "NaN", "\r\nSet-Cookie: x=1", "/\\evil",
                                    "//evil.example", "csv", "json", "\u202e", "%00", "4xx"]))


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(route=st.sampled_from(ROUTES),
       dates=st.dictionaries(st.sampled_from(("since", "until", "before")), DATES, min_size=1),
       args=st.dictionaries(st.sampled_from(PARAMS), VALUES, max_size=3))
def test_no_query_makes_the_real_dashboard_fail(keyed, route, dates, args):
    args = {**args, **dates}
    with client(keyed) as c:
        response = c.get(f"{route}?{urlencode(args)}", headers={"X-Dashboard-Key": KEY})
    assert response.status_code in (200, 204, 302, 400, 404), (route, args, response.text[:300])
    assert "\n" not in response.headers.get("location", "")


# Last: it leaves 127.0.0.1 throttled on the keyed dashboard.
def test_wrong_dashboard_key_headers_are_throttled(keyed):
    with client(keyed) as c:
        statuses = [c.get("/api/requests", headers={"X-Dashboard-Key": f"wrong-{n}"}).status_code
                    for n in range(12)]
        assert statuses[:10] == [401] * 10 and statuses[10:] == [429, 429]
        assert c.get("/api/requests", headers={"X-Dashboard-Key": KEY}).status_code == 429
