"""/search and /api/search on SQLite and PostgreSQL: results, filters, links, escaping."""
import re
from urllib.parse import urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .factories import make_request, minutes_ago

ANSWER = {"type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
          "content": [{"type": "text", "text": "The <img src=x onerror=alert(1)> tag is "
                                               "the culprit: okapi found it."}],
          "stop_reason": "end_turn", "usage": {"input_tokens": 1, "output_tokens": 1}}


def _prompted(text, minutes, **fields):
    body = {"model": "claude-sonnet-4-5", "max_tokens": 10,
            "messages": [{"role": "user", "content": text}]}
    return make_request(body=body, response=ANSWER, timestamp=minutes_ago(minutes), **fields)


def test_the_api_finds_prompts_and_answers_newest_first(client):
    old = _prompted("where is the okapi sanctuary", 30, conversation_id="c" * 36)
    new = _prompted("okapi again please", 5)
    data = client.get("/api/search?q=okapi").json
    assert [r["request_id"] for r in data["results"]] == [new, old]
    assert set(data["results"][0]) == {"request_id", "conversation_id", "timestamp", "snippet"}
    assert data["results"][1]["conversation_id"] == "c" * 36
    assert "<mark>okapi</mark>" in data["results"][0]["snippet"]
    assert [r["request_id"] for r in client.get("/api/search?q=sanctuary+OKAPI").json["results"]] == [old]
    assert len(client.get("/api/search?q=okapi&limit=1").json["results"]) == 1
    assert client.get("/api/search?q=okapi&since=10m").json["results"][0]["request_id"] == new
    assert [r["request_id"] for r in client.get("/api/search?q=okapi&until=10m").json["results"]] == [old]
    assert client.get("/api/search?q=okapi&domain=nowhere.example").json["results"] == []
    assert client.get("/api/search?q=").json == {"results": []}
    assert client.get("/api/search?q=unheardofword").json == {"results": []}


def test_bad_parameters_are_a_400(client):
    for query in ("q=x&limit=0", "q=x&limit=101", "q=x&since=2d&until=3d", "q=x&since=yesterday"):
        assert client.get(f"/api/search?{query}").status_code == 400, query


def test_search_needs_the_login(anon):
    assert anon.get("/api/search?q=x").status_code == 401
    assert anon.get("/search?q=x").status_code in (302, 303)


def test_the_page_links_results_and_marks_words_escaping_the_rest(client):
    rid = _prompted("find the okapi", 3, conversation_id="d" * 36)
    html = client.get("/search?q=okapi").get_data(as_text=True)
    assert 'role="search"' in html and 'name="q"' in html and 'value="okapi"' in html
    assert f'href="/requests/{rid}"' in html and f'href="/conversations/{"d" * 36}"' in html
    assert "<mark>okapi</mark>" in html
    html = client.get("/search?q=culprit").get_data(as_text=True)  # the answer's words
    assert "<mark>culprit</mark>" in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert client.get("/search?q=okapi&format=json").json["results"][0]["request_id"] == rid


def test_search_is_in_the_navigation_of_every_page(client):
    for path in ("/", "/requests", "/search"):
        nav = re.search(r"<nav>(.*?)</nav>", client.get(path).get_data(as_text=True), re.S)[1]
        assert 'href="/search"' in nav, path


WORDS = st.one_of(st.text(max_size=30), st.sampled_from(
    ['"', "'", "*", "NEAR(a b)", "a AND b", "NOT", "-x", "^x", "x:y", "\\", "&|!", "(a", "ǅx",
     "İstanbul", "𝔘𝔫𝔦", "٣٤", "a" * 70, "é" * 3, "%", "_"]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(("/search", "/api/search")),
       args=st.dictionaries(st.sampled_from(("q", "domain", "since", "until", "limit")), WORDS,
                            max_size=4))
def test_whatever_is_typed_is_a_page_or_a_400(client, route, args):
    response = client.get(f"{route}?{urlencode(args)}")
    assert response.status_code in (200, 400), (route, args, response.get_data()[:300])
