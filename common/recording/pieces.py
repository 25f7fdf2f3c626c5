"""Request bodies cut at their natural seams into pieces that are stored once: pure.

Claude Code resends its whole conversation with every request. `split_body` walks a
JSON body once and cuts out each element of `system`, `tools` and `messages`: those
are the *pieces*, stored once per domain under the sha256 of their bytes. What lies
between them (the envelope: `{"model":…,"messages":[`, the commas, `max_tokens`, …)
stays literal. `assemble` puts a body back together, byte for byte.

Claude Code moves its `cache_control` breakpoint to the newest message each turn, so
the message that had it is resent without it. A piece therefore holds an element with
its `cache_control` members cut out; the cuts (offset, text) travel with the request,
and the piece is the same before and after the breakpoint moves.

An `ElementCache` remembers elements already met, so that a resent history is matched
by comparing text (`str.startswith`) instead of parsing it again: the next element is
usually the one that followed the previous element last time (`successors`).

A body that is not a JSON object, or not valid UTF-8, is one piece of kind `body`.
"""
import hashlib
import json
import re
from collections import OrderedDict
from collections.abc import Sequence

# The arrays whose elements become pieces, and the kind each piece is stored as.
ARRAYS = {"system": "system", "tools": "tool", "messages": "message"}
KEY_BYTES = 64          # an element's first bytes: where a lookup starts
MAX_CANDIDATES = 64     # elements a key lookup tries (the most recent); successors find the rest
MAX_SUCCESSORS = 4
MAX_RUNS = 4            # arrays remembered per first element (sessions may open alike)
MIN_RUN = 8             # shorter arrays are matched element by element
WINDOW = 512            # bytes decoded first to parse a value the cache does not know
_SPACE = re.compile(rb"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
# `,"cache_control":{…}` (or `"cache_control":{…},` as an object's first member). A quote
# that is not escaped cannot occur inside a JSON string, so outside pathological keys
# this only ever matches a real member; the cut is exact whatever it matches anyway.
_CACHE_CONTROL = re.compile(
    rb'[ \t\n\r]*,[ \t\n\r]*"cache_control"[ \t\n\r]*:[ \t\n\r]*\{[^{}]*\}'
    rb'|(?<=\{)[ \t\n\r]*"cache_control"[ \t\n\r]*:[ \t\n\r]*\{[^{}]*\}[ \t\n\r]*,[ \t\n\r]*')


class Piece:
    """One stored unit: its bytes, their sha256, and what kind of element it is."""

    __slots__ = ("data", "digest", "kind")

    def __init__(self, data, kind):
        self.data = data
        self.kind = kind
        self.digest = hashlib.sha256(data).hexdigest()

    def __repr__(self):
        return f"Piece({self.kind}, {len(self.data)} bytes, {self.digest[:12]})"

    def __reduce__(self):
        return _piece, (self.data, self.kind, self.digest)


def _piece(data, kind, digest):
    piece = Piece.__new__(Piece)
    piece.data, piece.kind, piece.digest = data, kind, digest
    return piece


class Element:
    """An element as sent (its JSON bytes), the piece it is stored as, and the cuts."""

    __slots__ = ("sent", "key", "piece", "cuts", "successors", "alive", "runs")

    def __init__(self, sent, kind):
        self.sent = sent
        self.key = sent[:KEY_BYTES]
        self.cuts, kept = cut_cache_control(sent)
        self.piece = Piece(kept, kind)
        self.successors = []
        self.alive = True
        self.runs = ()  # arrays that began with this element last time (Run)

    def run_at(self, data, index):
        """The remembered array beginning with this element that `data` repeats at `index`."""
        for run in self.runs:
            if data.startswith(run.data, index):
                return run
        return None

    def parsed(self):
        """The element's JSON value."""
        return json.loads(self.sent)

    def __reduce__(self):
        # Pickled alone (bench.seed derives in other processes): not the cache's links.
        return _element, (self.sent, self.key, self.piece, self.cuts)


def _element(sent, key, piece, cuts):
    element = Element.__new__(Element)
    element.sent, element.key, element.piece, element.cuts = sent, key, piece, cuts
    element.successors, element.alive, element.runs = [], False, ()
    return element


def cut_cache_control(sent):
    """(cuts, kept): `sent` without its cache_control members, and the (offset in the
    kept bytes, removed text) pairs that put them back."""
    if b'"cache_control"' not in sent:
        return (), sent
    cuts, parts, last, offset = [], [], 0, 0
    for match in _CACHE_CONTROL.finditer(sent):
        part = sent[last:match.start()]
        parts.append(part)
        offset += len(part)
        cuts.append((offset, match.group().decode("ascii")))
        last = match.end()
    if not cuts:
        return (), sent
    parts.append(sent[last:])
    return tuple(cuts), b"".join(parts)


class Run:
    """An array's elements as sent last time, up to the first that carried a breakpoint
    (which will be resent without it): its bytes, segments, and where each element ends.

    A body that repeats a run holds the run as one segment, so that what is done per
    element (listing pieces, writing the recipe) is done once per run and remembered.
    """

    __slots__ = ("data", "segments", "elements", "ends", "marks", "pieces", "_tail",
                 "__weakref__")

    def __init__(self, data, segments, elements, ends, marks):
        self.data, self.segments, self.elements = data, segments, elements
        self.ends, self.marks = ends, marks
        self.pieces = tuple(e.piece for e in elements)
        self._tail = None  # (piece ids, JSON of the recipe items after the first piece)

    def recipe_tail(self, piece_ids):
        """The recipe items after the run's first piece, as JSON text (remembered)."""
        if self._tail is not None and self._tail[0] == piece_ids:
            return self._tail[1]
        chunks, last, ids = [], piece_ids[0], iter(piece_ids[1:])
        for segment in self.segments[1:]:
            if isinstance(segment, str):
                chunks.append(_string(segment))
            else:
                piece_id = next(ids)
                chunks.append(str(piece_id - last))
                last = piece_id
        tail = ",".join(chunks)
        self._tail = (piece_ids, tail)
        return tail


class ElementCache:
    """Elements met before, bounded by the bytes they hold (least recently used go)."""

    def __init__(self, max_bytes=32 * 2**20):
        self.max_bytes = max_bytes
        self.size = 0
        self._by_key = {}            # (kind, first KEY_BYTES bytes) -> [Element], newest first
        self._lru = OrderedDict()    # id(element) -> element

    def find(self, kind, data, index):
        """The known element that `data` holds at `index` (by its first bytes), or None."""
        for element in self._by_key.get((kind, data[index:index + KEY_BYTES]), ()):
            if data.startswith(element.sent, index):
                return element
        return None

    def touch(self, element):
        """Mark `element` as just used (it is evicted last)."""
        self._lru.move_to_end(id(element))

    def remember_run(self, elements, data, start, ends, flat, used=None):
        """Remember an array's elements, up to the first with cuts, under its first element
        (`used`: the run it was matched with, if any). `flat()` gives the array's segments
        from its first element on, flat, and how many of them come up to each element."""
        count = len(elements)
        for position in range(len(used.elements) if used is not None else 0, count):
            if elements[position].cuts:
                count = position
                break
        first = elements[0]
        if count < MIN_RUN or not first.alive or (used is not None and count <= len(used.elements)):
            return
        # A view of the request's bytes, not a copy: the run keeps that body alive instead.
        run_data = memoryview(data)[start:ends[count - 1]]
        segments, marks = flat()
        run = Run(run_data, segments[:marks[count - 1]], elements[:count],
                  [end - start for end in ends[:count]], marks[:count])
        dropped = [r for r in first.runs if r is used] or list(first.runs[MAX_RUNS - 1:])
        first.runs = (run, *(r for r in first.runs if r not in dropped))
        self.size += len(run_data) - sum(len(r.data) for r in dropped)
        self._evict()

    def add(self, kind, element):
        """Remember a new element; when it had cuts, also the element as it will be resent
        without them (returned, so that the caller can note it as a successor too)."""
        self._insert(kind, element)
        if element.cuts:
            bare = Element(element.piece.data, kind)
            if bare.piece.digest == element.piece.digest:
                self._insert(kind, bare)
                return bare
        return None

    def _insert(self, kind, element):
        candidates = self._by_key.setdefault((kind, element.key), [])
        candidates.insert(0, element)
        del candidates[MAX_CANDIDATES:]
        self._lru[id(element)] = element
        self.size += len(element.sent) + len(element.piece.data)
        self._evict()

    def _evict(self):
        while self.size > self.max_bytes and self._lru:
            _, old = self._lru.popitem(last=False)
            self._drop(old)

    def _drop(self, element):
        element.alive = False
        key = (element.piece.kind, element.key)
        candidates = self._by_key.get(key)
        if candidates and element in candidates:
            candidates.remove(element)
            if not candidates:
                del self._by_key[key]
        self.size -= len(element.sent) + len(element.piece.data)
        self.size -= sum(len(run.data) for run in element.runs)
        element.successors, element.runs = [], ()

    def __len__(self):
        return len(self._lru)


def follow(previous, element):
    """Note that `element` came right after `previous` (the next request likely repeats it)."""
    if previous is None or element in previous.successors:
        return
    previous.successors.insert(0, element)
    del previous.successors[MAX_SUCCESSORS:]


class Elements(Sequence):
    """An array's elements, each parsed only when read (and then kept for this request)."""

    def __init__(self, elements, values=None):
        self.elements = elements
        self._values = values or {}

    def __len__(self):
        return len(self.elements)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        index = range(len(self.elements))[index]
        if index not in self._values:
            self._values[index] = self.elements[index].parsed()
        return self._values[index]

    @property
    def texts(self):
        """Each element's JSON bytes as sent."""
        return [e.sent for e in self.elements]

    def __eq__(self, other):
        return isinstance(other, Sequence) and list(self) == list(other)

    def __repr__(self):
        return f"Elements({len(self)})"


# What a parsed JSON array may be: a list, or the elements of a split array.
ARRAY_TYPES = (list, Elements)


class SplitBody:
    """A body cut into literal text and elements; `fields` is the parsed body."""

    __slots__ = ("fields", "segments", "whole")

    def __init__(self, fields, segments, whole=None):
        self.fields = fields        # dict; the split arrays as `Elements` (None: not an object)
        self.segments = segments    # [str | Element | Run], in order
        self.whole = whole          # the single Piece of a body that is not split

    def __reduce__(self):
        # Pickled (bench.seed derives in other processes): runs spelled out, since a run
        # holds a view of its request's bytes.
        flat = []
        for segment in self.segments:
            flat.extend(segment.segments if isinstance(segment, Run) else (segment,))
        return SplitBody, (self.fields, flat, self.whole)

    def pieces(self):
        """The pieces this body refers to, in order (a piece may repeat)."""
        if self.whole is not None:
            return [self.whole]
        found = []
        for segment in self.segments:
            if isinstance(segment, Element):
                found.append(segment.piece)
            elif isinstance(segment, Run):
                found.extend(segment.pieces)
        return found


def _flat(segments, marks, matched, run_slot):
    """An array's segments from its first element on, with any run spelled out, and how
    many of them come up to each element."""
    if matched is None:
        first = marks[0] - 1  # the first element's own segment
        return segments[first:], [mark - first for mark in marks]
    rest = segments[run_slot + 1:]
    size = len(matched.segments)
    return ([*matched.segments, *rest],
            [*matched.marks, *(size + mark - run_slot - 1 for mark in marks)])


_string = json.encoder.encode_basestring  # a str as JSON text, non-ASCII kept


def split_body(data, cache=None):
    """Cut `data` (bytes) at its seams; the same bytes come back from `assemble`."""
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    try:
        return _Walk(data, cache).body()
    except (UnicodeDecodeError, ValueError, IndexError, KeyError, TypeError, RecursionError):
        return SplitBody(_loads(data), [], Piece(data, "body"))


def _loads(data):
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _whole_characters(window):
    """`window` without a UTF-8 character cut in two at its end."""
    for back in range(1, min(4, len(window)) + 1):
        byte = window[-back]
        if byte < 0x80:
            return window
        if byte >= 0xC0:  # the lead byte of the last character
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return window if back >= need else window[:-back]
    return window


class _Walk:
    """One pass over a body's bytes: the top-level object's members, the arrays' elements.

    Only what the cache does not know is decoded and parsed, a window at a time; known
    elements are matched byte for byte.
    """

    def __init__(self, data, cache):
        self.data, self.cache = data, cache
        self.segments = []
        self.done = 0  # bytes before this index are in `segments`

    def space(self, index):
        return _SPACE.match(self.data, index).end()

    def scan(self, index):
        """The JSON value at `index` and the index just past it."""
        data, size = self.data, WINDOW
        while True:
            stop = min(len(data), index + size)
            window = data[index:stop] if stop == len(data) else _whole_characters(data[index:stop])
            text = window.decode("utf-8")
            try:
                value, end = _DECODER.scan_once(text, 0)
            except (StopIteration, ValueError):
                if stop == len(data):
                    raise ValueError("not JSON") from None
                size *= 16
                continue
            if end == len(text) and stop < len(data):  # a number may go on past the window
                size *= 16
                continue
            return value, index + (end if len(text) == len(window) else len(text[:end].encode()))

    def body(self):
        data = self.data
        index = self.space(3 if data.startswith(b"\xef\xbb\xbf") else 0)
        if data[index:index + 1] != b"{":
            raise ValueError("not an object")
        fields = {}
        index = self.space(index + 1)
        end = index + 1 if data[index:index + 1] == b"}" else None
        while end is None:
            if data[index:index + 1] != b'"':
                raise ValueError("expected a key")
            key, index = self.scan(index)
            index = self.space(index)
            if data[index:index + 1] != b":":
                raise ValueError("expected a colon")
            index = self.space(index + 1)
            fields[key], index = self.value(key, index)
            index = self.space(index)
            if data[index:index + 1] == b"}":
                end = index + 1
            elif data[index:index + 1] == b",":
                index = self.space(index + 1)
            else:
                raise ValueError("expected a comma")
        if self.space(end) != len(data):
            raise ValueError("extra data")
        self.emit(len(data))
        return SplitBody(fields, self.segments)

    def value(self, key, index):
        """The member's value and where it ends; elements of a split array become pieces."""
        kind = ARRAYS.get(key)
        opening = self.data[index:index + 1]
        if kind and opening == b"[":
            return self.array(kind, index)
        value, end = self.scan(index)
        if kind == "system" and opening == b'"':
            self.element(kind, index, end, None)
        return value, end

    def array(self, kind, index):
        # The hot loop of a resent history: written out flat, since a body holds hundreds
        # of elements and each function call here costs a measurable share of the walk.
        data, segments, cache = self.data, self.segments, self.cache
        elements, values, previous = [], {}, None
        ends, marks = [], []  # each element's end in `data`, and len(segments) after it
        matched, run_slot = None, None
        index = self.space(index + 1)
        start = index
        if data[index:index + 1] == b"]":
            return Elements(elements), index + 1
        while True:
            element = None
            if previous is not None:
                for candidate in previous.successors:
                    if candidate.alive and data.startswith(candidate.sent, index):
                        element = candidate
                        break
            if element is None and cache is not None:
                element = cache.find(kind, data, index)
            run = element.run_at(data, index) if element is not None and not elements else None
            if run is not None:
                # The history this array resent last time: taken whole, one comparison.
                matched = run
                self.emit(index)
                run_slot = len(segments)
                segments.append(run)
                elements.extend(run.elements)
                ends.extend(index + end for end in run.ends)
                end = self.done = ends[-1]
                element = elements[-1]
            elif element is None:
                values[len(elements)], end = self.scan(index)
                element = self.element(kind, index, end, previous)
            else:
                end = index + len(element.sent)
                cache.touch(element)
                if previous is not None and (not previous.successors
                                             or previous.successors[0] is not element):
                    follow(previous, element)
                gap = index - self.done
                if gap == 1 and data[self.done] == 0x2C:
                    segments.append(",")
                elif gap:
                    segments.append(data[self.done:index].decode("utf-8"))
                segments.append(element)
                self.done = end
            if run is None:
                elements.append(element)
                ends.append(end)
                marks.append(len(segments))
            previous = element
            following = data[end:end + 1]
            if following == b",":
                index = end + 1
                if data[index:index + 1] in b" \t\n\r":
                    index = self.space(index)
                continue
            index = self.space(end)
            following = data[index:index + 1]
            if following == b"]":
                if cache is not None:
                    cache.remember_run(elements, data, start, ends,
                                       lambda: _flat(segments, marks, matched, run_slot), matched)
                return Elements(elements, values), index + 1
            if following != b",":
                raise ValueError("expected a comma")
            index = self.space(index + 1)

    def element(self, kind, start, end, previous):
        """A newly met element between `start` and `end`."""
        element = Element(self.data[start:end], kind)
        if self.cache is not None:
            bare = self.cache.add(kind, element)
            follow(previous, element)
            if bare is not None:
                follow(previous, bare)
        self.place(element, start, end)
        return element

    def place(self, element, start, end):
        self.emit(start)
        self.segments.append(element)
        self.done = end

    def emit(self, upto):
        if upto > self.done:
            self.segments.append(self.data[self.done:upto].decode("utf-8"))
            self.done = upto


# --- recipes: how a request's body is put back together --------------------------------

def recipe(split, ids):
    """The JSON-ready recipe of a split body, given each piece's stored id by digest.

    A list: a string is literal text; an int is a piece, as the difference from the
    previous piece's id (ids of one conversation are close, so the list compresses);
    a list `[id difference, offset, text, …]` is a piece with its cuts put back.
    """
    return json.loads(recipe_json(split, ids))


def recipe_json(split, ids):
    """`recipe` as JSON text, built from remembered fragments where the body repeats a run."""
    if split.whole is not None:
        return f"[{ids[split.whole.digest]}]"
    chunks, last = [], 0
    for segment in split.segments:
        if isinstance(segment, str):
            chunks.append(_string(segment))
            continue
        if isinstance(segment, Run):
            piece_ids = tuple(ids[piece.digest] for piece in segment.pieces)
            chunks.append(str(piece_ids[0] - last))
            tail = segment.recipe_tail(piece_ids)
            if tail:
                chunks.append(tail)
            last = piece_ids[-1]
            continue
        piece_id = ids[segment.piece.digest]
        ref = piece_id - last
        last = piece_id
        if segment.cuts:
            ref = "[" + ",".join([str(ref), *(f"{offset},{_string(text)}"
                                              for offset, text in segment.cuts)]) + "]"
        chunks.append(str(ref))
    return "[" + ",".join(chunks) + "]"


def recipe_ids(items):
    """The absolute piece ids a recipe refers to, in order."""
    ids, last = [], 0
    for item in items:
        if isinstance(item, str):
            continue
        last += item[0] if isinstance(item, list) else item
        ids.append(last)
    return ids


def assemble(items, data):
    """The body's bytes from its recipe and each piece's bytes (`data`: id -> bytes)."""
    out, last = [], 0
    for item in items:
        if isinstance(item, str):
            out.append(item.encode("utf-8"))
            continue
        cuts = ()
        if isinstance(item, list):
            item, cuts = item[0], item[1:]
        last += item
        piece = data[last]
        if not cuts:
            out.append(piece)
            continue
        done = 0
        for offset, text in zip(cuts[::2], cuts[1::2]):
            out.append(piece[done:offset])
            out.append(text.encode("utf-8"))
            done = offset
        out.append(piece[done:])
    return b"".join(out)
