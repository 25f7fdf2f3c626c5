"""save_records: rows, bodies, costs and aggregates from proxy records, exactly once."""
import json

import pytest

from common import cli
from common import config as nexus_config
from common.models import ApiRequest, HourlyUsage, RequestBody, TaskInvocation
from common.pricing import load_prices
from common.recording import bodies
from common.recording.store import save_records
from tests import scenarios

CONFIG = nexus_config.load({})

# 5-minute and 1-hour cache writes plus cache reads, on Sonnet 4.5 ($/MTok: input 3,
# output 15, 5m write 3.75, 1h write 6, read 0.30). By hand:
#   1,000 × 3 + 2,000 × 15 + 4,000 × 3.75 + 6,000 × 6 + 50,000 × 0.30
#   = 3,000 + 30,000 + 15,000 + 36,000 + 15,000 = 99,000 micro-dollars = $0.099
CACHED_USAGE = {"input_tokens": 1000, "output_tokens": 2000, "cache_creation_input_tokens": 10000,
                "cache_read_input_tokens": 50000,
                "cache_creation": {"ephemeral_5m_input_tokens": 4000, "ephemeral_1h_input_tokens": 6000}}


def _one(stream=True, usage=None, status=200, model=scenarios.MAIN_MODEL):
    s = scenarios.Session()
    agent = s.agent()
    agent.user("Fix the failing test")
    body = agent.body(stream=stream, model=model)
    message = s.message(model, "Done.", s.tool_use("Task", prompt="Look around"), usage=usage)
    s.send("one", body, message, status=status)
    return s.records[0], message


def _row(request_id):
    return ApiRequest.select().where(ApiRequest.request_id == request_id).dicts().get()


@pytest.mark.parametrize("stream", [True, False])
def test_a_record_becomes_a_row_with_tokens_and_cost(database, stream):
    record, message = _one(stream=stream, usage=CACHED_USAGE)
    assert save_records(database, [record], load_prices(), CONFIG) == 1
    row = _row(record["request_id"])
    assert row["model"] == scenarios.MAIN_MODEL
    assert row["request_type"] == "inference"
    assert (row["input_tokens"], row["output_tokens"], row["cache_creation_input_tokens"],
            row["cache_read_input_tokens"]) == (1000, 2000, 10000, 50000)
    assert round(row["cost_usd"], 2) == 0.10 and abs(row["cost_usd"] - 0.099) < 1e-9
    assert json.loads(row["usage_data"])["cache_creation"]["ephemeral_1h_input_tokens"] == 6000
    assert row["stop_reason"] == "tool_use"
    assert row["stream"] is stream
    assert row["message_count"] == 1
    assert json.loads(row["ratelimit"]) == {"anthropic-ratelimit-unified-status": "allowed",
                                            "anthropic-ratelimit-unified-5h-utilization": "0.25"}
    assert row["current_message_hash"] and row["system_hash"] and row["parent_message_hash"] is None
    stored = bodies.load_one(record["request_id"])
    assert stored.request == record["request_body"]  # byte for byte
    assert stored.response == record["response_body"]  # as the client received it (SSE too)
    assert stored.answer(stream)["content"] == message["content"]
    task = TaskInvocation.get(TaskInvocation.request_id == record["request_id"])
    assert task.tool_use_id == message["content"][1]["id"]


def test_a_replayed_record_never_makes_a_second_row(database):
    record, _ = _one(usage=CACHED_USAGE)
    assert save_records(database, [record, dict(record)], load_prices(), CONFIG) == 1
    assert save_records(database, [record], load_prices(), CONFIG) == 0
    assert ApiRequest.select().count() == 1
    assert RequestBody.select().count() == 1
    assert TaskInvocation.select().count() == 1
    assert HourlyUsage.select().get().requests == 1


@pytest.mark.parametrize("policy, stored", [("all", {"ok", "failed"}), ("errors", {"failed"}),
                                            ("none", set())])
def test_capture_policies(database, policy, stored):
    ok, _ = _one()
    failed, _ = _one(status=529)
    failed["request_id"] = "f" * 8 + ok["request_id"][8:]
    config = CONFIG.replace(capture_bodies=policy)
    assert save_records(database, [ok, failed], load_prices(), config) == 2
    names = {ok["request_id"]: "ok", failed["request_id"]: "failed"}
    assert {names[b.request_id] for b in RequestBody.select()} == stored
    assert _row(failed["request_id"])["error"] == "overloaded_error: Overloaded"


def test_headers_are_stored_as_the_proxy_redacted_them(database):
    # The proxy redacts once, before a record can reach the spool (proxy.wire.make_record,
    # tests/proxy/test_wire.py); the store keeps what it is given.
    record, _ = _one()
    record["request_headers"] = dict(record["request_headers"], **{"x-api-key": "[redacted]"})
    record["response_headers"] = {"request-id": "req_1"}
    save_records(database, [record], load_prices(), CONFIG)
    stored = bodies.load_one(record["request_id"])
    assert json.loads(stored.request_headers) == record["request_headers"]
    assert json.loads(stored.response_headers) == {"request-id": "req_1"}


def test_bodies_that_are_not_utf8_or_hold_nul_are_stored(database):
    record, _ = _one(stream=False)
    record["request_body"] = b'{"model": "x", "messages": []}\x00\xff'
    record["response_body"] = b"upstream said \x00 \xfe"
    record["response_status"] = 502
    save_records(database, [record], load_prices(), CONFIG)
    stored = bodies.load_one(record["request_id"])
    assert (stored.request, stored.response) == (record["request_body"], record["response_body"])
    assert _row(record["request_id"])["request_type"] == "inference"


def test_a_cancelled_stream_keeps_what_arrived(database):
    record, message = _one(usage=CACHED_USAGE)
    record["response_body"] = record["response_body"][: len(record["response_body"]) // 2]
    record["error"] = "client disconnected"
    save_records(database, [record], load_prices(), CONFIG)
    row = _row(record["request_id"])
    assert row["error"] == "client disconnected"
    assert row["input_tokens"] == 1000  # message_start carried the input side
    stored = bodies.load_one(record["request_id"])
    assert stored.response == record["response_body"]
    assert stored.answer(True)["id"] == message["id"]


def test_a_proxy_error_without_any_body_is_recorded(database):
    record, _ = _one()
    record.update(response_status=502, response_body=None, stream=False, error="upstream unreachable",
                  first_token_ms=None)
    assert save_records(database, [record], load_prices(), CONFIG) == 1
    row = _row(record["request_id"])
    assert (row["error"], row["cost_usd"], row["model"]) == ("upstream unreachable", 0.0,
                                                             scenarios.MAIN_MODEL)
    assert HourlyUsage.select().get().errors == 1


def test_other_endpoints_get_their_own_type(database):
    record, _ = _one(stream=False)
    record.update(method="GET", path="/v1/models", request_body=b"", query="",
                  response_body=json.dumps({"data": [], "has_more": False}).encode())
    save_records(database, [record], load_prices(), CONFIG)
    row = _row(record["request_id"])
    assert (row["request_type"], row["model"], row["message_count"], row["conversation_id"]) == (
        "models", None, 0, None)


def test_timestamps_may_arrive_as_iso_text_from_the_spool(database):
    record, _ = _one()
    record["timestamp"] = record["timestamp"].isoformat() + "+00:00"
    save_records(database, [record], load_prices(), CONFIG)
    assert _row(record["request_id"])["timestamp"].isoformat() == record["timestamp"][:19]


def test_reprice_applies_a_new_price_file(database, db_url, tmp_path, capsys):
    record, _ = _one(usage=CACHED_USAGE)
    save_records(database, [record], load_prices(), CONFIG)
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"models": {"claude-sonnet-4-5": {"output": 30}}}))
    env = {"DATABASE_URL": db_url, "NEXUS_PRICING_FILE": str(prices)}
    assert cli.main(["reprice"], environ=env) == 0
    assert "repriced rows: 1" in capsys.readouterr().out
    database.connect(reuse_if_open=True)
    assert abs(_row(record["request_id"])["cost_usd"] - 0.129) < 1e-9  # output 2,000 × 30 more
    assert abs(HourlyUsage.select().get().cost_usd - 0.129) < 1e-9


def test_relink_command_prints_the_linked_share(database, db_url, capsys):
    day = scenarios.claude_code_day()
    save_records(database, day.records, load_prices(), CONFIG)
    assert cli.main(["relink"], environ={"DATABASE_URL": db_url}) == 0
    out = capsys.readouterr().out
    assert "inference requests: 19, linked to a parent: 18 (94.7%), rows changed: 0" in out


class _BrokenPrices:
    """A price table that fails on one model, as a bad override file might."""

    def cost(self, model, usage):
        raise ValueError("bad price row")


def test_a_record_that_cannot_be_derived_is_stored_unlinked(database, caplog):
    record, _ = _one(usage=CACHED_USAGE)
    other, _ = _one()
    other["request_id"] = "e" * 8 + other["request_id"][8:]
    assert save_records(database, [record, other], _BrokenPrices(), CONFIG) == 2
    row = _row(record["request_id"])
    assert (row["cost_usd"], row["conversation_id"]) == (0.0, None)
    stored = bodies.load_one(record["request_id"])
    assert stored.request == record["request_body"]
    assert stored.response.startswith(b"event: message_start")  # kept as it came
    assert "could not derive request" in caplog.text


def test_reprice_refuses_a_bad_date(db_url, capsys):
    assert cli.main(["reprice", "--since", "yesterday"], environ={"DATABASE_URL": db_url}) == 2
    assert "not an ISO date" in capsys.readouterr().err


def _save_in_child(url, seed, results):
    from common import db as nexus_db
    database = nexus_db.connect(url)
    records = scenarios.claude_code_day(seed=seed).records
    results.put(save_records(database, records, load_prices(), CONFIG))
    database.close()


def test_writers_racing_on_the_same_records_store_each_once(db_url):
    import multiprocessing

    from common import db as nexus_db
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=_save_in_child, args=(db_url, 4, results)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert sum(results.get(timeout=5) for _ in procs) == 22
    database = nexus_db.connect(db_url)
    try:
        assert ApiRequest.select().count() == 22
        assert sum(h.requests for h in HourlyUsage.select()) == 22
        assert RequestBody.select().count() == 22
    finally:
        database.close()
