"""The stand-in's request reader and the bench's pure summaries."""
import pytest

from bench import scenarios, stats, wire
from bench.lineup import parse_variant
from bench.upstream import wants_stream


def _feed_bytewise(reader, data):
    found = []
    for i in range(0, len(data), 7):  # awkward piece sizes split heads and chunk lines
        reader.feed(data[i:i + 7])
        while (request := reader.next_request()) is not None:
            found.append(request)
    return found


def test_reader_takes_pipelined_requests_split_anywhere():
    body = b'{"model":"m","stream":true}'
    data = (b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
            + b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
    first, second = _feed_bytewise(wire.RequestReader(), data)
    assert first[:2] == (b"POST", b"/v1/messages") and first[3] == body
    assert first[2][b"content-length"] == str(len(body)).encode()
    assert second[:2] == (b"GET", b"/health") and second[3] == b""


def test_reader_decodes_a_chunked_body():
    data = (b"POST /v1/messages HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n")
    (request,) = _feed_bytewise(wire.RequestReader(), data)
    assert request[3] == b"hello world"


def test_stream_events_are_anthropics_sequence():
    events = wire.sse_events(8)
    names = [e.split(b"\n", 1)[0] for e in events]
    assert len(events) == 8 and all(e.endswith(b"\n\n") for e in events)
    assert names[0] == b"event: message_start" and names[-1] == b"event: message_stop"
    assert names.count(b"event: content_block_delta") == 3


def test_wants_stream_reads_the_flag_not_the_text():
    assert wants_stream(b'{"model":"m","stream": true}')
    assert not wants_stream(b'{"model":"m","stream":false}')
    assert not wants_stream(b'{"messages":[{"content":"stream"}]}')


def test_percentiles_are_nearest_rank_in_milliseconds():
    summary = stats.summary_ms([i / 1000 for i in range(1, 101)])
    assert (summary["p50"], summary["p99"], summary["max"]) == (50.0, 99.0, 100.0)
    assert stats.summary_ms([])["p50"] is None


def test_rounds_merge_to_medians_and_sums():
    rounds = [{"scenario": "s", "requests": n, "errors": 0, "cpu_s": 0.1, "requests_per_s": rps,
               "latency_ms": {"n": n, "p50": p50, "p99": p50 * 2}, "rss_mb": rss}
              for n, rps, p50, rss in ((100, 10, 1.0, 30), (100, 50, 9.0, 31), (100, 20, 2.0, 29))]
    merged = scenarios.merge_rounds(rounds)
    assert merged["requests"] == 300 and merged["latency_ms"]["n"] == 300
    assert merged["requests_per_s"] == 20 and merged["latency_ms"]["p50"] == 2.0
    assert merged["rss_mb"] == 31 and abs(merged["cpu_ms_per_request"] - 1.0) < 1e-9


def test_a_variant_names_a_proxy_target_and_its_settings():
    assert parse_variant("proxy-sqlite") == ("proxy-sqlite", {})
    assert parse_variant("proxy-off+NEXUS_LOG_LEVEL=warning+NEXUS_POOL_SIZE=300") == (
        "proxy-off", {"NEXUS_LOG_LEVEL": "warning", "NEXUS_POOL_SIZE": "300"})
    with pytest.raises(ValueError, match="unknown target"):
        parse_variant("relay+X=1")
