"""Known secrets sent through every path appear nowhere: database, spool, logs, dashboard.

Every secret carries a marker in its middle; a leak of any part of it long enough
to hold the marker (a prefix in a log line, say) is caught too. The secrets: the
upstream API key and the OAuth access and refresh tokens of credential files, the
client key of a credential file and one from `nexus keys create`, a wrong client
key, the user's own API key and OAuth bearer in passthrough, the Slack webhook
URL, a cookie and a Proxy-Authorization value, and the dashboard's login key.
The traffic: credential mode and passthrough, with and without ENABLE_CLIENT_AUTH,
streamed and not, refused, failed upstream (500, reset mid-stream) and token counts.
Then every table is dumped (SQLite: the raw file and its WAL too), and every
dashboard page and API answer for every recorded request and conversation is read.
tests/proxy/test_client_keys_e2e.py::test_secrets_reach_neither_the_database_nor_the_logs
covers the proxy side with the official SDK; this adds the dashboard and the markers.
"""
import glob
import http.client
import json
import os
import time

import pytest
import requests

from common import db as nexus_db
from common import keys
from common.recording import compression
from tests.proxy.conftest import free_port
from tests.proxy.rows import fetch_rows, row_for
from tests.proxy_server import running_proxy

from tests.dashboard.server import running_dashboard

from .support import message_body, note, wait_until


def secret(prefix, marker):
    return f"{prefix}LEAK{marker}{os.urandom(12).hex()}"


UPSTREAM_KEY = secret("sk-ant-api03-", "UPKEY")
OAUTH_ACCESS = secret("sk-ant-oat01-", "OAUTHACCESS")
OAUTH_REFRESH = secret("sk-ant-ort01-", "OAUTHREFRESH")
FILE_CLIENT_KEY = secret("cnp_live_", "FILECLIENT")
USER_KEY = secret("sk-ant-api03-", "USERKEY")
USER_BEARER = secret("sk-ant-oat01-", "USERBEARER")
WRONG_KEY = secret("cnp_live_", "WRONGKEY")
COOKIE = secret("session=", "COOKIE")
PROXY_AUTH = secret("Basic ", "PROXYAUTH")
DASHBOARD_KEY = secret("dash-", "DASHKEY")
# Credential-looking headers outside the list of known names (redacted by their words).
OTHER_HEADERS = {"api-key": secret("", "APIKEYHDR"), "x-auth-token": secret("", "AUTHTOKENHDR"),
                 "anthropic-oauth-token": secret("", "OAUTHTOKENHDR")}
WEBHOOK = f"http://127.0.0.1:{free_port()}/services/T0/B0/{secret('', 'WEBHOOK')}"
STATIC = [UPSTREAM_KEY, OAUTH_ACCESS, OAUTH_REFRESH, FILE_CLIENT_KEY, USER_KEY, USER_BEARER,
          WRONG_KEY, COOKIE, PROXY_AUTH, DASHBOARD_KEY, WEBHOOK, *OTHER_HEADERS.values()]


def markers(secrets):
    """What to search for: each whole secret, and its marker (LEAK + name)."""
    found = set(secrets)
    for value in secrets:
        start = value.find("LEAK")
        if start >= 0:
            found.add(value[start:start + 4 + len(value[start + 4:]) - 24])
    return found


def write_credentials(directory):
    os.makedirs(directory, exist_ok=True)
    files = {
        "keyed.example": {"type": "api_key", "accountId": "acc_keyed", "api_key": UPSTREAM_KEY,
                          "client_api_key": FILE_CLIENT_KEY, "slack": {"webhook_url": WEBHOOK}},
        "oauth.example": {"type": "oauth", "accountId": "acc_oauth",
                          "oauth": {"accessToken": OAUTH_ACCESS, "refreshToken": OAUTH_REFRESH,
                                    "expiresAt": int((time.time() + 86400) * 1000),
                                    "scopes": ["user:inference"], "isMax": True}},
    }
    for domain, content in files.items():
        path = os.path.join(directory, f"{domain}.credentials.json")
        with open(path, "w") as f:
            json.dump(content, f)
        os.chmod(path, 0o600)


def send(port, host, auth, stream=False, path="/v1/messages", scenario=None):
    """One request with every kind of secret header; the x-nexus-request-id or None."""
    headers = {"Host": host, "content-type": "application/json", "Cookie": COOKIE,
               "Proxy-Authorization": PROXY_AUTH, "anthropic-version": "2023-06-01",
               **OTHER_HEADERS, **auth}
    if scenario:
        headers["x-fake-scenario"] = scenario
    body = message_body(stream=stream, text=f"hello {host}",
                        metadata={"user_id": "user_abc_account_acc-1_session_s-1"})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        conn.request("POST", path, body, headers)
        try:
            response = conn.getresponse()
        except ConnectionError:
            return None  # a reset that beat the first byte (see test_upstream_faults)
        except TimeoutError:
            raise AssertionError(f"no answer in 15 s: {host} {sorted(auth)} stream={stream} "
                                 f"{path} {scenario}") from None
        try:
            response.read()
        except http.client.IncompleteRead:
            pass  # the reset-mid-stream case
        return response.getheader("x-nexus-request-id")
    finally:
        conn.close()


def traffic(port, secrets):
    """Every path a secret can take through the proxy; the request ids answered."""
    ids = []
    auths = [{"x-api-key": s} for s in secrets] + \
            [{"authorization": f"Bearer {s}"} for s in (USER_BEARER, USER_KEY, FILE_CLIENT_KEY)]
    for auth in auths:
        for host in ("keyed.example", "oauth.example", "nofile.example"):
            for stream in (False, True):
                ids.append(send(port, host, auth, stream))
    for scenario in ("error-500", "midstream-reset", "error-401"):
        ids.append(send(port, "keyed.example", {"x-api-key": FILE_CLIENT_KEY}, True, scenario=scenario))
    ids.append(send(port, "keyed.example", {"x-api-key": FILE_CLIENT_KEY},
                    path="/v1/messages/count_tokens"))
    return [i for i in ids if i]


def _shown(value):
    """A stored value as text; compressed blobs (bodies, pieces, headers) unpacked, so that
    a secret inside one is found too."""
    if isinstance(value, (bytes, memoryview)):
        try:
            value = compression.unpack(value)
        except Exception:  # not one of our blobs
            value = bytes(value)
        return value.decode("utf-8", "replace")
    return str(value)


def dump_database(db_url, workdir):
    """Every value of every table as text (blobs unpacked), plus the raw SQLite file and WAL."""
    database = nexus_db.open_database(db_url)
    parts = []
    try:
        for table in database.get_tables():
            cursor = database.execute_sql(f'SELECT * FROM "{table}"')
            parts.extend(_shown(value) for row in cursor.fetchall() for value in row)
    finally:
        database.close()
    if db_url.startswith("sqlite:///"):
        for path in glob.glob(db_url[len("sqlite:///"):] + "*"):
            with open(path, "rb") as f:
                parts.append(f.read().decode("latin-1"))
    for path in glob.glob(os.path.join(workdir, "**", "*.jsonl"), recursive=True):
        with open(path, encoding="utf-8", errors="replace") as f:
            parts.append(f.read())  # the spool, the rejected records included
    return "\n".join(parts)


def crawl(dashboard, rows):
    """Every dashboard page and API answer, for every recorded request and conversation."""
    session = requests.Session()
    pages = {}

    def get(path, **kwargs):
        response = session.get(dashboard.url + path, timeout=30, **kwargs)
        assert response.status_code < 500, (path, response.status_code)
        pages[path] = response.text + "\n" + json.dumps(dict(response.headers))
        return response

    login = get("/login")
    token = login.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    answer = session.post(dashboard.url + "/login", timeout=30, allow_redirects=False,
                          data={"key": DASHBOARD_KEY, "csrf_token": token, "next": "/"})
    assert answer.status_code == 302
    pages["POST /login"] = answer.text + json.dumps(dict(answer.headers))
    conversations = sorted({r["conversation_id"] for r in rows if r["conversation_id"]})
    accounts = sorted({r["account_id"] for r in rows if r["account_id"]})
    paths = ["/", "/requests", "/requests?limit=500", "/requests/live", "/conversations",
             "/token-usage", "/requests/export.csv", "/requests/export.json",
             "/api/requests?limit=500", "/api/requests?limit=500&format=csv",
             "/api/requests?q=LEAK", "/api/conversations?limit=500", "/api/stats",
             "/api/token-usage", "/health"]
    paths += [f"/requests/{r['request_id']}" for r in rows]
    paths += [f"/api/requests/{r['request_id']}" for r in rows]
    paths += [f"/conversations/{c}" for c in conversations]
    paths += [f"/api/conversations/{c}" for c in conversations]
    paths += [f"/token-usage?account_id={a}" for a in accounts]
    paths += [f"/api/token-usage?account_id={a}" for a in accounts]
    for path in paths:
        get(path)
    header_only = requests.get(dashboard.url + "/api/requests?limit=5", timeout=30,
                               headers={"X-Dashboard-Key": DASHBOARD_KEY})
    assert header_only.status_code == 200
    pages["header auth"] = header_only.text
    return pages


def leaks(text, needles):
    return sorted(n[:24] for n in needles if n in text)


@pytest.mark.slow
def test_no_secret_reaches_the_database_the_logs_or_the_dashboard(upstream, db_url, tmp_path):
    write_credentials(tmp_path / "credentials")
    database = nexus_db.connect(db_url)
    with database.connection_context():
        _, db_client_key = keys.create(name="leak-test", domain="keyed.example")
    secrets = STATIC + [db_client_key]
    needles = markers(secrets)
    sent = []
    proxy_logs = []
    for client_auth in ("false", "true"):
        env = {"CLAUDE_API_BASE_URL": upstream.url, "DATABASE_URL": db_url,
               "CREDENTIALS_DIR": str(tmp_path / "credentials"), "ENABLE_CLIENT_AUTH": client_auth,
               "NEXUS_LOG_LEVEL": "debug", "SLACK_WEBHOOK_URL": WEBHOOK,
               "NEXUS_SPOOL_DIR": str(tmp_path / "spool")}
        with running_proxy(env, cwd=str(tmp_path)) as proxy:
            sent += traffic(proxy.port, [USER_KEY, FILE_CLIENT_KEY, db_client_key, WRONG_KEY])
            time.sleep(1)  # the Slack notifier's failed posts get logged
            proxy_logs += proxy.log_lines()
    rows = wait_until(lambda: len(found := fetch_rows(db_url)) >= len(sent) and found, 30) or []
    assert set(sent) <= {r["request_id"] for r in rows}
    assert len({r["response_status"] for r in rows}) >= 4  # refusals, errors and successes

    assert leaks("\n".join(proxy_logs), needles) == [], "a secret reached the proxy's log"
    assert leaks(dump_database(db_url, str(tmp_path)), needles) == [], "a secret reached the database"

    env = {"DATABASE_URL": db_url, "DASHBOARD_API_KEY": DASHBOARD_KEY, "WEB_CONCURRENCY": "1"}
    with running_dashboard(env, str(tmp_path)) as dashboard:
        pages = crawl(dashboard, rows)
    dashboard_log = dashboard.log()
    leaked = {path: leaks(text, needles) for path, text in pages.items() if leaks(text, needles)}
    assert leaked == {}, f"secrets on dashboard pages: {leaked}"
    assert leaks(dashboard_log, needles) == [], "a secret reached the dashboard's log"
    note("secrets", db=db_url.split(":")[0], secrets=len(secrets), requests=len(sent),
         rows=len(rows), pages_read=len(pages), proxy_log_lines=len(proxy_logs),
         dashboard_log_lines=len(dashboard_log.splitlines()))


def test_debug_logs_carry_no_bodies_and_new_sqlite_files_are_owner_only(upstream, tmp_path):
    """NEXUS_LOG_LEVEL=debug must not log SQL parameters (bodies, headers); the SQLite
    database and its WAL are created 0600, as the spool files are."""
    url = f"sqlite:///{tmp_path}/fresh/nexus.db"
    marker = secret("", "DEBUGBODY")
    env = {"CLAUDE_API_BASE_URL": upstream.url, "DATABASE_URL": url, "NEXUS_LOG_LEVEL": "debug"}
    with running_proxy(env, cwd=str(tmp_path)) as proxy:
        request_id = send(proxy.port, "nofile.example", {"x-api-key": USER_KEY, "x-note": marker})
        assert request_id and row_for(url, request_id) is not None
        modes = {os.path.basename(p): oct(os.stat(p).st_mode & 0o777)
                 for p in glob.glob(f"{tmp_path}/fresh/nexus.db*")}
        log = "\n".join(proxy.log_lines())
        events = proxy.log_events()
    assert any(e.get("level") == "debug" for e in events)  # debug logging was on
    assert not [e for e in events if e.get("logger") == "peewee"]  # SQL and its parameters
    assert marker not in log
    assert {"nexus.db", "nexus.db-wal"} <= set(modes) and set(modes.values()) == {"0o600"}, modes
