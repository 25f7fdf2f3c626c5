"""Bodies in the database: pieces stored once, a recipe per request, the response whole.

Write side (the writer process, inside `store.save_records`' transaction):
`BodyWriter.save` stores the pieces a batch's request bodies refer to that the
domain does not hold yet, refreshes `last_seen` on the ones it reuses, and writes
one `api_request_bodies` row per request: the recipe (`{"body": [...], "headers": id}`:
a client's request headers hardly change within a session, so they are a piece too,
without Content-Length, which `request_size` holds), the response, its headers. It remembers which pieces exist
(`PieceIds`), so that a resent history costs no query at all; what it learned is
kept only once the transaction commits (`commit`).

Read side (dashboard, relink, export): `load` puts request bodies back together,
byte for byte, and unpacks responses.
"""
import datetime
import json
from collections import OrderedDict
from dataclasses import dataclass


from ..models import BodyPiece, BodyStorageDaily, RequestBody
from . import bulk, compression, pieces, search_index

# A piece's last_seen is refreshed only when it is older than this: retention keeps a
# piece while last_seen >= cutoff - PIECE_TOUCH, which covers every request using it.
PIECE_TOUCH = datetime.timedelta(hours=1)
CHUNK = 500


@dataclass
class Body:
    """What a request keeps: its split body (or None), its answer's bytes, its headers."""

    request_id: str
    domain: str
    timestamp: datetime.datetime
    split: object            # pieces.SplitBody or None (body not kept)
    request_size: int
    response: bytes | None
    request_headers: dict    # already redacted (proxy.wire.make_record)
    response_headers: dict
    answer: dict | None = None  # the assistant message, when derive() rebuilt it already

    def headers_piece(self):
        """The request headers as a piece (sorted, without Content-Length)."""
        kept = {k: v for k, v in self.request_headers.items() if k.lower() != "content-length"}
        return pieces.Piece(json.dumps(kept, sort_keys=True, ensure_ascii=False,
                                       separators=(",", ":")).encode(), "headers")


class PieceIds:
    """(domain, digest) -> [piece id, last_seen], for pieces known to be stored; bounded."""

    def __init__(self, max_entries=500_000):
        self.max_entries = max_entries
        self._ids = OrderedDict()

    def get(self, key):
        entry = self._ids.get(key)
        if entry is not None:
            self._ids.move_to_end(key)
        return entry

    def put(self, key, piece_id, last_seen):
        entry = self._ids.get(key)
        if entry is None:
            self._ids[key] = [piece_id, last_seen]
            if len(self._ids) > self.max_entries:
                self._ids.popitem(last=False)
        elif last_seen > entry[1]:
            entry[0], entry[1] = piece_id, last_seen

    def forget(self, keys):
        for key in keys:
            self._ids.pop(key, None)

    def __len__(self):
        return len(self._ids)


class BodyWriter:
    """Stores a batch's bodies; one per writer process (it remembers stored pieces)."""

    def __init__(self, known=None):
        self.known = known if known is not None else PieceIds()
        self._learned = []
        self._sizes = []
        self._new_pieces = []  # (piece, first body, id) this transaction stored
        self.received = self.stored = 0   # bytes saved so far (committed), for the metrics

    def save(self, database, bodies):
        """Store `bodies` (a list of Body) inside the caller's transaction; return
        {request_id: (bytes received, bytes stored)}."""
        rows, sizes = self.rows(database, bodies)
        bulk.insert(database, RequestBody, rows, ignore=True, chunk=100)
        add_daily(database, bodies, sizes)
        # The search index, in the same transaction: the text of pieces stored for the
        # first time just now, and the answers (docs/search.md).
        search_index.add_safely(database, search_index.entries_of(bodies, self._new_pieces))
        self._new_pieces = []
        self._sizes = list(sizes.values())
        return sizes

    def rows(self, database, bodies):
        """Store the pieces `bodies` need; return their api_request_bodies rows and
        {request_id: (bytes received, bytes stored)}."""
        headers = {body.request_id: body.headers_piece() for body in bodies}
        ids, added = self._pieces(database, bodies, headers)
        rows, sizes = [], {}
        for body in bodies:
            items = pieces.recipe_json(body.split, ids) if body.split is not None else "null"
            recipe = compression.pack(
                f'{{"body":{items},"headers":{ids[headers[body.request_id].digest]}}}'.encode())
            response = compression.pack(body.response) if body.response is not None else None
            response_headers = compression.pack(json.dumps(body.response_headers).encode())
            received = body.request_size + len(body.response or b"")
            stored = (len(recipe) + len(response or b"") + len(response_headers)
                      + added.get(body.request_id, 0))
            sizes[body.request_id] = (received, stored)
            rows.append({"request_id": body.request_id, "request_recipe": recipe,
                         "request_size": body.request_size if body.split is not None else None,
                         "response_data": response,
                         "response_size": len(body.response) if body.response is not None else None,
                         "response_headers_data": response_headers})
        return rows, sizes

    def commit(self):
        """The transaction committed: remember the pieces it stored or refreshed."""
        for key, piece_id, last_seen in self._learned:
            self.known.put(key, piece_id, last_seen)
        self.received += sum(received for received, _ in self._sizes)
        self.stored += sum(stored for _, stored in self._sizes)
        self._learned, self._sizes = [], []

    def rollback(self):
        """The transaction failed: forget what it would have taught."""
        self._learned, self._sizes, self._new_pieces = [], [], []

    # -- pieces --------------------------------------------------------------------
    def _pieces(self, database, bodies, headers):
        """({digest: id} of every piece the bodies use, {request_id: bytes it added})."""
        wanted = {}  # (domain, digest) -> (piece, the first body that uses it)
        for body in bodies:
            used = body.split.pieces() if body.split is not None else []
            for piece in [*used, headers[body.request_id]]:
                wanted.setdefault((body.domain, piece.digest), (piece, body))
        latest = _latest(bodies)
        ids, learned, stale, missing = {}, {}, [], []
        for key in wanted:
            entry = self.known.get(key)
            if entry is None:
                missing.append(key)
                continue
            ids[key] = entry[0]
            if entry[1] < latest[key[0]] - PIECE_TOUCH:
                stale.append(key)
        if missing:
            found = _lookup(database, missing)
            for key, (piece_id, seen) in found.items():
                ids[key] = piece_id
                learned[key] = (piece_id, seen)
                if seen < latest[key[0]] - PIECE_TOUCH:
                    stale.append(key)
            missing = [key for key in missing if key not in found]
        for key in self._touch(stale, ids, latest):
            if key in ids:
                learned[key] = (ids[key], latest[key[0]])
            else:
                missing.append(key)  # retention removed it meanwhile: store it again
        added = self._insert(database, missing, wanted, ids, latest)
        for key in missing:
            learned[key] = (ids[key], latest[key[0]])
        self._learned = [(key, piece_id, seen) for key, (piece_id, seen) in learned.items()]
        return {key[1]: piece_id for key, piece_id in ids.items()}, added

    def _touch(self, stale, ids, latest):
        """Refresh last_seen of `stale` pieces; return them, dropped from `ids` if gone."""
        by_domain = {}
        for key in stale:
            by_domain.setdefault(key[0], []).append(key)
        for domain, keys in by_domain.items():
            when = latest[domain]
            for chunk in _chunks(keys):
                piece_ids = [ids[key] for key in chunk]
                (BodyPiece.update(last_seen=when)
                 .where(BodyPiece.id.in_(piece_ids), BodyPiece.last_seen < when).execute())
                present = {i for (i,) in BodyPiece.select(BodyPiece.id)
                           .where(BodyPiece.id.in_(piece_ids)).tuples()}
                for key in chunk:
                    if ids[key] not in present:
                        del ids[key]
                        self.known.forget([key])
        return stale

    def _insert(self, database, keys, wanted, ids, latest):
        """Insert new pieces; return {request_id: stored bytes of the pieces it added}."""
        rows, added = [], {}
        for key in keys:
            piece, body = wanted[key]
            data = compression.pack(piece.data)
            rows.append({"domain": key[0], "digest": piece.digest, "kind": piece.kind,
                         "size": len(piece.data), "stored": len(data), "data": data,
                         "first_request_id": body.request_id, "created_at": body.timestamp,
                         "last_seen": latest[key[0]]})
            added[body.request_id] = added.get(body.request_id, 0) + len(data)
        inserted = bulk.insert(database, BodyPiece, rows, ignore=True, chunk=100,
                               returning="id")
        # Another writer may have stored some of them first (ignored above): read the ids.
        for key, (piece_id, _) in _lookup(database, keys).items():
            ids[key] = piece_id
        # Ours are the ones inserted (PostgreSQL says which; SQLite's write lock, taken
        # before the lookup, kept other writers out). The other writer indexes its own.
        self._new_pieces = [(wanted[key][0], wanted[key][1], ids[key]) for key in keys
                            if key in ids and (inserted is None or ids[key] in inserted)]
        return added


def _latest(bodies):
    latest = {}
    for body in bodies:
        if body.timestamp > latest.get(body.domain, datetime.datetime.min):
            latest[body.domain] = body.timestamp
    return latest


def _chunks(items, size=CHUNK):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _lookup(database, keys):
    """{(domain, digest): (id, last_seen)} of the stored pieces among `keys`."""
    found, by_domain = {}, {}
    for domain, digest in keys:
        by_domain.setdefault(domain, []).append(digest)
    for domain, digests in by_domain.items():
        for chunk in _chunks(digests):
            query = (BodyPiece.select(BodyPiece.id, BodyPiece.digest, BodyPiece.last_seen)
                     .where(BodyPiece.domain == domain, BodyPiece.digest.in_(chunk)).tuples())
            for piece_id, digest, last_seen in query:
                found[(domain, digest)] = (piece_id, _as_datetime(last_seen))
    return found


def _as_datetime(value):
    return datetime.datetime.fromisoformat(value) if isinstance(value, str) else value


def add_daily(database, bodies, sizes):
    """Add what `bodies` received and stored to their days in body_storage_daily."""
    totals = {}
    for body in bodies:
        received, stored = sizes[body.request_id]
        key = (body.timestamp.date(), body.domain)
        entry = totals.setdefault(key, [0, 0, 0])
        entry[0] += 1
        entry[1] += received
        entry[2] += stored
    rows = [{"day": day, "domain": domain, "requests": n, "received_bytes": received,
             "stored_bytes": stored} for (day, domain), (n, received, stored) in totals.items()]
    bulk.insert(database, BodyStorageDaily, rows,
                upsert=(("day", "domain"), ("requests", "received_bytes", "stored_bytes")))


# --- reading -------------------------------------------------------------------------

@dataclass
class Stored:
    """A request's stored bodies, as bytes (None where not kept)."""

    request: bytes | None
    response: bytes | None
    request_headers: str | None
    response_headers: str | None
    exact: bool  # False for a row from before pieces (its text lost invalid bytes)
    raw_response: bool  # the response as the client received it (False: legacy, rebuilt JSON)

    def answer(self, stream):
        """The assistant message of the response, or None."""
        from .rows import parse_json, response_message
        if self.response is None:
            return None
        if self.raw_response:
            return response_message({"response_body": self.response, "stream": stream})[0]
        message = parse_json(self.response)
        return message if isinstance(message, dict) and message.get("type") == "message" else None


class PieceCache:
    """Unpacked pieces by id, bounded in bytes: relink and export read many bodies."""

    def __init__(self, max_bytes=64 * 2**20):
        self.max_bytes, self.size = max_bytes, 0
        self._data = OrderedDict()

    def get_many(self, piece_ids):
        found, missing = {}, []
        for piece_id in piece_ids:
            data = self._data.get(piece_id)
            if data is None:
                missing.append(piece_id)
            else:
                found[piece_id] = data
        for chunk in _chunks(sorted(set(missing))):
            query = BodyPiece.select(BodyPiece.id, BodyPiece.data).where(BodyPiece.id.in_(chunk))
            for piece_id, blob in query.tuples():
                found[piece_id] = self._put(piece_id, compression.unpack(blob))
        return found

    def _put(self, piece_id, data):
        if len(data) <= self.max_bytes:
            self._data[piece_id] = data
            self.size += len(data)
            while self.size > self.max_bytes:
                _, old = self._data.popitem(last=False)
                self.size -= len(old)
        return data


_FIELDS = (RequestBody.request_id, RequestBody.request_recipe, RequestBody.request_body,
           RequestBody.response_data, RequestBody.response_body, RequestBody.request_headers,
           RequestBody.response_headers, RequestBody.response_headers_data)


def load(request_ids, cache=None):
    """{request_id: Stored} for the requests among `request_ids` that kept a body row."""
    cache = cache if cache is not None else PieceCache(max_bytes=16 * 2**20)
    rows = []
    for chunk in _chunks(list(request_ids)):
        rows += list(RequestBody.select(*_FIELDS).where(RequestBody.request_id.in_(chunk)).tuples())
    recipes = {rid: json.loads(compression.unpack(recipe))
               for rid, recipe, *_ in rows if recipe is not None}
    wanted = [i for recipe in recipes.values()
              for i in pieces.recipe_ids(recipe["body"] or []) + [recipe["headers"]]]
    data = cache.get_many(wanted)
    out = {}
    for rid, recipe, legacy_request, response, legacy_response, req_h, resp_h, resp_h_data in rows:
        recipe = recipes.get(rid)
        if recipe is not None:
            req_h = data[recipe["headers"]].decode("utf-8")
        if recipe is not None and recipe["body"] is not None:
            request, exact = pieces.assemble(recipe["body"], data), True
        elif legacy_request is not None:  # stored as text: bytes that were not UTF-8 are lost
            request, exact = legacy_request.encode("utf-8"), False
        else:
            request, exact = None, True
        if response is not None:
            answer = compression.unpack(response)
        else:
            answer = legacy_response.encode("utf-8") if legacy_response is not None else None
        if resp_h_data is not None:
            resp_h = compression.unpack(resp_h_data).decode("utf-8")
        out[rid] = Stored(request, answer, req_h, resp_h, exact, response is not None)
    return out


def load_one(request_id):
    """The Stored bodies of one request, or None when none were kept."""
    return load([request_id]).get(request_id)
