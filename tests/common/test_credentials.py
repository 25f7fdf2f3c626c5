"""Credential files: Claude Nexus format, safe paths, atomic 0600 writes, the check command."""
import argparse
import json
import os
import stat
import time

import pytest

from common import config as nexus_config
from common import credentials
from common.models import utcnow

API_KEY = "sk-ant-api03-SECRETAPIKEY-0123456789"
ACCESS = "sk-ant-oat01-SECRETACCESS-0123456789"
REFRESH = "sk-ant-ort01-SECRETREFRESH-0123456789"
CLIENT = "cnp_live_SECRETCLIENT0123456789"


def write(directory, domain, data, mode=0o600):
    path = os.path.join(directory, domain + credentials.SUFFIX)
    with open(path, "w") as f:
        json.dump(data, f)
    os.chmod(path, mode)
    return path


def oauth_file(expires_in_s=3600):
    return {"type": "oauth", "accountId": "acc_2",
            "oauth": {"accessToken": ACCESS, "refreshToken": REFRESH,
                      "expiresAt": int((time.time() + expires_in_s) * 1000),
                      "scopes": ["user:inference"], "isMax": True},
            "client_api_key": CLIENT,
            "slack": {"webhook_url": "https://hooks.example/x", "channel": "#c", "enabled": True}}


def test_both_claude_nexus_file_types_parse(tmp_path):
    api = credentials.load(write(tmp_path, "a.example", {"type": "api_key", "accountId": "acc_1",
                                                          "api_key": API_KEY}))
    assert (api.type, api.account_id, api.upstream_secret()) == ("api_key", "acc_1", API_KEY)
    oauth = credentials.load(write(tmp_path, "b.example", oauth_file()))
    assert oauth.upstream_secret() == ACCESS
    assert oauth.client_api_key == CLIENT and oauth.slack["channel"] == "#c"
    assert oauth.expires_at > utcnow()


def test_repr_of_a_credential_holds_no_secret(tmp_path):
    cred = credentials.load(write(tmp_path, "b.example", oauth_file()))
    assert not any(s in repr(cred) for s in (ACCESS, REFRESH, CLIENT))


@pytest.mark.parametrize("data, complaint", [
    ([], "JSON object"),
    ({"type": "bearer"}, "'type'"),
    ({"type": "api_key"}, "'api_key'"),
    ({"type": "oauth", "oauth": {"refreshToken": REFRESH}}, "'accessToken'"),
    ({"type": "oauth", "oauth": {"accessToken": ACCESS, "expiresAt": "soon"}}, "'expiresAt'"),
])
def test_invalid_files_name_the_field_without_echoing_secrets(data, complaint):
    with pytest.raises(ValueError) as info:
        credentials.parse(data)
    assert complaint in str(info.value)
    assert REFRESH not in str(info.value) and ACCESS not in str(info.value)


@pytest.mark.parametrize("host", [
    "", "..", "../etc/passwd", "a/b", "a\\b", "a\x00b", "a\nb", "a\tb", "x" * 254, ".hidden",
    "a..b", "/abs", "évil.com", "a b",
])
def test_hosts_that_could_escape_the_directory_are_refused(tmp_path, host):
    with pytest.raises(ValueError):
        credentials.credential_path(tmp_path, host)


@pytest.mark.parametrize("host", ["api.example.com", "LOCALHOST", "127.0.0.1", "[::1]", "my_host-1"])
def test_ordinary_hosts_map_inside_the_directory(tmp_path, host):
    path = credentials.credential_path(tmp_path, host)
    assert os.path.dirname(path) == os.path.realpath(tmp_path)
    assert os.path.basename(path) == host.lower() + ".credentials.json"


def test_write_atomic_leaves_mode_0600_and_no_temp_files(tmp_path):
    path = write(tmp_path, "a.example", {"type": "api_key", "api_key": "old"}, mode=0o644)
    credentials.write_atomic(path, {"type": "api_key", "api_key": API_KEY})
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert credentials.load(path).api_key == API_KEY
    assert os.listdir(tmp_path) == ["a.example.credentials.json"]


def test_failed_write_keeps_the_old_file_whole(tmp_path):
    path = write(tmp_path, "a.example", {"type": "api_key", "api_key": "old"})
    with pytest.raises(TypeError):
        credentials.write_atomic(path, {"type": "api_key", "api_key": object()})
    assert credentials.load(path).api_key == "old"
    assert os.listdir(tmp_path) == ["a.example.credentials.json"]


def test_refreshed_keeps_every_other_field():
    raw = {**oauth_file(), "custom": 1}
    new = credentials.refreshed(raw, {"access_token": "new-access", "expires_in": 120}, 1_000_000)
    assert new["oauth"]["accessToken"] == "new-access"
    assert new["oauth"]["refreshToken"] == REFRESH  # kept when the endpoint sends none
    assert new["oauth"]["expiresAt"] == 1_000_000 + 120_000
    assert {k: new[k] for k in ("accountId", "client_api_key", "slack", "custom")} == \
        {k: raw[k] for k in ("accountId", "client_api_key", "slack", "custom")}


def _check(tmp_path, capsys, domain=None):
    config = nexus_config.load({"CREDENTIALS_DIR": str(tmp_path)})
    code = credentials.cmd_check(argparse.Namespace(domain=domain), config)
    out = capsys.readouterr()
    return code, out.out + out.err


def test_check_reports_expiry_and_problems_without_printing_secrets(tmp_path, capsys):
    write(tmp_path, "ok.example", oauth_file(7200))
    write(tmp_path, "old.example", {**oauth_file(-60), "oauth": {**oauth_file(-60)["oauth"],
                                                                  "refreshToken": None}})
    write(tmp_path, "key.example", {"type": "api_key", "api_key": API_KEY}, mode=0o644)
    (tmp_path / "bad.example.credentials.json").write_text("{not json")
    code, out = _check(tmp_path, capsys)
    assert code == 1
    lines = {line.split(":")[0]: line for line in out.splitlines()}
    assert "expires" in lines["ok.example"] and "client key set" in lines["ok.example"]
    assert "EXPIRED" in lines["old.example"] and "no refresh token" in lines["old.example"]
    assert "WARNING mode 0644" in lines["key.example"]
    assert "INVALID" in lines["bad.example"]
    assert not any(s in out for s in (API_KEY, ACCESS, REFRESH, CLIENT))


def test_check_of_one_good_domain_succeeds(tmp_path, capsys):
    write(tmp_path, "ok.example", oauth_file(7200))
    assert _check(tmp_path, capsys, "ok.example")[0] == 0
    assert _check(tmp_path, capsys, "missing.example")[0] == 1
    assert _check(tmp_path, capsys, "../etc")[0] == 2


@pytest.mark.parametrize("host, names", [
    ("localhost:3000", ["localhost:3000", "localhost"]),
    ("LocalHost:3000", ["localhost:3000", "localhost"]),
    ("127.0.0.1:8080", ["127.0.0.1:8080", "127.0.0.1"]),
    ("[::1]:3000", ["[::1]:3000", "[::1]"]),
    ("localhost", ["localhost"]),
    ("team.example:3000", ["team.example"]),
    ("Team.Example", ["team.example"]),
])
def test_credential_file_names_follow_claude_nexus(host, names):
    assert credentials.file_domains(host) == names
