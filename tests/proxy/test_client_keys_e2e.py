"""Auth through the real proxy (gunicorn, gevent) with the official SDK and the fake upstream.

Credential mode swaps the client's key for the domain's; client keys are required
when ENABLE_CLIENT_AUTH is on; limits answer 429; and known secrets sent through
every path appear nowhere in the database or the proxy's logs.
"""
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import anthropic
import pytest

from common import db as nexus_db
from common import keys
from common.models import ApiRequest, utcnow
from tests.proxy.test_oauth import OLD_REFRESH, _TokenServer, write_oauth
from tests.proxy_server import running_proxy

UPSTREAM_KEY = "sk-ant-api03-E2E-UPSTREAM-SECRET-aaaa"
OAUTH_ACCESS = "sk-ant-oat01-E2E-OAUTH-SECRET-bbbb"
OAUTH_REFRESH = "sk-ant-ort01-E2E-REFRESH-SECRET-cccc"
FILE_CLIENT_KEY = "cnp_live_E2E-FILE-CLIENT-SECRET-dddd"
USER_KEY = "sk-ant-api03-E2E-USERS-OWN-SECRET-eeee"
USER_OAUTH = "sk-ant-oat01-E2E-USERS-OAUTH-SECRET-ffff"
WRONG_KEY = "cnp_live_E2E-WRONG-SECRET-gggg"
MODEL = "claude-sonnet-4-6"


def write_credentials(directory):
    os.makedirs(directory, exist_ok=True)
    files = {
        "keyed.example": {"type": "api_key", "accountId": "acc_keyed", "api_key": UPSTREAM_KEY,
                          "client_api_key": FILE_CLIENT_KEY},
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


def client(proxy, key, host, **kwargs):
    return anthropic.Anthropic(base_url=proxy.url, api_key=key, max_retries=0, timeout=30,
                               default_headers={"Host": host}, **kwargs)


def ask(c, text="Hello there", **kwargs):
    return c.messages.create(model=MODEL, max_tokens=50,
                             messages=[{"role": "user", "content": text}], **kwargs)


def wait_clear_of_minute_boundary(seconds_needed=8):
    """Sleep past the next UTC minute if it would start within the next few seconds."""
    second = utcnow().second
    if second > 60 - seconds_needed:
        time.sleep(61 - second)


def wait_for_rows(db_url, count, timeout=15):
    db = nexus_db.connect(db_url)
    deadline = time.monotonic() + timeout
    with db.connection_context():
        while ApiRequest.select().count() < count and time.monotonic() < deadline:
            time.sleep(0.1)
        rows = list(ApiRequest.select().order_by(ApiRequest.id).dicts())
    return db, rows


@pytest.fixture
def home(tmp_path):
    write_credentials(tmp_path / "credentials")
    return tmp_path


def proxy_env(upstream, db_url, home, **extra):
    return {"CLAUDE_API_BASE_URL": upstream.url, "DATABASE_URL": db_url,
            "CREDENTIALS_DIR": str(home / "credentials"), **extra}


def test_credential_mode_swaps_keys_and_passthrough_keeps_them(upstream, db_url, home):
    with running_proxy(proxy_env(upstream, db_url, home), cwd=str(home)) as proxy:
        upstream.clear()
        ask(client(proxy, USER_KEY, "keyed.example"))
        ask(client(proxy, USER_KEY, "oauth.example"), extra_headers={"anthropic-beta": "tools-2024-04-04"})
        ask(client(proxy, USER_KEY, "nofile.example"))
        keyed, oauth, passthrough = upstream.requests()[-3:]
    assert keyed.header("x-api-key") == UPSTREAM_KEY and keyed.header("authorization") is None
    assert oauth.header("authorization") == f"Bearer {OAUTH_ACCESS}" and oauth.header("x-api-key") is None
    assert oauth.header("anthropic-beta") == "tools-2024-04-04,oauth-2025-04-20"
    # passthrough leaves the key as it came: recent SDKs send api_key as a bearer
    # token, older ones (nixpkgs' 0.75) as x-api-key
    sent = passthrough.header("authorization") or passthrough.header("x-api-key")
    assert sent in (f"Bearer {USER_KEY}", USER_KEY)
    _, rows = wait_for_rows(db_url, 3)
    assert [r["account_id"] for r in rows] == ["acc_keyed", "acc_oauth", None]


def test_claude_nexus_file_names_with_a_port_serve_localhost_and_ip_hosts(upstream, db_url, home):
    """A user moving from Claude Nexus keeps `localhost:3000.credentials.json`: for
    localhost and IP hosts the name with the port wins, then the one without."""
    port = 3000
    directory = home / "credentials"
    named = {f"localhost:{port}": "acc_localhost_port", f"127.0.0.1:{port}": "acc_ip_port",
             "localhost": "acc_localhost", f"team.example:{port}": "acc_never"}
    for name, account in named.items():
        (directory / f"{name}.credentials.json").write_text(json.dumps(
            {"type": "api_key", "accountId": account, "api_key": UPSTREAM_KEY}))
    with running_proxy(proxy_env(upstream, db_url, home), cwd=str(home)) as proxy:
        upstream.clear()
        for host in (f"LocalHost:{port}", f"127.0.0.1:{port}", "localhost:4000",
                     f"team.example:{port}"):
            ask(client(proxy, USER_KEY, host))
        sent = upstream.requests()
    assert [r.header("x-api-key") for r in sent[:3]] == [UPSTREAM_KEY] * 3
    # team.example has no credential file: the client's own key passes through (as a
    # bearer token from recent SDKs, as x-api-key from nixpkgs' 0.75)
    last = sent[3]
    assert (last.header("authorization") or last.header("x-api-key")) in (f"Bearer {USER_KEY}", USER_KEY)
    _, rows = wait_for_rows(db_url, 4)
    # other hosts drop the port, as in Claude Nexus: team.example has no file of its own
    assert [r["account_id"] for r in rows] == ["acc_localhost_port", "acc_ip_port",
                                              "acc_localhost", None]
    # the recorded domain is the host without its port, lower-cased (docs/architecture.md)
    assert [r["domain"] for r in rows] == ["localhost", "127.0.0.1", "localhost", "team.example"]


def test_client_keys_are_required_then_swapped(upstream, db_url, home):
    db = nexus_db.connect(db_url)
    with db.connection_context():
        row, db_key = keys.create(name="e2e", domain="keyed.example")
    env = proxy_env(upstream, db_url, home, ENABLE_CLIENT_AUTH="true")
    with running_proxy(env, cwd=str(home)) as proxy:
        upstream.clear()
        with pytest.raises(anthropic.AuthenticationError) as info:
            ask(client(proxy, WRONG_KEY, "keyed.example"))
        assert info.value.body["error"]["type"] == "authentication_error"
        with pytest.raises(anthropic.AuthenticationError):
            ask(client(proxy, FILE_CLIENT_KEY, "nofile.example"))
        with pytest.raises(anthropic.PermissionDeniedError):
            ask(client(proxy, db_key, "oauth.example"))
        assert upstream.requests() == []  # refused requests never reach the upstream

        assert ask(client(proxy, FILE_CLIENT_KEY, "keyed.example")).content
        assert ask(client(proxy, db_key, "keyed.example")).content
        sent = upstream.requests()
    assert [r.header("x-api-key") for r in sent] == [UPSTREAM_KEY, UPSTREAM_KEY]
    _, rows = wait_for_rows(db_url, 5)
    assert [r["response_status"] for r in rows] == [401, 401, 403, 200, 200]
    assert rows[-1]["client_key_id"] == row.key_id and rows[-2]["client_key_id"].startswith("file:")


def test_rate_limited_key_gets_429_in_anthropics_shape(upstream, db_url, home):
    db = nexus_db.connect(db_url)
    with db.connection_context():
        _, secret = keys.create(requests_per_minute=2)
    env = proxy_env(upstream, db_url, home, ENABLE_CLIENT_AUTH="true")
    with running_proxy(env, cwd=str(home), workers=2) as proxy:
        c = client(proxy, secret, "keyed.example")
        wait_clear_of_minute_boundary()
        outcomes = []
        for _ in range(4):
            try:
                ask(c)
                outcomes.append("ok")
            except anthropic.RateLimitError as exc:
                assert exc.body["error"]["type"] == "rate_limit_error"
                assert 1 <= int(exc.response.headers["retry-after"]) <= 60
                outcomes.append(429)
    assert outcomes == ["ok", "ok", 429, 429]


SECRETS = (UPSTREAM_KEY, OAUTH_ACCESS, OAUTH_REFRESH, FILE_CLIENT_KEY, USER_KEY, USER_OAUTH, WRONG_KEY)


def test_secrets_reach_neither_the_database_nor_the_logs(upstream, db_url, home):
    db = nexus_db.connect(db_url)
    with db.connection_context():
        _, db_key = keys.create(name="leak-test")
    secrets = SECRETS + (db_key,)
    for auth_on in ("false", "true"):
        env = proxy_env(upstream, db_url, home, ENABLE_CLIENT_AUTH=auth_on, NEXUS_LOG_LEVEL="debug")
        with running_proxy(env, cwd=str(home)) as proxy:
            for key in secrets:
                for host in ("keyed.example", "oauth.example", "nofile.example"):
                    c = client(proxy, key, host)  # building a client is slow: one per pair
                    for stream in (False, True):
                        try:
                            if stream:
                                with c.messages.stream(model=MODEL, max_tokens=20, messages=[
                                        {"role": "user", "content": f"hi {host}"}]) as s:
                                    s.get_final_message()
                            else:
                                ask(c, f"hi {host}")
                        except anthropic.APIStatusError:
                            pass
            bearer = anthropic.Anthropic(base_url=proxy.url, auth_token=USER_OAUTH, max_retries=0)
            try:
                ask(bearer)
            except anthropic.AuthenticationError:
                assert auth_on == "true"
            logs = "\n".join(proxy.log_lines())
        for secret in secrets:
            assert secret not in logs, f"a secret reached the log (ENABLE_CLIENT_AUTH={auth_on})"
    expected = 2 * (len(secrets) * 3 * 2 + 1)
    db, _ = wait_for_rows(db_url, expected, timeout=30)
    with db.connection_context():
        dump = []
        for table in db.get_tables():
            cursor = db.execute_sql(f'SELECT * FROM "{table}"')
            dump.extend(repr(value) for row in cursor.fetchall() for value in row)
        assert ApiRequest.select().count() == expected
    text = "\n".join(dump)
    leaked = [s[:16] for s in secrets if s in text]
    assert not leaked, f"secrets in the database: {leaked}"


def test_workers_refresh_an_expired_oauth_token_once(upstream, db_url, home):
    write_oauth(home / "credentials", domain="expired.example", expires_in_s=-5)
    server = _TokenServer()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    token_url = f"http://127.0.0.1:{server.server_address[1]}/v1/oauth/token"
    env = proxy_env(upstream, db_url, home, NEXUS_OAUTH_TOKEN_URL=token_url)
    try:
        with running_proxy(env, cwd=str(home), workers=2) as proxy:
            upstream.clear()
            # Closed here: eight threads leave idle pooled connections behind.
            with client(proxy, USER_KEY, "expired.example") as c, ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(lambda _: ask(c), range(8)))
            sent = upstream.requests()
    finally:
        server.shutdown()
        server.server_close()
    assert len(answers) == 8 and server.calls == [OLD_REFRESH]
    assert {r.header("authorization") for r in sent} == {"Bearer access-1"}
