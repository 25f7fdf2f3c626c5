"""The text search indexes, and the snippets it shows: pure.

What people read of a conversation is indexed, not its JSON: the user's text and the
tool results that come back in user messages (from request body pieces), and the
assistant's text and tool inputs (from the response). Assistant messages that a request
resends as history are not indexed: the response that first carried them was, so a word
of one answer finds that answer's request and no later one. System prompts and tool
definitions are not conversation text and are left out, and so are the
`<system-reminder>` blocks Claude Code adds to user turns.

Words are runs of letters and digits (`[^\\W_]+`), lower-cased; the index holds each
entry's distinct words, so that SQLite (FTS5) and PostgreSQL (tsvector) match alike.
"""
import hashlib
import html
import json
import re

WORD = re.compile(r"[^\W_]+")
MAX_WORD = 64            # longer runs (hashes, base64) are not words anyone types
MAX_TEXT = 1 << 20       # characters of one entry kept for the index and its snippet
MAX_QUERY_WORDS = 16
MAX_WORDS_BYTES = 512 * 1024  # an entry's distinct words, as a tsvector stores them
SNIPPET_CHARS = 240
# Claude Code wraps what it adds to a user's turn (CLAUDE.md, todo lists, file changes)
# in these tags: text nobody typed or reads, resent in every session.
REMINDER = re.compile(r"<system-reminder>.*?(?:</system-reminder>|\Z)", re.S)


def words(text):
    """The distinct words of `text`, sorted (what an entry is indexed under): the first
    that fit in MAX_WORDS_BYTES, since PostgreSQL refuses a tsvector over 1 MB (and with
    it the batch of records it was written with)."""
    found = dict.fromkeys(WORD.findall(text.lower()))  # the writer's hot spot: C loops only
    kept, size = [], 0
    for word in found:
        if len(word) <= MAX_WORD:
            size += len(word.encode()) + 8  # a tsvector's entry: the lexeme and its header
            if size > MAX_WORDS_BYTES:
                break
            kept.append(word)
    return sorted(kept)


def domain_word(domain):
    """The word an entry of `domain` is also indexed under, so that a domain filter is one
    more word for the index to intersect (not a check of every match): letters and digits
    no text holds."""
    return "zzdomain" + hashlib.blake2b((domain or "").encode(), digest_size=8).hexdigest()


def entry_words(text, domain):
    """What an entry is indexed under: its words and its domain's word."""
    found = words(text)
    return found + [domain_word(domain)] if found else found


def query_words(q):
    """The words a query asks for, in order, without repeats (all must match)."""
    seen = []
    for word in WORD.findall((q or "").lower()):
        if len(word) <= MAX_WORD and word not in seen:
            seen.append(word)
    return seen[:MAX_QUERY_WORDS]


def _strings(value, out):
    """Every string (and number) inside a JSON value, in order: a tool input as read."""
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for item in value.values():
            _strings(item, out)
    elif isinstance(value, list):
        for item in value:
            _strings(item, out)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        out.append(str(value))


def _block_texts(content, out, role):
    """The readable text of a message's content (a string or a list of blocks)."""
    if isinstance(content, str):
        out.append(REMINDER.sub("", content) if role == "user" else content)
        return
    if not isinstance(content, list):
        return
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            out.append(REMINDER.sub("", block["text"]) if role == "user" else block["text"])
        elif kind == "tool_result" and role == "user":
            _block_texts(block.get("content"), out, role)
        elif kind == "tool_use" and role == "assistant":
            _strings(block.get("input"), out)


def _joined(parts):
    text = "\n".join(p for p in parts if p and p.strip())
    return text[:MAX_TEXT] or None


def piece_text(kind, data):
    """The text a request body piece adds to the index, or None (not a user message)."""
    if kind != "message":
        return None
    try:
        message = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(message, dict) or message.get("role") != "user":
        return None
    out = []
    _block_texts(message.get("content"), out, "user")
    return _joined(out)


def answer_text(message):
    """The text of an assistant message (the response): its text and tool inputs."""
    if not isinstance(message, dict):
        return None
    out = []
    _block_texts(message.get("content"), out, "assistant")
    return _joined(out)


def snippet(text, wanted, width=SNIPPET_CHARS):
    """HTML: about `width` characters of `text` around the first wanted word, escaped,
    each occurrence of a wanted word wrapped in <mark>."""
    wanted = set(wanted)
    matches = [m for m in WORD.finditer(text) if m.group().lower() in wanted]
    start = 0
    if matches:
        start = max(0, matches[0].start() - width // 3)
        while start > 0 and not text[start - 1].isspace() and matches[0].start() - start < width // 2:
            start -= 1  # do not begin inside a word
    end = min(len(text), start + width)
    out = ["…" if start else ""]
    done = start
    for match in matches:
        if match.start() < start or match.end() > end:
            continue
        out.append(html.escape(text[done:match.start()]))
        out.append(f"<mark>{html.escape(match.group())}</mark>")
        done = match.end()
    out.append(html.escape(text[done:end]))
    out.append("…" if end < len(text) else "")
    return " ".join("".join(out).split())


_MARK = re.compile(r"<mark>(.*?)</mark>", re.S)


def snippet_parts(snippet_html):
    """A `snippet` back as [(text, marked)], unescaped: for a template that escapes itself."""
    parts = _MARK.split(snippet_html)
    return [(html.unescape(part), index % 2 == 1) for index, part in enumerate(parts) if part]
