"""The search index's write side: entries added by the writer, removed by retention,
rebuilt by `nexus search-index --rebuild` (docs/search.md, ADR 0120).

An entry is a piece of text people read (`search_text`): a user message piece, indexed
once when the piece is first stored (so a conversation's history is not indexed again
with every turn) under the request that first carried it; or a request's answer. Its
words go into FTS5's `search_fts` (SQLite) or the `tsv` column (PostgreSQL), its text,
compressed, into `search_entries.data` for the snippet.

Entry ids are time keys: the request's timestamp in microseconds since 1970 times SLOTS,
plus a slot (a hash of the entry, probed on a clash). The newest entries are the highest
ids, so a search walks one index newest first and stops when it has enough, and since
and until are id ranges.
"""
import datetime
import hashlib
import logging

from ..models import ApiRequest, BodyPiece, RequestBody, SearchEntry
from . import bulk, compression, search_text

log = logging.getLogger("nexus.search")

SLOTS = 1024
PROBES = 32
EPOCH = datetime.datetime(1970, 1, 1)
_MICROSECOND = datetime.timedelta(microseconds=1)


def time_key(when):
    """The lowest entry id at `when` (a naive UTC datetime, or its ISO text)."""
    if isinstance(when, str):
        when = datetime.datetime.fromisoformat(when)
    return ((when - EPOCH) // _MICROSECOND) * SLOTS


def _slot(request_id, piece_id):
    digest = hashlib.blake2b(f"{request_id}/{piece_id}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") % SLOTS


class Entry:
    """Text to index: where it was found, and the text."""

    __slots__ = ("domain", "request_id", "timestamp", "piece_id", "text")

    def __init__(self, domain, request_id, timestamp, piece_id, text):
        self.domain, self.request_id, self.timestamp = domain, request_id, timestamp
        self.piece_id, self.text = piece_id, text


def answer_of(body):
    """The assistant message of a Body's response (derived already, or parsed here)."""
    if getattr(body, "answer", None) is not None:
        return body.answer
    from .rows import response_message
    data = body.response
    if not data:
        return None
    stream = data.lstrip()[:6] in (b"event:", b"data: ")
    return response_message({"response_body": data, "stream": stream})[0]


def entries_of(bodies, new_pieces):
    """Entries for a batch: the answers of `bodies`, and the user text of the pieces
    first stored now (`new_pieces`: (piece, the first Body using it, piece id))."""
    out = []
    for piece, body, piece_id in new_pieces:
        text = search_text.piece_text(piece.kind, piece.data)
        if text:
            out.append(Entry(body.domain, body.request_id, body.timestamp, piece_id, text))
    for body in bodies:
        text = search_text.answer_text(answer_of(body))
        if text:
            out.append(Entry(body.domain, body.request_id, body.timestamp, None, text))
    return out


def add(database, entries):
    """Index `entries` inside the caller's transaction; return how many were added.

    Ids are chosen free of the ones stored (one look-up for the batch), then the batch
    goes in a statement per 100 entries. On PostgreSQL another writer may take an id in
    between (same microsecond, same slot): those entries go in one by one, probing."""
    rows = []
    for entry in entries:
        words = search_text.entry_words(entry.text, entry.domain)
        if words:
            rows.append((entry, words, compression.pack(entry.text.encode("utf-8", "surrogatepass"))))
    if not rows:
        return 0
    ids = _free_ids(database, [(time_key(e.timestamp), _slot(e.request_id, e.piece_id))
                               for e, _, _ in rows])
    postgres = bulk.is_postgres(database)
    added = 0
    for start in range(0, len(rows), 100):
        chunk = list(zip(ids[start:start + 100], rows[start:start + 100]))
        inserted = _insert_many(database, postgres, chunk)
        added += len(inserted)
        for entry_id, (entry, words, data) in chunk:
            if entry_id not in inserted:
                added += _insert_probing(database, postgres, entry, words, data)
    return added


def add_safely(database, entries):
    """`add` in a savepoint: text the index cannot take costs its entries, never the
    records saved with them (the writer would take a database error for an outage and
    spool the batch, again and again)."""
    try:
        with database.atomic():
            return add(database, entries)
    except Exception as exc:
        # A lost connection fails the caller's next statement too, and is handled there
        # as an outage; anything else is these texts' problem only.
        log.error("search entries of %d texts not indexed: %r", len(entries), exc)
        return 0


def _free_ids(database, wanted):
    """An unused id for each (time key, slot), probing past stored and batch ids."""
    checked, taken = set(), set()
    while True:
        out, used = [], set()
        for key, slot in wanted:
            for probe in range(SLOTS):
                entry_id = key + (slot + probe) % SLOTS
                if entry_id not in taken and entry_id not in used:
                    break
            used.add(entry_id)
            out.append(entry_id)
        unchecked = used - checked
        if not unchecked:
            return out
        taken |= _stored(database, unchecked)
        checked |= unchecked


def _stored(database, ids):
    found = set()
    ids = list(ids)
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        marks = ", ".join([bulk._real(database).param] * len(chunk))
        found.update(i for (i,) in database.execute_sql(
            f"SELECT id FROM search_entries WHERE id IN ({marks})", chunk))
    return found


def _insert_many(database, postgres, chunk):
    """Insert [(id, (entry, words, data))]; return the ids inserted."""
    columns = "id, domain, request_id, piece_id, data"
    values = [v for entry_id, (e, words, data) in chunk
              for v in (entry_id, e.domain, e.request_id, e.piece_id, data)
              + ((words,) if postgres else ())]
    if postgres:
        one = "(%s, %s, %s, %s, %s, array_to_tsvector(%s::text[]))"
        sql = (f"INSERT INTO search_entries ({columns}, tsv) VALUES "
               f"{', '.join([one] * len(chunk))} ON CONFLICT DO NOTHING RETURNING id")
        return {i for (i,) in database.execute_sql(sql, values).fetchall()}
    # SQLite: the writer's transaction holds the write lock, and the ids were free.
    database.execute_sql(f"INSERT INTO search_entries ({columns}) VALUES "
                         + ", ".join(["(?, ?, ?, ?, ?)"] * len(chunk)), values)
    database.execute_sql("INSERT INTO search_fts (rowid, words) VALUES "
                         + ", ".join(["(?, ?)"] * len(chunk)),
                         [v for entry_id, (_, words, _) in chunk for v in (entry_id, " ".join(words))])
    return {entry_id for entry_id, _ in chunk}


def _insert_probing(database, postgres, entry, words, data):
    """Insert one entry at the first free slot from its own; 1 if it went in."""
    key, slot = time_key(entry.timestamp), _slot(entry.request_id, entry.piece_id)
    for probe in range(PROBES):
        entry_id = key + (slot + probe) % SLOTS
        if _insert_many(database, postgres, [(entry_id, (entry, words, data))]):
            return 1
    log.warning("no free search slot for request %s", entry.request_id)
    return 0


def remove(database, column, values):
    """Delete the entries whose `column` (request_id or piece_id) is among `values`."""
    values = list(values)
    postgres = bulk.is_postgres(database)
    for start in range(0, len(values), 500):
        chunk = values[start:start + 500]
        marks = ", ".join([bulk._real(database).param] * len(chunk))
        where = f"{column} IN ({marks})"
        if not postgres:
            # A contentless FTS5 table forgets a row when told the words it was given.
            rows = database.execute_sql(f"SELECT id, data, domain FROM search_entries "
                                        f"WHERE {where}", chunk).fetchall()
            for entry_id, data, domain in rows:
                text = compression.unpack(data).decode("utf-8", "surrogatepass")
                database.execute_sql("INSERT INTO search_fts (search_fts, rowid, words) "
                                     "VALUES ('delete', ?, ?)",
                                     (entry_id, " ".join(search_text.entry_words(text, domain))))
        database.execute_sql(f"DELETE FROM search_entries WHERE {where}", chunk)


def clear(database):
    """Remove every entry (before a rebuild)."""
    database.execute_sql("DELETE FROM search_entries")
    if not bulk.is_postgres(database):
        database.execute_sql("INSERT INTO search_fts (search_fts) VALUES ('delete-all')")


def _pieces_batch(after, size):
    """Message pieces with the timestamp of the request that first carried them."""
    return list(BodyPiece.select(BodyPiece.id, BodyPiece.kind, BodyPiece.data, BodyPiece.domain,
                                 BodyPiece.first_request_id, ApiRequest.timestamp)
                .join(ApiRequest, on=(ApiRequest.request_id == BodyPiece.first_request_id))
                .where(BodyPiece.id > after, BodyPiece.kind == "message")
                .order_by(BodyPiece.id).limit(size).tuples())


def _indexed(column, values):
    """The values of `column` (piece_id or request_id of an answer) that have entries:
    the writer indexes what arrives while a rebuild runs."""
    query = SearchEntry.select(getattr(SearchEntry, column)).where(
        getattr(SearchEntry, column).in_(values))
    if column == "request_id":
        query = query.where(SearchEntry.piece_id.is_null())
    return {v for (v,) in query.tuples()}


def _answers_batch(after, size):
    """Requests with a kept response, in id order."""
    return list(ApiRequest.select(ApiRequest.id, ApiRequest.request_id, ApiRequest.domain,
                                  ApiRequest.timestamp, ApiRequest.stream,
                                  RequestBody.response_data, RequestBody.response_body)
                .join(RequestBody, on=(RequestBody.request_id == ApiRequest.request_id))
                .where(ApiRequest.id > after)
                .order_by(ApiRequest.id).limit(size).tuples())


def _answer(stream, data, legacy):
    from .rows import parse_json, response_message
    if data is not None:
        return response_message({"response_body": compression.unpack(data), "stream": stream})[0]
    message = parse_json(legacy)  # before pieces: a stream's rebuilt message, as JSON text
    return message if isinstance(message, dict) and message.get("type") == "message" else None


def rebuild(database, batch_size=500, progress=None):
    """Index every stored piece and answer again; return the number of entries."""
    with database.atomic():
        clear(database)
    return index_missing(database, batch_size, progress)


def index_missing(database, batch_size=500, progress=None):
    """Index the stored pieces and answers that have no entry; return how many were added."""
    total, after = 0, 0
    while batch := _pieces_batch(after, batch_size):
        done = _indexed("piece_id", [row[0] for row in batch])
        entries = [Entry(domain, rid, ts, pid, search_text.piece_text(kind, compression.unpack(blob)))
                   for pid, kind, blob, domain, rid, ts in batch if pid not in done]
        with database.atomic():
            total += add(database, [e for e in entries if e.text])
        after = batch[-1][0]
        if progress:
            progress(total)
    after = 0
    while batch := _answers_batch(after, batch_size):
        done = _indexed("request_id", [row[1] for row in batch])
        entries = [Entry(domain, rid, ts, None,
                         search_text.answer_text(_answer(stream, data, legacy)))
                   for _, rid, domain, ts, stream, data, legacy in batch if rid not in done]
        with database.atomic():
            total += add(database, [e for e in entries if e.text])
        after = batch[-1][0]
        if progress:
            progress(total)
    return total


def cmd_search_index(args, config):
    """`nexus search-index`: index what has no entry yet; with --rebuild, everything again."""
    from ..db import connect
    database = connect(config.database_url)
    progress = lambda n: print(f"entries indexed: {n}", end="\r")  # noqa: E731
    try:
        if args.rebuild:
            print(f"search index rebuilt: {rebuild(database, args.batch_size, progress)} entries")
        else:
            added = index_missing(database, args.batch_size, progress)
            count = database.execute_sql("SELECT COUNT(*) FROM search_entries").fetchone()[0]
            print(f"search index: {added} entries added, {count} in all")
    finally:
        database.close()
    return 0
