"""Refused callers through the real proxy: what a client without a key can make it store.

With ENABLE_CLIENT_AUTH on, a request without a key (or with a wrong one) is
answered 401 before its body is read. The body is read past, never kept: the
row says who was refused, and the database does not grow by what was sent.
"""
import json
import os

import pytest

from common import db as nexus_db
from common.recording import bodies
from tests.proxy.rows import row_for
from tests.proxy_server import running_proxy

from .support import anthropic_error, message_body, post

HOST = "keyed.example"


@pytest.fixture(scope="module")
def proxy(upstream, module_db_url, tmp_path_factory):
    home = tmp_path_factory.mktemp("proxy")
    os.makedirs(home / "credentials")
    with open(home / "credentials" / f"{HOST}.credentials.json", "w") as f:
        json.dump({"type": "api_key", "api_key": "sk-ant-api03-AUTH-FAULTS-UPSTREAM",
                   "client_api_key": "cnp_live_AUTH-FAULTS-CLIENT"}, f)
    env = {"CLAUDE_API_BASE_URL": upstream.url, "DATABASE_URL": module_db_url,
           "ENABLE_CLIENT_AUTH": "true"}
    with running_proxy(env, cwd=str(home)) as running:
        running.db_url = module_db_url
        yield running


def stored_body(db_url, request_id):
    database = nexus_db.connect(db_url)
    try:
        with database.connection_context():
            stored = bodies.load_one(request_id)
    finally:
        database.close()
    return stored.request if stored is not None else None


@pytest.mark.parametrize("key", [None, "cnp_live_WRONG"])
def test_a_refused_callers_body_is_not_stored(proxy, key):
    big = message_body(text="x" * (4 << 20))  # 4 MiB
    headers = {"host": HOST, "x-api-key": key} if key else {"host": HOST, "x-api-key": ""}
    status, answer_headers, body = post(proxy.port, big, headers, timeout=30)
    assert status == 401 and anthropic_error(body)["type"] == "authentication_error"
    row = row_for(proxy.db_url, answer_headers["x-nexus-request-id"])
    assert row["response_status"] == 401
    assert stored_body(proxy.db_url, row["request_id"]) is None
    # The connection was read to its end: the same client can go on.
    assert post(proxy.port, message_body(), {"host": HOST,
                                             "x-api-key": "cnp_live_AUTH-FAULTS-CLIENT"})[0] == 200


def test_an_admitted_callers_refused_body_is_still_stored(proxy):
    bad = b'{"model": "x", "messages": ['
    status, headers, _ = post(proxy.port, bad, {"host": HOST,
                                                "x-api-key": "cnp_live_AUTH-FAULTS-CLIENT"})
    assert status == 400
    assert row_for(proxy.db_url, headers["x-nexus-request-id"])["response_status"] == 400
    assert stored_body(proxy.db_url, headers["x-nexus-request-id"]) == bad
