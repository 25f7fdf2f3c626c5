"""The SSE parser gives the same events however the bytes are cut."""
from hypothesis import given, settings
from hypothesis import strategies as st

from common.sse import ServerSentEvent, SSEParser, parse_sse


def _feed_in_pieces(data, cuts):
    parser, events, start = SSEParser(), [], 0
    for cut in sorted(set(cuts)) + [len(data)]:
        events += parser.feed(data[start:cut])
        start = cut
    return events


def test_named_events_with_json_data():
    data = b'event: message_start\ndata: {"a": 1}\n\nevent: ping\ndata: {}\n\n'
    assert parse_sse(data) == [ServerSentEvent("message_start", '{"a": 1}'),
                               ServerSentEvent("ping", "{}")]


def test_every_line_ending_is_a_line_end():
    for end in (b"\n", b"\r\n", b"\r"):
        data = end.join([b"event: x", b"data: one", b"", b"data: two", b"", b""])
        assert parse_sse(data) == [ServerSentEvent("x", "one"), ServerSentEvent("message", "two")]


def test_comments_multiline_data_id_retry_and_no_space():
    data = b": keep-alive\nid: 7\nretry: 1500\ndata:first\ndata: second\n\n"
    assert parse_sse(data) == [ServerSentEvent("message", "first\nsecond", "7", 1500)]


def test_event_without_data_is_not_dispatched_and_name_resets():
    assert parse_sse(b"event: lonely\n\ndata: x\n\n") == [ServerSentEvent("message", "x")]


def test_unfinished_event_waits_for_its_blank_line():
    parser = SSEParser()
    assert parser.feed(b"event: a\ndata: 1\n") == []
    assert parser.feed(b"\n") == [ServerSentEvent("a", "1")]


def test_crlf_split_between_chunks_is_one_line_end():
    parser = SSEParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\n\r") == [ServerSentEvent("message", "a")]
    assert parser.feed(b"\ndata: b\r\n\r\n") == [ServerSentEvent("message", "b")]


def test_multibyte_character_split_across_chunks():
    data = 'data: héllo ✓ 🎉\n\n'.encode()
    events = _feed_in_pieces(data, range(1, len(data)))
    assert events == [ServerSentEvent("message", "héllo ✓ 🎉")]


def test_leading_byte_order_mark_is_ignored():
    assert parse_sse(b"\xef\xbb\xbfdata: x\n\n") == [ServerSentEvent("message", "x")]


_line = st.one_of(
    st.builds(lambda v: b"data: " + v.encode(), st.text(alphabet=st.characters(
        blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=20)),
    st.sampled_from([b"event: message_start", b"event: ping", b": comment", b"", b"id: 3"]),
)


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(_line, max_size=30), end=st.sampled_from([b"\n", b"\r\n", b"\r"]),
       cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=25))
def test_any_split_gives_the_same_events(lines, end, cuts):
    data = end.join(lines) + end + end
    whole = parse_sse(data)
    assert _feed_in_pieces(data, [c for c in cuts if c <= len(data)]) == whole
    one_by_one = _feed_in_pieces(data, range(len(data)))
    assert one_by_one == whole
