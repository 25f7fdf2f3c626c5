"""The spool under hostile records: nothing a client sends can stop its replay.

A request whose only header is named like one of the spool's tags (`$b64`) is
spooled during an outage with the real proxy and replayed once the database is
back, together with the records behind it; a file written by an older release,
where such a header was decoded into bytes, is replayed too, its one bad record
set aside in `rejected/`.
"""
import base64
import json
import os
import uuid

from proxy.spool import encode
from tests.proxy.conftest import free_port
from tests.proxy.rows import fetch_rows, wait_for_rows
from tests.proxy.test_spool import record, wait_for_spool
from tests.proxy_server import running_proxy

from .support import message_body, parse_answer, post, raw_exchange


def only_header(name):
    """An HTTP/1.0 request whose one header (besides the body's length) is `name`."""
    body = message_body()
    return (b"POST /v1/messages HTTP/1.0\r\n" + name + b": eA==\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def old_release_line(request_id):
    """A spool line as releases before the fix wrote a record with a `$b64` header."""
    line = json.loads(encode(record(request_id=request_id)))
    line["request_headers"] = {"$b64": base64.b64encode(b"x").decode()}
    return json.dumps(line).encode() + b"\n"


def test_a_header_named_b64_spooled_in_an_outage_is_replayed_with_what_follows(
        upstream, module_db_url, tmp_path):
    spool_dir = tmp_path / "spool"
    down = {"CLAUDE_API_BASE_URL": upstream.url, "NEXUS_SPOOL_DIR": str(spool_dir),
            "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"}
    ids = []
    with running_proxy(down, cwd=str(tmp_path)) as proxy:
        for name in (b"$b64", b"$dt", b"$dict"):
            status, headers, _ = parse_answer(raw_exchange(proxy.port, only_header(name)))
            assert status == 200
            ids.append(headers["x-nexus-request-id"])
        status, headers, _ = post(proxy.port)
        ids.append(headers["x-nexus-request-id"])
        wait_for_spool(str(spool_dir), len(ids))
        proxy.kill_all()
    old_id = str(uuid.uuid4())
    after_id = str(uuid.uuid4())
    with open(spool_dir / "0-older-release.jsonl", "wb") as f:
        f.write(old_release_line(old_id))
        f.write(encode(record(request_id=after_id)))
    with running_proxy({**down, "DATABASE_URL": module_db_url}, cwd=str(tmp_path)):
        rows = wait_for_rows(module_db_url, len(ids) + 1, timeout=30)
    saved = {r["request_id"] for r in rows}
    assert set(ids) | {after_id} <= saved
    assert old_id not in saved  # set aside, not lost: it waits in rejected/
    assert os.listdir(spool_dir / "rejected")
    assert not [n for n in os.listdir(spool_dir) if n.endswith(".jsonl")]
    assert len(fetch_rows(module_db_url)) == len(saved)
