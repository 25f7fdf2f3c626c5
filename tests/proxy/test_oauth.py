"""OAuth refresh: before expiry, written back atomically 0600, and once across processes."""
import json
import multiprocessing
import os
import stat
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import responses

from common import config as nexus_config
from common import credentials
from common import db as nexus_db
from proxy import oauth
from proxy.auth import Authenticator
from proxy.refusals import Refusal

TOKEN_URL = "https://tokens.test/v1/oauth/token"
OLD_ACCESS = "sk-ant-oat01-OLDACCESS-0123456789"
OLD_REFRESH = "sk-ant-ort01-OLDREFRESH-0123456789"


def write_oauth(directory, domain="team.example", expires_in_s=-10, refresh=OLD_REFRESH):
    data = {"type": "oauth", "accountId": "acc_9", "client_api_key": "cnp_live_keepme",
            "slack": {"webhook_url": "https://hooks.example/x"},
            "oauth": {"accessToken": OLD_ACCESS, "refreshToken": refresh,
                      "expiresAt": int((time.time() + expires_in_s) * 1000),
                      "scopes": ["user:inference"], "isMax": True}}
    path = os.path.join(directory, f"{domain}.credentials.json")
    with open(path, "w") as f:
        json.dump(data, f)
    os.chmod(path, 0o644)
    return path


def make_auth(directory, token_url=TOKEN_URL):
    return Authenticator(nexus_config.load({"CREDENTIALS_DIR": str(directory),
                                            "NEXUS_OAUTH_TOKEN_URL": token_url}))


def bearer(grant):
    return dict(grant.set_headers)["authorization"].split(" ", 1)[1]


@responses.activate
def test_an_expiring_token_is_refreshed_and_written_back_0600(tmp_path, database):
    path = write_oauth(tmp_path, expires_in_s=30)  # inside the 60 s margin
    responses.post(TOKEN_URL, json={"access_token": "new-access", "refresh_token": "new-refresh",
                                    "expires_in": 28800, "scope": "user:inference user:profile"})
    a = make_auth(tmp_path)
    assert bearer(a.authorize("team.example", {})) == "new-access"
    assert bearer(a.authorize("team.example", {})) == "new-access"
    assert len(responses.calls) == 1
    sent = json.loads(responses.calls[0].request.body)
    assert sent["grant_type"] == "refresh_token" and sent["refresh_token"] == OLD_REFRESH
    assert sent["client_id"] and responses.calls[0].request.headers["anthropic-beta"] == oauth.OAUTH_BETA

    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(path) as f:
        saved = json.load(f)
    assert saved["oauth"]["refreshToken"] == "new-refresh"
    assert saved["oauth"]["expiresAt"] > (time.time() + 28000) * 1000
    assert saved["client_api_key"] == "cnp_live_keepme" and saved["accountId"] == "acc_9"
    assert sorted(n for n in os.listdir(tmp_path) if "credentials" in n) == [
        ".team.example.credentials.json.lock", "team.example.credentials.json"]  # no temp files left


@responses.activate
def test_a_failed_refresh_uses_the_old_token_until_it_expires(tmp_path, database, caplog):
    write_oauth(tmp_path, expires_in_s=30)
    responses.post(TOKEN_URL, status=400, json={"error": "invalid_grant",
                                                "error_description": "refresh token revoked"})
    a = make_auth(tmp_path)
    assert bearer(a.authorize("team.example", {})) == OLD_ACCESS
    assert bearer(a.authorize("team.example", {})) == OLD_ACCESS
    assert len(responses.calls) == 1  # the cooldown spares the token endpoint
    assert "invalid_grant" in caplog.text and OLD_REFRESH not in caplog.text


@responses.activate
def test_an_expired_token_that_cannot_be_refreshed_gets_401(tmp_path, database):
    write_oauth(tmp_path, expires_in_s=-10)
    responses.post(TOKEN_URL, status=500)
    with pytest.raises(Refusal) as info:
        make_auth(tmp_path).authorize("team.example", {})
    assert (info.value.status, info.value.error_type) == (401, "authentication_error")
    assert OLD_ACCESS not in info.value.message


# -- several processes, one refresh ---------------------------------------------------

class _TokenServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _TokenHandler)
        self.calls = []
        self.current_refresh = OLD_REFRESH
        self.lock = threading.Lock()


class _TokenHandler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        time.sleep(0.3)  # a slow endpoint widens the race window
        with self.server.lock:
            self.server.calls.append(body["refresh_token"])
            n = len(self.server.calls)
            # Like Anthropic's, this endpoint rotates refresh tokens: an old one is dead.
            ok = body["refresh_token"] == self.server.current_refresh
            if ok:
                self.server.current_refresh = f"rotated-{n}"
        payload = ({"access_token": f"access-{n}", "refresh_token": f"rotated-{n}", "expires_in": 3600}
                   if ok else {"error": "invalid_grant"})
        data = json.dumps(payload).encode()
        self.send_response(200 if ok else 400)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def _race_child(directory, token_url, db_url, use_file_lock, barrier, results):
    nexus_db.connect(db_url)
    if not use_file_lock:
        # As on hosts whose shared volume has no working flock: only the lease guards.
        oauth._file_lock = lambda path: _nothing()
    a = make_auth(directory, token_url)
    barrier.wait(30)
    try:
        results.put(bearer(a.authorize("team.example", {})))
    except Refusal as exc:
        results.put(f"error {exc.status}")


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("use_file_lock", [True, False], ids=["file-lock+lease", "lease-only"])
def test_racing_processes_refresh_exactly_once(tmp_path, db_url, use_file_lock):
    path = write_oauth(tmp_path, expires_in_s=-10)
    server = _TokenServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        ctx = multiprocessing.get_context("spawn")
        n = 4
        barrier, results = ctx.Barrier(n), ctx.Queue()
        url = f"http://127.0.0.1:{server.server_address[1]}/v1/oauth/token"
        procs = [ctx.Process(target=_race_child,
                             args=(str(tmp_path), url, db_url, use_file_lock, barrier, results))
                 for _ in range(n)]
        for p in procs:
            p.start()
        got = sorted(results.get(timeout=60) for _ in procs)
        for p in procs:
            p.join(30)
            assert p.exitcode == 0
    finally:
        server.shutdown()
        server.server_close()
    assert server.calls == [OLD_REFRESH]
    assert got == ["access-1"] * n
    assert credentials.load(path).refresh_token == "rotated-1"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
