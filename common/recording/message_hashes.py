"""Message hashes: the normalised messages of a request, hashed as prefixes.

Pure functions (and a cache) over parsed messages; `common.recording.linking` applies them.
The normalisation rules, with examples, are in docs/conversations.md; the cache and
what it saves, in docs/recording-performance.md.
"""
import hashlib
import json
import re
import threading
from collections import OrderedDict

from .pieces import ARRAY_TYPES

_REMINDER = re.compile(r"<system-reminder>.*?</system-reminder>", re.DOTALL)
# Keys that change between two sends of the same message, or that only steer caching.
_VOLATILE = frozenset({"cache_control", "id", "tool_use_id", "signature", "citations"})
_DROPPED_BLOCKS = frozenset({"thinking", "redacted_thinking"})
MAX_RUNS = 4  # lists remembered per first message (conversations may open alike)


def strip_reminders(text):
    """`text` without `<system-reminder>` blocks, trimmed."""
    return _REMINDER.sub("", text).strip()


def content_blocks(content):
    """A message's content as a list of blocks (a string is one text block)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, ARRAY_TYPES):
        return [b for b in content if isinstance(b, dict)]
    return []


def _normal_block(block):
    kind = block.get("type")
    if kind == "text":
        text = strip_reminders(block.get("text") or "").replace("\r\n", "\n")
        return {"type": "text", "text": text} if text else None
    if kind == "tool_result":
        content = [b for b in map(_normal_block, content_blocks(block.get("content"))) if b]
        return {"type": "tool_result", "content": content, "is_error": bool(block.get("is_error"))}
    if kind == "image" and isinstance(block.get("source"), dict):
        source = dict(block["source"])
        data = source.pop("data", None)
        if data is not None:
            source["sha256"] = hashlib.sha256(str(data).encode()).hexdigest()
        return {"type": "image", "source": source}
    return {k: v for k, v in block.items() if k not in _VOLATILE}


def _tool_id(block):
    if block.get("type") == "tool_result":
        return ("result", block.get("tool_use_id"))
    if block.get("type") in ("tool_use", "server_tool_use"):
        return ("use", block.get("id"))
    return None


def _normal_message(message, seen):
    """One message in canonical form (None when the hash skips it); adds its tool ids to `seen`."""
    if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
        return None
    blocks = []
    for block in content_blocks(message.get("content")):
        if block.get("type") in _DROPPED_BLOCKS:
            continue
        tool_id = _tool_id(block)
        if tool_id and tool_id[1]:
            if tool_id in seen:
                continue
            seen.add(tool_id)
        normal = _normal_block(block)
        if normal:
            blocks.append(normal)
    return {"role": message["role"], "content": blocks}


def normalise_messages(messages):
    """User and assistant messages in a canonical form that survives re-sending.

    System reminders are stripped, thinking and volatile keys dropped, and a tool
    call or result whose id was already seen earlier in the list is removed, so
    that Claude Code re-sending a tool result does not change the hash.
    """
    seen = set()
    return [n for n in (_normal_message(m, seen) for m in messages or []) if n is not None]


# json.dumps with these options builds an encoder per call: a fifth of the cost for a message.
_CANONICAL = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _canonical(value):
    return _CANONICAL.encode(value).encode()


class MessageCache:
    """What each message adds to the hash, by the message's raw JSON text; bounded in bytes.

    Claude Code re-sends the whole history on every turn, so the recorder meets the
    same messages again and again. The raw text is the key because it is exactly what
    was parsed: equal text, equal message, equal canonical form. An entry holds the
    canonical line (None for a message the hash skips) and the tool ids the message
    carries, normalised as if no tool id had been seen before it.
    """

    def __init__(self, max_bytes=64 * 2**20):
        self.max_bytes = max_bytes
        self.size = 0
        self._entries = OrderedDict()
        # first text -> [(texts, hashes, state, tool ids)], newest first. A run keeps its
        # texts alive, so runs are bounded by their texts' bytes too (run_size).
        self._runs = OrderedDict()
        self.run_size = 0
        self._lock = threading.Lock()  # the proxy's in-process recorder and tests use threads

    def get_many(self, raws):
        """The entry of each text in `raws` (None when absent); hits become the most recent."""
        with self._lock:
            entries = [self._entries.get(raw) for raw in raws]
            for raw, entry in zip(raws, entries):
                if entry is not None:
                    self._entries.move_to_end(raw)
            return entries

    def put_many(self, items):
        """Remember (raw, entry) pairs, dropping the least recently used past the bound."""
        with self._lock:
            for raw, entry in items:
                cost = len(raw) + len(entry[0] or b"") + 100
                if cost > self.max_bytes or raw in self._entries:
                    continue
                self._entries[raw] = entry
                self.size += cost
            while self.size > self.max_bytes:
                old, (line, _) = self._entries.popitem(last=False)
                self.size -= len(old) + len(line or b"") + 100

    def __len__(self):
        return len(self._entries)

    # -- runs: a message list met before, and where its hashes ended ---------------
    def run_for(self, raw):
        """The longest remembered run (raw texts, hashes, sha256 state, tool ids seen) whose
        texts `raw` begins with; None."""
        if not raw:
            return None
        with self._lock:
            best = None
            for run in self._runs.get(raw[0], ()):
                size = len(run[0])
                if size <= len(raw) and (best is None or size > len(best[0])) \
                        and raw[:size] == run[0]:
                    best = run
            if best is not None:
                self._runs.move_to_end(raw[0])
            return best

    def remember_run(self, raw, hashes, state, seen):
        """Remember the texts `raw`, their prefix hashes, the hash state and tool ids after them."""
        if not raw:
            return
        with self._lock:
            old = self._runs.pop(raw[0], [])
            runs = [run for run in old
                    if not (len(run[0]) <= len(raw) and raw[:len(run[0])] == run[0])]
            runs = [(list(raw), list(hashes), state.copy(), frozenset(seen)), *runs][:MAX_RUNS]
            self._runs[raw[0]] = runs
            self.run_size += _texts_size(runs) - _texts_size(old)
            while self.run_size > self.max_bytes and self._runs:
                self.run_size -= _texts_size(self._runs.popitem(last=False)[1])


def _texts_size(runs):
    return sum(len(text) for run in runs for text in run[0])


def _entry(message):
    """A cache entry: the message's line as if no tool id came before it, and its tool ids."""
    own = set()
    normal = _normal_message(message, own)
    return (None if normal is None else _canonical(normal) + b"\n", frozenset(own))


def _lines(messages, raw, cache, start=0, stop=None, seen=None):
    """The bytes each message in [start, stop) adds to the running hash (None: nothing), in
    order, given the tool ids `seen` before it (a set, updated)."""
    messages = messages or []
    stop = len(messages) if stop is None else stop
    seen = set() if seen is None else seen
    if cache is None or raw is None:
        normals = (_normal_message(messages[i], seen) for i in range(start, stop))
        return [None if n is None else _canonical(n) + b"\n" for n in normals]
    entries = cache.get_many(raw[start:stop])
    # Only the messages met for the first time are read (parsed, when `messages` parses
    # lazily); the others are their cached lines.
    new = [(raw[start + i], _entry(messages[start + i]))
           for i, entry in enumerate(entries) if entry is None]
    cache.put_many(new)
    made = iter(new)
    lines = []
    for offset, entry in enumerate(entries):
        line, ids = entry if entry is not None else next(made)[1]
        if not seen.isdisjoint(ids):
            # A tool id already seen earlier in this list: the message loses that block here.
            normal = _normal_message(messages[start + offset], seen)
            line = None if normal is None else _canonical(normal) + b"\n"
        else:
            seen.update(ids)
        lines.append(line)
    return lines


def _run_length(raw):
    """How many leading texts to remember as a run: not the last ones carrying a cache
    breakpoint, since Claude Code resends those without it next turn."""
    size = len(raw)
    for index in range(size - 1, max(-1, size - 5), -1):
        text = raw[index]
        if (b'"cache_control"' if isinstance(text, bytes) else '"cache_control"') in text:
            size = index
    return size


def _add(lines, digest, hashes):
    for line in lines:
        if line is not None:
            digest.update(line)
            hashes.append(digest.copy().hexdigest())


def prefix_hashes(messages, raw=None, cache=None):
    """hashes[k] is the hash of the first k normalised messages (hashes[0] is None).

    `raw`, the JSON text each message was parsed from (`common.recording.pieces`), lets
    `cache` (a MessageCache) skip normalising and serialising the messages it has met
    before, and go on from where the hashes of a list this one begins with ended; the
    hashes are the same with or without it.
    """
    digest, hashes, start, seen = hashlib.sha256(), [None], 0, set()
    if cache is None or raw is None:
        _add(_lines(messages, raw, cache), digest, hashes)
        return hashes
    run = cache.run_for(raw)
    if run is not None:  # the history resent: go on from where its hashes ended
        start, hashes, digest, seen = len(run[0]), list(run[1]), run[2].copy(), set(run[3])
    keep = max(start, _run_length(raw))
    _add(_lines(messages, raw, cache, start, keep, seen), digest, hashes)
    if keep > start:
        cache.remember_run(raw[:keep], hashes, digest, seen)
    _add(_lines(messages, raw, cache, keep, None, seen), digest, hashes)
    return hashes


def current_message_hash(messages):
    """The hash of every message; None for an empty list."""
    return prefix_hashes(messages)[-1]


def parent_message_hash(messages):
    """The hash of the messages before the last exchange (the previous request's list)."""
    hashes = prefix_hashes(messages)
    return hashes[-3] if len(hashes) >= 4 else None


def ancestor_hashes(hashes, limit=8):
    """Hashes of earlier requests of the same conversation, nearest first.

    The parent is `hashes[-3]`; when it was never stored, the request before it
    has `hashes[-5]`, and so on.
    """
    return [hashes[k] for k in range(len(hashes) - 3, 0, -2)][:limit]
