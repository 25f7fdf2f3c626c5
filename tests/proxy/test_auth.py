"""The three auth modes, with real credential files and real databases."""
import hmac
import json
import os
import time

import pytest

from common import config as nexus_config
from common import db as nexus_db
from common import keys
from common.redact import hash_secret
from proxy import auth
from proxy.auth import Authenticator
from proxy.refusals import Refusal

API_KEY = "sk-ant-api03-SECRETAPIKEY-0123456789"
ACCESS = "sk-ant-oat01-SECRETACCESS-0123456789"
CLIENT = "cnp_live_SECRETCLIENT0123456789"
USER_KEY = "sk-ant-api03-USERSOWNKEY-0123456789"


def make_auth(tmp_path, **env):
    config = nexus_config.load({"CREDENTIALS_DIR": str(tmp_path), **env})
    return Authenticator(config)


def write(directory, domain, data):
    path = os.path.join(directory, f"{domain}.credentials.json")
    with open(path, "w") as f:
        json.dump(data, f)
    return path


def api_key_file(**extra):
    return {"type": "api_key", "accountId": "acc_1", "api_key": API_KEY, **extra}


def oauth_file(**extra):
    return {"type": "oauth", "accountId": "acc_2",
            "oauth": {"accessToken": ACCESS, "refreshToken": "r",
                      "expiresAt": int((time.time() + 3600) * 1000)}, **extra}


@pytest.fixture
def fast_reload(monkeypatch):
    monkeypatch.setattr(auth, "STAT_TTL_S", 0.0)
    monkeypatch.setattr(auth, "KEY_TTL_S", 0.0)


# -- passthrough ---------------------------------------------------------------------

def test_passthrough_forwards_the_clients_own_credential(tmp_path):
    a = make_auth(tmp_path)
    grant = a.authorize("proxy.local", {"x-api-key": USER_KEY})
    assert grant.set_headers == () and grant.drop_headers == frozenset()
    assert grant.auth_hash == hash_secret(USER_KEY) and grant.client_key_id is None
    bearer = a.authorize("proxy.local", {"authorization": f"Bearer {ACCESS}"})
    assert bearer.set_headers == () and bearer.auth_hash == hash_secret(ACCESS)
    assert a.authorize("proxy.local", {}).auth_hash is None


def test_passthrough_costs_microseconds_and_one_stat_per_second(tmp_path, monkeypatch):
    a = make_auth(tmp_path)
    stats = []
    real_stat = os.stat
    monkeypatch.setattr(os, "stat", lambda *args, **kw: stats.append(args) or real_stat(*args, **kw))
    headers = {"x-api-key": USER_KEY}
    a.authorize("proxy.local", headers)
    start = time.perf_counter()
    for _ in range(5000):
        a.authorize("proxy.local", headers)
    per_call_us = (time.perf_counter() - start) / 5000 * 1e6
    assert per_call_us < 100, per_call_us
    assert len(stats) <= 2


@pytest.mark.parametrize("host", ["..", "../../etc/passwd", "a/b", "a\\b", "a\x00b", "a\r\nb",
                                  "x" * 300, ""])
def test_a_host_that_could_escape_the_directory_gets_400(tmp_path, host):
    with pytest.raises(Refusal) as info:
        make_auth(tmp_path).authorize(host, {"x-api-key": USER_KEY})
    assert (info.value.status, info.value.error_type) == (400, "invalid_request_error")


# -- credential mode -----------------------------------------------------------------

def test_api_key_file_replaces_the_clients_auth(tmp_path):
    write(tmp_path, "team.example", api_key_file())
    grant = make_auth(tmp_path).authorize("Team.Example", {"authorization": f"Bearer {USER_KEY}"})
    assert grant.set_headers == (("x-api-key", API_KEY),)
    assert grant.drop_headers == {"authorization"}
    assert grant.auth_hash == hash_secret(API_KEY) and grant.account_id == "acc_1"


@pytest.mark.parametrize("client_beta, sent_beta", [
    (None, "oauth-2025-04-20"),
    ("tools-2024-04-04, prompt-caching-2024-07-31,tools-2024-04-04",
     "tools-2024-04-04,prompt-caching-2024-07-31,oauth-2025-04-20"),
    ("oauth-2025-04-20,x", "oauth-2025-04-20,x"),
])
def test_oauth_file_sends_a_bearer_and_merges_the_beta_flag(tmp_path, client_beta, sent_beta):
    write(tmp_path, "team.example", oauth_file())
    headers = {"x-api-key": USER_KEY}
    if client_beta:
        headers["anthropic-beta"] = client_beta
    grant = make_auth(tmp_path).authorize("team.example", headers)
    assert dict(grant.set_headers) == {"authorization": f"Bearer {ACCESS}", "anthropic-beta": sent_beta}
    assert grant.drop_headers == {"x-api-key"} and grant.account_id == "acc_2"


def test_files_added_changed_and_removed_are_seen(tmp_path, fast_reload):
    a = make_auth(tmp_path)
    assert a.authorize("team.example", {"x-api-key": USER_KEY}).set_headers == ()
    path = write(tmp_path, "team.example", api_key_file())
    assert a.authorize("team.example", {}).set_headers == (("x-api-key", API_KEY),)
    write(tmp_path, "team.example", api_key_file(api_key="sk-ant-api03-ROTATED-key"))
    assert a.authorize("team.example", {}).set_headers == (("x-api-key", "sk-ant-api03-ROTATED-key"),)
    os.unlink(path)
    assert a.authorize("team.example", {}).set_headers == ()


def test_a_broken_file_keeps_the_last_good_version_else_500(tmp_path, fast_reload):
    a = make_auth(tmp_path)
    path = write(tmp_path, "team.example", api_key_file())
    assert a.authorize("team.example", {}).set_headers == (("x-api-key", API_KEY),)
    with open(path, "w") as f:
        f.write('{"type": "api_key", "api_')  # a half-saved edit
    assert a.authorize("team.example", {}).set_headers == (("x-api-key", API_KEY),)
    with pytest.raises(Refusal) as info:
        make_auth(tmp_path).authorize("team.example", {})
    assert info.value.status == 500 and API_KEY not in info.value.message


def test_grant_repr_shows_no_secret(tmp_path):
    write(tmp_path, "team.example", oauth_file())
    assert ACCESS not in repr(make_auth(tmp_path).authorize("team.example", {}))


# -- Slack routing -------------------------------------------------------------------

def test_domain_slack_block_overrides_the_global_webhook(tmp_path):
    write(tmp_path, "a.example", api_key_file(slack={"webhook_url": "https://hooks.example/a",
                                                     "channel": "#a", "enabled": True}))
    write(tmp_path, "b.example", api_key_file(slack={"webhook_url": "https://hooks.example/b",
                                                     "enabled": False}))
    write(tmp_path, "c.example", api_key_file())
    a = make_auth(tmp_path, SLACK_WEBHOOK_URL="https://hooks.example/global")
    first = a.authorize("a.example", {})
    assert first.slack_webhook == "https://hooks.example/a" and ("channel", "#a") in first.slack_options
    assert a.authorize("b.example", {}).slack_webhook is None
    assert a.authorize("c.example", {}).slack_webhook == "https://hooks.example/global"
    assert a.authorize("nofile.example", {}).slack_webhook == "https://hooks.example/global"


# -- client keys ---------------------------------------------------------------------

def test_client_auth_refuses_hosts_without_a_credential_file(tmp_path):
    with pytest.raises(Refusal) as info:
        make_auth(tmp_path, ENABLE_CLIENT_AUTH="true").authorize("nofile.example", {"x-api-key": CLIENT})
    assert (info.value.status, info.value.error_type) == (401, "authentication_error")


def test_the_files_client_key_is_checked_in_constant_time_and_swapped(tmp_path, database, monkeypatch):
    write(tmp_path, "team.example", api_key_file(client_api_key=CLIENT))
    a = make_auth(tmp_path, ENABLE_CLIENT_AUTH="true")
    calls = []
    real = hmac.compare_digest
    monkeypatch.setattr(auth.hmac, "compare_digest", lambda x, y: calls.append(1) or real(x, y))
    for headers in ({"x-api-key": CLIENT}, {"authorization": f"Bearer {CLIENT}"}):
        grant = a.authorize("team.example", headers)
        assert grant.set_headers == (("x-api-key", API_KEY),) and grant.drop_headers == {"authorization"}
        assert grant.client_key_id.startswith("file:") and CLIENT not in grant.client_key_id
    assert calls
    for headers in ({}, {"x-api-key": CLIENT + "x"}, {"authorization": "Basic abc"}):
        with pytest.raises(Refusal) as info:
            a.authorize("team.example", headers)
        assert info.value.status == 401
        assert ("www-authenticate", 'Bearer realm="claude-nexus"') in info.value.headers


def test_keys_from_nexus_keys_create_are_accepted_scoped_and_revocable(tmp_path, database, fast_reload):
    write(tmp_path, "team.example", oauth_file())
    write(tmp_path, "other.example", api_key_file())
    a = make_auth(tmp_path, ENABLE_CLIENT_AUTH="true")
    anywhere, any_secret = keys.create(name="any")
    scoped, scoped_secret = keys.create(name="scoped", domain="team.example")

    grant = a.authorize("team.example", {"x-api-key": any_secret})
    assert grant.client_key_id == anywhere.key_id
    assert dict(grant.set_headers)["authorization"] == f"Bearer {ACCESS}"
    assert a.authorize("other.example", {"authorization": f"Bearer {any_secret}"}).client_key_id == anywhere.key_id
    assert a.authorize("team.example", {"x-api-key": scoped_secret}).client_key_id == scoped.key_id
    with pytest.raises(Refusal) as info:
        a.authorize("other.example", {"x-api-key": scoped_secret})
    assert (info.value.status, info.value.error_type) == (403, "permission_error")

    keys.revoke(anywhere.key_id)
    with pytest.raises(Refusal) as info:
        a.authorize("team.example", {"x-api-key": any_secret})
    assert info.value.status == 401


def test_revocation_is_honoured_within_the_cache_lifetime(tmp_path, database, monkeypatch):
    monkeypatch.setattr(auth, "KEY_TTL_S", 0.3)
    write(tmp_path, "team.example", api_key_file())
    a = make_auth(tmp_path, ENABLE_CLIENT_AUTH="true")
    row, secret = keys.create()
    a.authorize("team.example", {"x-api-key": secret})
    keys.revoke(row.key_id)
    time.sleep(0.35)
    with pytest.raises(Refusal):
        a.authorize("team.example", {"x-api-key": secret})


def test_a_known_key_survives_a_database_outage(tmp_path, database, monkeypatch):
    monkeypatch.setattr(auth, "KEY_TTL_S", 0.0)
    write(tmp_path, "team.example", api_key_file())
    a = make_auth(tmp_path, ENABLE_CLIENT_AUTH="true")
    row, secret = keys.create()
    _, unknown = keys.generate()
    a.authorize("team.example", {"x-api-key": secret})
    database.close()
    nexus_db.connect("postgresql://postgres@127.0.0.1:1/nothing_listens_here")
    assert a.authorize("team.example", {"x-api-key": secret}).client_key_id == row.key_id
    with pytest.raises(Refusal) as info:
        a.authorize("team.example", {"x-api-key": unknown})
    assert info.value.status == 503
