"""A recorded row as OpenTelemetry data (proxy/telemetry_spans.py), and the OTEL_* settings."""
import datetime
import logging
import sys

import pytest

from common import config
from proxy import telemetry, telemetry_spans as spans

OPENER = "0b6c2f7e-1d2a-4c3b-9e8f-7a6b5c4d3e2f"
TASK_CALL = "11111111-2222-4333-8444-555555555555"


def _row(**changes):
    row = {"request_id": "9f8e7d6c-5b4a-4938-8271-605f4e3d2c1b", "conversation_id": OPENER,
           "parent_task_request_id": None,
           "timestamp": datetime.datetime(2026, 12, 7, 16, 0, 1, 250000),
           "duration_ms": 1500.5, "model": "claude-sonnet-4-5", "path": "/v1/messages",
           "method": "POST", "request_type": "inference", "response_status": 200,
           "input_tokens": 10, "output_tokens": 20, "cache_read_input_tokens": 300,
           "cache_creation_input_tokens": 40, "cost_usd": 0.0123, "session_id": "s-1",
           "stop_reason": "end_turn", "error": None, "domain": "team.example.com"}
    row.update(changes)
    return row


def test_a_conversation_is_one_trace_whose_id_is_the_conversation_id():
    first = _row(request_id=OPENER)
    later = _row()
    assert f"{spans.trace_id(first):032x}" == OPENER.replace("-", "")
    assert spans.trace_id(later) == spans.trace_id(first)
    assert spans.parent_span_id(first) is None
    assert spans.parent_span_id(later) == spans.span_id(OPENER)
    assert f"{spans.span_id(later['request_id']):016x}" == later["request_id"].replace("-", "")[:16]


def test_a_sub_agents_request_hangs_under_the_task_call():
    sub = _row(parent_task_request_id=TASK_CALL, is_subtask=True)
    assert spans.parent_span_id(sub) == spans.span_id(TASK_CALL)
    assert spans.trace_id(sub) == spans.trace_id(_row(request_id=TASK_CALL))


def test_a_request_outside_conversations_is_its_own_trace():
    row = _row(conversation_id=None, request_type="quota")
    assert spans.trace_id(row) == spans.trace_id({"request_id": row["request_id"]})
    assert spans.parent_span_id(row) is None
    # ids that are not UUIDs still give stable, non-zero ids
    assert spans.span_id("not-a-uuid") == spans.span_id("not-a-uuid") != 0


def test_the_span_is_the_requests_real_time():
    start, end = spans.times_ns(_row())
    assert start == 1796659201_250000_000
    assert end - start == 1_500_500_000
    assert spans.times_ns(_row(timestamp="2026-12-07T16:00:01.250000"))[0] == start


def test_attributes_follow_the_genai_conventions_and_add_ours():
    attrs = spans.span_attributes(_row(project="nexus", developer="ada", git_branch="main"))
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "anthropic"
    assert attrs["gen_ai.request.model"] == attrs["gen_ai.response.model"] == "claude-sonnet-4-5"
    assert attrs["gen_ai.usage.input_tokens"] == 350  # the conventions count cached input too
    assert attrs["nexus.usage.input_tokens"] == 10
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 300
    assert attrs["gen_ai.usage.cache_creation.input_tokens"] == 40
    assert attrs["gen_ai.response.finish_reasons"] == ["end_turn"]
    assert attrs["nexus.cost_usd"] == 0.0123
    assert (attrs["nexus.project"], attrs["nexus.developer"], attrs["nexus.git_branch"]) == (
        "nexus", "ada", "main")
    assert "error.type" not in attrs and "nexus.subagent" not in attrs
    assert spans.span_name(_row()) == "chat claude-sonnet-4-5"


def test_unpriced_and_failed_requests_say_so():
    attrs = spans.span_attributes(_row(cost_usd=None, response_status=529, stop_reason=None))
    assert "nexus.cost_usd" not in attrs  # unpriced is absent, never a made-up 0
    assert attrs["error.type"] == "529" and "gen_ai.response.model" not in attrs
    refused = spans.span_attributes(_row(response_status=None, error="upstream unreachable"))
    assert refused["error.type"] == "_OTHER"
    counted = _row(path="/v1/messages/count_tokens", request_type="count_tokens")
    assert spans.span_name(counted) == "count_tokens claude-sonnet-4-5"


def test_metric_attributes_carry_no_ids():
    attrs = spans.metric_attributes(_row(developer="ada"))
    assert attrs["nexus.developer"] == "ada"
    assert not {"nexus.request_id", "session.id", "gen_ai.conversation.id"} & set(attrs)


def _config(**env):
    return config.load(env)


def test_export_is_off_unless_an_endpoint_is_set():
    assert telemetry.endpoints(_config()) == (None, None)
    assert telemetry.start(_config()) is telemetry.OFF
    on = _config(OTEL_EXPORTER_OTLP_ENDPOINT="http://collector:4318/")
    assert telemetry.endpoints(on) == ("http://collector:4318/v1/traces",
                                       "http://collector:4318/v1/metrics")
    assert telemetry.endpoints(_config(OTEL_EXPORTER_OTLP_ENDPOINT="http://c:4318",
                                       OTEL_SDK_DISABLED="true")) == (None, None)
    assert telemetry.endpoints(_config(OTEL_EXPORTER_OTLP_ENDPOINT="http://c:4318",
                                       OTEL_METRICS_EXPORTER="none")) == (
        "http://c:4318/v1/traces", None)
    assert telemetry.endpoints(_config(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="http://t/spans")) == (
        "http://t/spans", None)


def test_otel_settings_parse_the_standard_forms():
    values = _config(OTEL_EXPORTER_OTLP_HEADERS="x-honeycomb-team=abc%2C1, x-b = 2",
                     OTEL_RESOURCE_ATTRIBUTES="deployment.environment=prod")
    assert values.otel_headers == {"x-honeycomb-team": "abc,1", "x-b": "2"}
    assert values.otel_resource_attributes == {"deployment.environment": "prod"}
    assert values.otel_service_name is None  # the resource's own, else claude-nexus


@pytest.mark.parametrize("name, value", [("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                                         ("OTEL_EXPORTER_OTLP_HEADERS", "no-equals-sign")])
def test_unusable_otel_settings_stop_start_up_with_their_name(name, value):
    with pytest.raises(config.ConfigError, match=name):
        _config(**{name: value})


def test_a_batch_adds_its_counters_once_per_attribute_set():
    rows = [_row(developer="ada"), _row(developer="ada", cost_usd=None), _row(developer="bob")]
    sums = spans.batch_sums(rows)
    ada = next(total for key, total in sums.items() if ("nexus.developer", "ada") in key)
    assert len(sums) == 2
    assert (ada["requests"], ada["output"], ada["cache_read"], ada["priced"]) == (2, 40, 600, 1)
    assert ada["cost"] == pytest.approx(0.0123)


TEAM_A = {"OTEL_RESOURCE_ATTRIBUTES": "service.name=team-a"}


@pytest.mark.parametrize("env, name", [({}, "claude-nexus"), (TEAM_A, "team-a"),
                                       ({**TEAM_A, "OTEL_SERVICE_NAME": "team-b"}, "team-b")])
def test_the_service_name_follows_the_specifications_precedence(env, name):
    exporter = telemetry.start(_config(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9", **env))
    try:
        assert exporter.resource.attributes["service.name"] == name
        assert exporter.resource.attributes["service.instance.id"]
    finally:
        exporter.close(wait=1)


def test_a_collector_url_is_logged_without_its_password():
    assert telemetry._shown("https://user:s3cret@otlp.example.com:4318/v1/traces") == (
        "https://otlp.example.com:4318/v1/traces")
    assert telemetry._shown(None) is None


def test_without_the_sdk_export_is_off_and_says_how_to_install_it(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.resources", None)  # import fails
    with caplog.at_level(logging.ERROR, logger="nexus.telemetry"):
        started = telemetry.start(_config(OTEL_EXPORTER_OTLP_ENDPOINT="http://c:4318"))
    assert started is telemetry.OFF
    assert "claude-nexus[otel]" in caplog.text
