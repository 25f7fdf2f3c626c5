"""OpenTelemetry export end to end: the real proxy's writer sends spans and metrics to a real
OTLP/HTTP endpoint (tests/otlp_collector.py), and a collector that is down or hangs costs
neither a record nor a request's time."""
import datetime
import socket
import threading
import time

import pytest

from tests import scenarios
from tests.claude_code import git_repository, run_claude, session_script
from tests.claude_code_upstream import script_tag, start_claude_code_upstream
from tests.fake_upstream import start_fake_upstream
from tests.otlp_collector import running_collector
from tests.proxy.conftest import free_port, sdk
from tests.proxy.rows import wait_for_rows
from tests.proxy.test_conversations_e2e import MAIN_TOOLS, MODEL, PROMPT, Live
from tests.proxy.test_recorder import _outage
from tests.proxy_server import running_proxy

EPOCH = datetime.datetime(1970, 1, 1)


@pytest.fixture(scope="module")
def upstream():
    with start_fake_upstream() as fake:
        yield fake


def _play(live):
    """A main agent that spawns a sub-agent (two requests), goes on, and a quota probe."""
    s = live.s
    main = s.agent(model=MODEL)
    main.tools = MAIN_TOOLS
    main.user("Fix the failing test in parser.py")
    live.turn("A1", main, None, stream=True, tool_choice={"type": "tool", "name": "Task"})
    sub = s.agent(system=scenarios.subagent_system(), model=MODEL)
    sub.tools = scenarios.TOOLS[:5]
    sub.user(PROMPT)
    live.turn("S1", sub, None, tool_choice={"type": "any"})
    sub.results("/app/cli.py:12")
    live.turn("S2", sub, None, stream=True)
    main.results("One caller: /app/cli.py:12")
    live.turn("A2", main, None)
    quota = scenarios.Agent(s, None, model=scenarios.SMALL_MODEL, tools=None)
    quota.messages = [{"role": "user", "content": "quota"}]
    live.turn("quota", quota, None, max_tokens=1)


def _otel_env(url, **more):
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": url, "OTEL_BSP_SCHEDULE_DELAY": "100",
            "OTEL_METRIC_EXPORT_INTERVAL": "300", "OTEL_SERVICE_NAME": "nexus-under-test",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=test,team=platform",
            "OTEL_EXPORTER_OTLP_HEADERS": "x-collector-key=s%3Dcret",
            "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip", **more}


def _ns(timestamp):
    if isinstance(timestamp, str):
        timestamp = datetime.datetime.fromisoformat(timestamp)
    return (timestamp - EPOCH) // datetime.timedelta(microseconds=1) * 1000


def test_spans_and_metrics_reach_a_real_otlp_endpoint(db_url, upstream, tmp_path):
    with running_collector() as collector:
        env = {"CLAUDE_API_BASE_URL": upstream.url, "DATABASE_URL": db_url,
               **_otel_env(collector.url)}
        with running_proxy(env, cwd=str(tmp_path)) as proxy:
            with sdk(proxy.url) as client:
                live = Live(client, scenarios.Session(seed=5))
                _play(live)
            rows = {r["request_id"]: r for r in wait_for_rows(db_url, len(live.ids))}
            spans = {s["attributes"]["nexus.request_id"]: s
                     for s in collector.wait_for_spans(len(live.ids))}
            points = collector.wait_for_metrics(
                lambda ps: sum(p["value"] for p in ps
                               if p["name"] == "nexus.recorded.requests") == len(live.ids))
    ids = live.ids
    assert set(spans) == set(rows) == set(ids.values())
    a1 = rows[ids["A1"]]
    assert rows[ids["S1"]]["parent_task_request_id"] == ids["A1"]  # linked as the proxy links

    # One trace per conversation: the trace id is the conversation id, the span id the request's.
    conversation = a1["conversation_id"]
    for label in ("A1", "S1", "S2", "A2"):
        assert spans[ids[label]]["trace_id"] == conversation.replace("-", "")
        assert spans[ids[label]]["span_id"] == ids[label].replace("-", "")[:16]
    quota = spans[ids["quota"]]
    assert quota["trace_id"] == ids["quota"].replace("-", "") and quota["parent_span_id"] is None
    # The conversation's first request is the root; the sub-agent hangs under the Task call.
    a1_span = spans[ids["A1"]]["span_id"]
    assert spans[ids["A1"]]["parent_span_id"] is None
    assert spans[ids["S1"]]["parent_span_id"] == a1_span
    assert spans[ids["S2"]]["parent_span_id"] == a1_span
    assert spans[ids["A2"]]["parent_span_id"] == a1_span

    for request_id, span in spans.items():
        row, attrs = rows[request_id], span["attributes"]
        assert span["name"] == f"chat {row['model']}" and span["kind"] == 3  # SPAN_KIND_CLIENT
        assert attrs["gen_ai.operation.name"] == "chat"
        assert attrs["gen_ai.provider.name"] == attrs["gen_ai.system"] == "anthropic"
        assert attrs["gen_ai.request.model"] == attrs["gen_ai.response.model"] == row["model"]
        assert attrs["gen_ai.usage.output_tokens"] == row["output_tokens"] > 0
        assert attrs["gen_ai.usage.input_tokens"] == (
            row["input_tokens"] + row["cache_read_input_tokens"]
            + row["cache_creation_input_tokens"])
        assert attrs["gen_ai.usage.cache_read.input_tokens"] == row["cache_read_input_tokens"]
        assert attrs["nexus.cost_usd"] == pytest.approx(row["cost_usd"]) and row["cost_usd"] > 0
        assert attrs["session.id"] == attrs["nexus.session_id"] == row["session_id"]
        assert attrs.get("gen_ai.conversation.id") == row["conversation_id"]
        assert attrs["http.response.status_code"] == 200 and span["status"] == 0  # unset
        # The span is the request's real time: arrival, and arrival plus its duration.
        assert abs(span["start_ns"] - _ns(row["timestamp"])) < 1_000_000
        assert abs((span["end_ns"] - span["start_ns"]) / 1e6 - row["duration_ms"]) < 1
        assert span["resource"]["service.name"] == "nexus-under-test"
        assert span["resource"]["deployment.environment"] == "test"
        assert span["resource"]["service.instance.id"]
    assert spans[ids["S1"]]["attributes"]["nexus.is_subtask"] is True
    assert spans[ids["S1"]]["attributes"]["nexus.parent_task_request_id"] == ids["A1"]
    assert "gen_ai.conversation.id" not in spans[ids["quota"]]["attributes"]
    assert {h["x-collector-key"] for h in collector.headers("/v1/traces")} == {"s=cret"}
    assert {h["content-encoding"] for h in collector.headers("/v1/traces")} == {"gzip"}

    def total(name, **attrs):
        return sum(p["value"] for p in points if p["name"] == name
                   and all(p["attributes"].get(k) == v for k, v in attrs.items()))

    assert total("nexus.recorded.cost") == pytest.approx(sum(r["cost_usd"] for r in rows.values()))
    assert total("nexus.recorded.tokens", **{"nexus.token.type": "output"}) == sum(
        r["output_tokens"] for r in rows.values())
    assert total("gen_ai.client.token.usage", **{"gen_ai.token.type": "output"}) == sum(
        r["output_tokens"] for r in rows.values())
    assert total("nexus.recorded.requests", **{"nexus.request_type": "quota"}) == 1


def test_a_real_claude_code_sessions_sub_agent_hangs_under_its_agent_call(claude_code, tmp_path):
    repo = git_repository(tmp_path / "shop", "feature/cart")
    db_url = f"sqlite:///{tmp_path}/nexus.db"
    with running_collector() as collector, start_claude_code_upstream() as upstream:
        env = {"CLAUDE_API_BASE_URL": upstream.url, "DATABASE_URL": db_url,
               **_otel_env(collector.url)}
        with running_proxy(env, cwd=str(tmp_path)) as proxy:
            prompt = "Check the repository. " + script_tag(session_script(repo))
            run = run_claude(claude_code, prompt, base_url=proxy.url, home=tmp_path / "alice",
                             cwd=repo, auth_token="sk-ant-oat01-alice-test", timeout=120)
            received = [r for r in upstream.requests() if r["path"] == "/v1/messages"]
            rows = wait_for_rows(db_url, len(received))
            spans = {s["attributes"]["nexus.request_id"]: s
                     for s in collector.wait_for_spans(len(rows))}
    assert run.returncode == 0, run.stderr[-2000:]
    by_id = {r["request_id"]: r for r in rows}
    assert set(spans) == set(by_id)
    sub_agent = [r for r in rows if r["is_subtask"]]
    assert len(sub_agent) == 2  # the scripted session's sub-agent makes two turns
    caller = by_id[sub_agent[0]["parent_task_request_id"]]
    for row in sub_agent:
        assert row["parent_task_request_id"] == caller["request_id"]
        assert spans[row["request_id"]]["parent_span_id"] == spans[caller["request_id"]]["span_id"]
        assert spans[row["request_id"]]["trace_id"] == caller["conversation_id"].replace("-", "")
    main = [r for r in rows if r["conversation_id"] == caller["conversation_id"]
            and not r["is_subtask"]]
    assert len(main) >= 4
    assert {spans[r["request_id"]]["trace_id"] for r in main} == {
        caller["conversation_id"].replace("-", "")}
    assert {spans[r["request_id"]]["attributes"]["session.id"] for r in main} == {run.session_id}


def test_records_spooled_during_an_outage_are_exported_once_replayed(db_url, upstream, tmp_path):
    url, take_down, bring_back = _outage(db_url)
    sent = []
    with running_collector() as collector:
        env = {"CLAUDE_API_BASE_URL": upstream.url, "DATABASE_URL": url,
               "NEXUS_SPOOL_DIR": str(tmp_path / "spool"), **_otel_env(collector.url)}
        with running_proxy(env, cwd=str(tmp_path)) as proxy, sdk(proxy.url) as client:
            def call(n):
                for _ in range(n):
                    raw = client.messages.with_raw_response.create(
                        model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "hi"}])
                    sent.append(raw.headers["x-nexus-request-id"])

            call(2)
            collector.wait_for_spans(2)
            take_down()
            try:
                call(3)
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline and not any(
                        e["event"] == "database unreachable: spooling records"
                        for e in proxy.log_events()):
                    time.sleep(0.1)
                assert len(collector.spans()) == 2  # nothing saved, nothing exported
            finally:
                bring_back()
            rows = wait_for_rows(db_url, 5, timeout=30)
            spans = collector.wait_for_spans(5)
            time.sleep(0.5)  # a second export of the same records would arrive by now
            spans = collector.spans()
    assert sorted(r["request_id"] for r in rows) == sorted(sent)
    assert sorted(s["attributes"]["nexus.request_id"] for s in spans) == sorted(sent)


class Blackhole:
    """A loopback port that accepts connections and never answers (a hung collector)."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.accepted = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                self.accepted.append(self.listener.accept()[0])
            except OSError:
                return

    def close(self):
        self.listener.close()
        for conn in self.accepted:
            conn.close()


def _timed(client, n):
    started = time.perf_counter()
    client.messages.create(model=MODEL, max_tokens=64,
                           messages=[{"role": "user", "content": f"question {n}"}])
    return time.perf_counter() - started


def _median(values):
    return sorted(values)[len(values) // 2]


@pytest.mark.parametrize("collector", ["hangs", "refuses"])
def test_a_collector_that_is_down_costs_no_record_and_no_time(collector, upstream, tmp_path):
    """Two proxies side by side, one exporting to a dead collector: requests alternate
    between them, so the machine's load weighs on both alike."""
    blackhole = Blackhole() if collector == "hangs" else None
    url = blackhole.url if blackhole else f"http://127.0.0.1:{free_port()}"
    plain_env = {"CLAUDE_API_BASE_URL": upstream.url,
                 "DATABASE_URL": f"sqlite:///{tmp_path}/plain.db"}
    otel_db = f"sqlite:///{tmp_path}/otel.db"
    otel_env = {**plain_env, "DATABASE_URL": otel_db,
                **_otel_env(url, OTEL_BSP_SCHEDULE_DELAY="20", OTEL_BSP_MAX_QUEUE_SIZE="8",
                            OTEL_EXPORTER_OTLP_TIMEOUT="30000")}
    (tmp_path / "plain").mkdir()
    (tmp_path / "otel").mkdir()
    plain_times, otel_times = [], []
    try:
        with running_proxy(plain_env, cwd=str(tmp_path / "plain")) as plain, \
                running_proxy(otel_env, cwd=str(tmp_path / "otel")) as otel, \
                sdk(plain.url) as plain_client, sdk(otel.url) as otel_client:
            for n in range(60):
                plain_times.append(_timed(plain_client, n))
                otel_times.append(_timed(otel_client, n))
            rows = wait_for_rows(otel_db, 60, timeout=10)
            if blackhole:
                assert blackhole.accepted, "the writer never tried the collector"
            stopping = time.monotonic()
            otel.stop()
            stopped_in = time.monotonic() - stopping
    finally:
        if blackhole:
            blackhole.close()
    assert len(rows) == 60  # every record saved, promptly, though no span ever left
    # No request waited for the collector (its timeout is 30 s), and the median is that of the
    # proxy beside it that exports nothing, within the noise of a busy shared machine (two
    # identical proxies' medians differ by up to 4x there, from 12 to 50 ms).
    assert max(otel_times) < 2.0
    assert _median(otel_times) < _median(plain_times) * 3 + 0.05
    assert stopped_in < 15  # the writer's shutdown waits seconds for telemetry, not the timeout
