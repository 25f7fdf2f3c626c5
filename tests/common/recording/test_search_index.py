"""The search index the writer keeps: each user piece once, each answer, on both databases.

A Claude Code session goes through `save_records` as the writer saves it; the search
then runs with the dashboard's query (`dashboard.queries.search`).
"""
import datetime

from common import cli
from common import config as nexus_config
from common.models import ApiRequest, SearchEntry, utcnow
from common.pricing import load_prices
from common.recording import search_index
from common.recording.store import save_records
from common.retention import prune
from dashboard.queries.search import search
from tests import scenarios

CONFIG = nexus_config.load({})


def _session(start=None, seed=1, tag=""):
    """Five streamed turns: each with its own prompt word, tool result word, answer word."""
    s = scenarios.Session(seed=seed, start=start)
    main = s.agent()
    main.user(f"Please repair the gryphon{tag} parser")
    for turn in range(5):
        answer = s.message(scenarios.MAIN_MODEL, f"Looking at answerword{turn}{tag} now",
                           s.tool_use("Bash", command=f"grep inputword{turn}{tag} src"))
        s.turn(f"T{turn}", main, answer, None)
        main.results(f"resultword{turn}{tag}: 3 matches")
    return s


def _ids(words, **kw):
    return [r["request_id"] for r in search(words, **kw)]


def test_a_word_of_one_tool_result_or_one_answer_finds_exactly_that_request(database):
    s = _session()
    save_records(database, s.records, load_prices(), CONFIG)
    for turn in range(5):
        assert _ids([f"answerword{turn}"]) == [s.ids[f"T{turn}"]]   # its answer's text
        assert _ids([f"inputword{turn}"]) == [s.ids[f"T{turn}"]]    # its answer's tool input
    for turn in range(4):  # a result travels in the next request, and every later one
        assert _ids([f"resultword{turn}"]) == [s.ids[f"T{turn + 1}"]]
    assert _ids(["gryphon"]) == [s.ids["T0"]]                      # the prompt, first sent
    assert _ids(["Looking", "NOW"]) == [s.ids[f"T{t}"] for t in (4, 3, 2, 1, 0)]  # newest first
    assert _ids(["answerword1", "answerword2"]) == []  # all words in one piece of text


def test_history_is_indexed_once_not_with_every_turn(database):
    s = _session()
    save_records(database, s.records, load_prices(), CONFIG)
    # The prompt (with its reminder), four results, five answers: ten entries, although
    # the last request alone resends nine messages.
    assert SearchEntry.select().count() == 1 + 4 + 5
    assert {e.request_id for e in SearchEntry.select().where(SearchEntry.piece_id.is_null())} \
        == set(s.ids.values())


def test_snippets_mark_the_words_and_results_link_their_conversation(database):
    s = _session()
    save_records(database, s.records, load_prices(), CONFIG)
    [hit] = search(["resultword2"])
    assert hit["snippet"] == "<mark>resultword2</mark>: 3 matches"
    assert hit["conversation_id"] and hit["timestamp"] == s.records[3]["timestamp"]


def test_limit_domain_since_and_until(database):
    start = datetime.datetime(2026, 11, 20, 9, 0)
    a = _session(start=start, seed=1)
    b = _session(start=start + datetime.timedelta(hours=30), seed=2)
    for record in b.records:
        record["domain"] = "other.example"
    save_records(database, a.records + b.records, load_prices(), CONFIG)
    assert _ids(["looking"], limit=3) == [b.ids[f"T{t}"] for t in (4, 3, 2)]
    assert len(_ids(["looking"], limit=50)) == 10
    assert set(_ids(["looking"], domain="other.example")) == set(b.ids.values())
    assert set(_ids(["looking"], until=start + datetime.timedelta(hours=1))) == set(a.ids.values())
    assert set(_ids(["looking"], since=start + datetime.timedelta(hours=1))) == set(b.ids.values())
    assert _ids(["looking"], since=start + datetime.timedelta(days=5)) == []


def test_retention_removes_the_entries_of_what_it_prunes(database):
    now = utcnow()
    old = _session(start=now - datetime.timedelta(days=40), seed=1, tag="old")
    new = _session(start=now - datetime.timedelta(days=1), seed=2, tag="new")
    save_records(database, old.records + new.records, load_prices(), CONFIG)
    assert _ids(["answerword0old"]) == [old.ids["T0"]]
    prune(database, now - datetime.timedelta(days=30), batch_size=3)
    assert _ids(["answerword0old"]) == [] and _ids(["resultword1old"]) == []
    assert {e.request_id for e in SearchEntry.select()} <= set(new.ids.values())
    assert SearchEntry.select().count() == 10
    assert _ids(["resultword1new"]) == [new.ids["T2"]]


def test_rebuild_indexes_everything_again_alike(database, db_url, capsys):
    s = _session()
    save_records(database, s.records, load_prices(), CONFIG)
    before = {w: search([w]) for w in ("gryphon", "answerword3", "resultword0", "inputword4")}
    search_index.clear(database)
    assert _ids(["gryphon"]) == []
    assert cli.main(["search-index", "--rebuild"], environ={"DATABASE_URL": db_url}) == 0
    assert "search index rebuilt: 10 entries" in capsys.readouterr().out
    database.connect(reuse_if_open=True)
    assert {w: search([w]) for w in before} == before
    assert cli.main(["search-index"], environ={"DATABASE_URL": db_url}) == 0
    assert "search index: 0 entries added, 10 in all" in capsys.readouterr().out


def test_entries_of_the_same_microsecond_each_get_an_id(database):
    when = datetime.datetime(2026, 11, 20, 9, 0, 0, 123456)
    first = [search_index.Entry("x.example", f"req-{n}", when, None, f"capybara number{n}")
             for n in range(40)]
    for n in range(40):
        ApiRequest.create(request_id=f"req-{n}", method="POST", path="/v1/messages", timestamp=when)
    with database.atomic():
        assert search_index.add(database, first) == 40
    with database.atomic():  # the same ones again (a rebuild without clearing): new slots
        assert search_index.add(database, first[:5]) == 5
    ids = [e.id for e in SearchEntry.select()]
    assert len(set(ids)) == 45
    assert {i // search_index.SLOTS for i in ids} == {search_index.time_key(when) // search_index.SLOTS}
    assert len(search(["capybara"], limit=100)) == 40  # one per request
    assert [r["request_id"] for r in search(["number7"])] == ["req-7"]


def test_a_rebuild_indexes_only_what_has_no_entry(database):
    """What the writer indexes while a rebuild runs is not indexed twice."""
    s = _session()
    save_records(database, s.records, load_prices(), CONFIG)
    assert search_index.index_missing(database) == 0
    with database.atomic():
        search_index.remove(database, "request_id", [s.ids["T2"], s.ids["T3"]])
    assert SearchEntry.select().count() == 6 and _ids(["resultword1"]) == []
    assert search_index.index_missing(database) == 4
    assert SearchEntry.select().count() == 10
    assert _ids(["resultword1"]) == [s.ids["T2"]] and _ids(["answerword3"]) == [s.ids["T3"]]


def test_a_huge_tool_result_of_distinct_words_is_indexed_as_far_as_fits(database):
    """PostgreSQL refuses a tsvector over 1 MB; the record must still be saved."""
    s = scenarios.Session(seed=3)
    main = s.agent()
    main.user("dump the table")
    s.turn("T0", main, s.message(scenarios.MAIN_MODEL, "ok", s.tool_use("Bash", command="x")), None)
    # 3-byte characters: a million characters of distinct words are 1.3 MB of lexemes.
    main.results(" ".join(f"字字{n:06d}" for n in range(150_000)) + " needle")
    s.turn("T1", main, s.message(scenarios.MAIN_MODEL, "done"), None)
    assert save_records(database, s.records, load_prices(), CONFIG) == 2
    assert _ids(["字字000001"]) == [s.ids["T1"]]        # the start of the text is found
    assert _ids(["needle"]) == []                        # past what fits, it is not


def test_text_the_index_refuses_never_costs_the_records(database):
    database.execute_sql("ALTER TABLE search_entries RENAME TO search_entries_away")
    s = _session()
    assert save_records(database, s.records, load_prices(), CONFIG) == 5  # index errors
    database.execute_sql("ALTER TABLE search_entries_away RENAME TO search_entries")
    assert _ids(["answerword0"]) == []
    assert search_index.index_missing(database) == 10  # what `nexus search-index` catches up
    assert _ids(["answerword0"]) == [s.ids["T0"]]
