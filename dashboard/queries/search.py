"""Full-text search over the entries the writer indexed (common/recording/search_index.py).

Entry ids are time keys, so newest first is id order. A search asks the index for the
newest hour of ids first, then a window eight times wider, and so on back to `since`,
until it has `limit` requests: a common word is answered from the newest entries alone,
a rare one by a few cheap look-ups of a short posting list. SQLite's FTS5 walks its
posting lists in rowid order and applies the id range itself; PostgreSQL intersects the
GIN index with the primary key's range.
"""
import datetime

from peewee import fn

from common.models import ApiRequest, SearchEntry
from common.recording import bulk, compression, search_index, search_text

FIRST_WINDOW = datetime.timedelta(hours=1)
GROWTH = 8


def _key_span(delta):
    return int(delta / datetime.timedelta(microseconds=1)) * search_index.SLOTS


def _bounds(since, until):
    """The id range [low, high] to search, or None when the index is empty."""
    # Two queries: SQLite answers MIN or MAX alone from the key's b-tree, but scans the
    # table for both in one (86 ms at a million entries).
    low = SearchEntry.select(fn.MIN(SearchEntry.id)).scalar()
    high = SearchEntry.select(fn.MAX(SearchEntry.id)).scalar()
    if low is None:
        return None
    if since:
        low = max(low, search_index.time_key(since))
    if until:
        high = min(high, search_index.time_key(until) - 1)
    return (low, high) if low <= high else None


def _window_sql(database, domain, want):
    """The SQL of one window: entries matching, within an id range, newest first."""
    postgres = bulk.is_postgres(database)
    p = "%s" if postgres else "?"
    domain_sql = f" AND e.domain = {p}" if domain else ""
    join = ("FROM search_entries e JOIN api_requests r ON r.request_id = e.request_id")
    if postgres:
        # `id + 0`: ordering by the key itself tempts the planner to walk the primary key
        # backwards and test every row's tsvector, which for a rare word is the whole
        # window. Sorted by an expression, it uses the GIN index for a word it thinks
        # rare, the key range for one it thinks common: both cheap within a window.
        return (f"SELECT e.id, e.request_id, e.data, r.conversation_id, r.timestamp {join} "
                f"WHERE e.tsv @@ {p}::tsquery AND e.id BETWEEN {p} AND {p}{domain_sql} "
                f"ORDER BY e.id + 0 DESC LIMIT {int(want)}")
    return (f"SELECT e.id, e.request_id, e.data, r.conversation_id, r.timestamp "
            f"FROM search_fts f JOIN search_entries e ON e.id = f.rowid "
            f"JOIN api_requests r ON r.request_id = e.request_id "
            f"WHERE search_fts MATCH {p} AND f.rowid BETWEEN {p} AND {p}{domain_sql} "
            f"ORDER BY f.rowid DESC LIMIT {int(want)}")


def _match(database, words):
    if bulk.is_postgres(database):
        return " & ".join(f"'{w}'" for w in words)  # words are letters and digits only
    return " ".join(f'"{w}"' for w in words)


def search(words, limit=20, domain=None, since=None, until=None):
    """The newest `limit` requests whose indexed text has every word of `words`:
    [{"request_id", "conversation_id", "timestamp", "snippet"}], each request once."""
    words = search_text.query_words(" ".join(words))  # as the index holds them
    if not words:
        return []
    database = ApiRequest._meta.database
    bounds = _bounds(since, until)
    if bounds is None:
        return []
    low, high = bounds
    # The domain is a word of every entry (search_text.domain_word): the index intersects
    # it with the others, instead of the query checking each match's domain.
    match = _match(database, words + ([search_text.domain_word(domain)] if domain else []))
    found, seen = [], set()
    span = _key_span(FIRST_WINDOW)
    # Entries of one request may both match (its prompt and its answer): ask for spares.
    want = limit * 2 + 10
    sql = _window_sql(database, domain, want)
    start = max(low, high - span + 1)
    while high >= low and len(found) < limit:
        params = [match, start, high] + ([domain] if domain else [])
        rows = database.execute_sql(sql, params).fetchall()
        for _, request_id, data, conversation_id, when in rows:
            if request_id in seen or len(found) >= limit:
                continue
            seen.add(request_id)
            text = compression.unpack(data).decode("utf-8", "surrogatepass")
            found.append({"request_id": request_id, "conversation_id": conversation_id,
                          "timestamp": _as_datetime(when),
                          "snippet": search_text.snippet(text, words)})
        if len(rows) == want:  # the window holds more: go on below the last row
            high = rows[-1][0] - 1
            continue
        span *= GROWTH
        high, start = start - 1, max(low, start - span)
    return found


def _as_datetime(value):
    return datetime.datetime.fromisoformat(value) if isinstance(value, str) else value
