"""What a request says about its conversation: pure functions over parsed bodies.

Nothing here touches the database. `common.recording.store` computes these values for each
record and looks up the rows they point at. The rules, with examples, are in
docs/conversations.md.
"""
import hashlib
import json
import re

# The message hashes are part of linking's vocabulary: callers and tests reach them here.
from .message_hashes import (  # noqa: F401
    MessageCache, ancestor_hashes, current_message_hash, normalise_messages,
    parent_message_hash, prefix_hashes, strip_reminders)
from .message_hashes import content_blocks as _blocks
from .pieces import ARRAY_TYPES

# --- sessions ---------------------------------------------------------------

_OLD_USER_ID = re.compile(
    r"^user_(?P<user>[0-9a-f]+)_account_(?P<account>[0-9a-f-]*)_session_(?P<session>[0-9a-f-]+)$")


def parse_user_id(user_id):
    """(session_id, account_id) from Claude Code's `metadata.user_id`, either form."""
    if not isinstance(user_id, str) or not user_id:
        return None, None
    match = _OLD_USER_ID.match(user_id)
    if match:
        return match["session"] or None, match["account"] or None
    if user_id.lstrip().startswith("{"):
        try:
            data = json.loads(user_id)
        except ValueError:
            return None, None
        if isinstance(data, dict):
            return (_str_or_none(data.get("session_id")),
                    _str_or_none(data.get("account_uuid") or data.get("account_id")))
    return None, None


def messages_of(body):
    """The body's message list, or [] when the body has none (or not a list)."""
    messages = body.get("messages") if isinstance(body, dict) else None
    return messages if isinstance(messages, ARRAY_TYPES) else []


def _str_or_none(value):
    return value if isinstance(value, str) and value else None


def session_and_account(headers, body):
    """The session id (header first, then metadata) and the account id in metadata."""
    metadata = body.get("metadata") if isinstance(body, dict) else None
    user_id = metadata.get("user_id") if isinstance(metadata, dict) else None
    session, account = parse_user_id(user_id)
    header = (headers or {}).get("x-claude-code-session-id")
    return (header or session), account


# --- system prompt and user text ------------------------------------------------

def system_text(system):
    """The system prompt as one string (blocks joined), reminders stripped."""
    if isinstance(system, str):
        return strip_reminders(system)
    texts = [b.get("text") or "" for b in _blocks(system) if b.get("type") == "text"]
    return strip_reminders("\n".join(texts))


def system_hash(system):
    """sha256 of the system prompt's text; None when there is none."""
    text = system_text(system)
    return hashlib.sha256(text.encode()).hexdigest() if text else None


def user_text(message):
    """The text a user message carries, reminders stripped, blocks joined."""
    if not isinstance(message, dict):
        return ""
    texts = [strip_reminders(b.get("text") or "") for b in _blocks(message.get("content"))
             if b.get("type") == "text"]
    return "\n".join(t for t in texts if t)


# --- request types ------------------------------------------------------------

_SMALL_MODEL = re.compile(r"haiku", re.IGNORECASE)
SIDE_CALL_SYSTEM_CHARS = 4000
_PATH_TYPES = (
    ("/v1/messages/count_tokens", "count_tokens"),
    ("/v1/messages/batches", "batch"),
    ("/v1/messages", None),
    ("/v1/models", "models"),
    ("/v1/files", "files"),
)


def path_type(path):
    """The request type fixed by the path alone; None for /v1/messages itself."""
    path = (path or "").split("?", 1)[0].rstrip("/")
    for prefix, kind in _PATH_TYPES:
        if path == prefix or path.startswith(prefix + "/"):
            return kind
    return "other"


def is_quota_probe(body):
    """Claude Code's quota check: one user message saying `quota`, one token allowed."""
    messages = messages_of(body)
    return (len(messages) == 1 and user_text(messages[0]).strip().lower() == "quota"
            and (body.get("max_tokens") or 0) <= 1)


def is_claude_code(headers, body):
    """True when the client is Claude Code (its headers, or its metadata.user_id)."""
    headers = headers or {}
    agent = headers.get("user-agent", "")
    if agent.startswith("claude-cli") or headers.get("x-app") == "cli":
        return True
    if headers.get("x-claude-code-session-id"):
        return True
    metadata = body.get("metadata") if isinstance(body, dict) else None
    return isinstance(metadata, dict) and parse_user_id(metadata.get("user_id"))[0] is not None


def is_side_call(body):
    """Claude Code's small calls: a title, a topic check, a bash-prefix check.

    They go to the small fast model (Haiku unless configured otherwise) with one
    message and no tools; a main-loop or sub-agent request always carries tools.
    """
    messages = messages_of(body)
    if len(messages) != 1 or body.get("tools"):
        return False
    return (bool(_SMALL_MODEL.search(str(body.get("model") or "")))
            and len(system_text(body.get("system"))) <= SIDE_CALL_SYSTEM_CHARS)


def request_type(path, body, headers=None):
    """`quota`, `query_evaluation`, `inference`, or the path's own type.

    Side calls are only recognised from Claude Code: another client's one-shot
    Haiku call is its own inference.
    """
    kind = path_type(path)
    if kind is not None:
        return kind
    if not isinstance(body, dict):
        return "inference"
    if is_quota_probe(body):
        return "quota"
    if is_side_call(body) and is_claude_code(headers, body):
        return "query_evaluation"
    return "inference"


# --- compaction ----------------------------------------------------------------

CONTINUATION_PREFIX = ("This session is being continued from a previous conversation "
                       "that ran out of context")
SUMMARY_REQUEST_MARKER = "create a detailed summary of the conversation so far"
# Where Claude Code's own text ends the summary in a continuation message.
_SUMMARY_ENDS = (
    "Please continue the conversation from where we left",
    "If you need specific details from before compaction",
)
_SUMMARY_TAG = re.compile(r"<summary>(.*?)(?:</summary>|$)", re.DOTALL)
_SUMMARY_LABEL = re.compile(r"^Summary:[ \t]*$", re.MULTILINE)
FINGERPRINT_CHARS = 400


def summary_fingerprint(text):
    """A hash of a summary's opening, the same in the summariser's answer and the
    continuation that quotes it (Claude Code rewrites its tags into labels)."""
    text = strip_reminders(text)
    match = _SUMMARY_TAG.search(text)
    if match:
        text = match.group(1)
    else:
        label = _SUMMARY_LABEL.search(text)
        if label:
            text = text[label.end():]
    text = " ".join(text.split()).rstrip(". ")
    return hashlib.sha256(text[:FINGERPRINT_CHARS].encode()).hexdigest() if text else None


def is_summary_request(body):
    """True for Claude Code's compaction call: its last user message asks for a summary."""
    messages = messages_of(body)
    return bool(messages) and SUMMARY_REQUEST_MARKER in user_text(messages[-1])


def continuation_summary(body):
    """The fingerprint of the summary a compacted session starts from, or None.

    Old Claude Code: "...ran out of context. The conversation is summarized
    below:" then the summary; newer: "...The summary below covers the earlier
    portion of the conversation." then the summary and a pointer to the transcript.
    """
    messages = messages_of(body)
    if not messages or not isinstance(messages[0], dict) or messages[0].get("role") != "user":
        return None
    for block in _blocks(messages[0].get("content")):
        text = strip_reminders(block.get("text") or "") if block.get("type") == "text" else ""
        if not text.startswith(CONTINUATION_PREFIX):
            continue
        summary = text.split("\n", 1)[1] if "\n" in text else ""
        for end in _SUMMARY_ENDS:
            summary = summary.split(end, 1)[0]
        return summary_fingerprint(summary) or hashlib.sha256(b"").hexdigest()
    return None


def response_text(message):
    """The text blocks of an assistant message, joined."""
    if not isinstance(message, dict):
        return ""
    return "\n".join(b.get("text") or "" for b in _blocks(message.get("content"))
                     if b.get("type") == "text")


# --- sub-agents ------------------------------------------------------------------

def prompt_hash(text):
    """The hash a sub-agent's prompt is matched by (whitespace-insensitive)."""
    return hashlib.sha256(" ".join((text or "").split()).encode()).hexdigest()


def task_invocations(message, tool_names):
    """(tool_use_id, prompt_hash) of each Task/Agent call in an assistant message."""
    calls = []
    for block in _blocks(message.get("content") if isinstance(message, dict) else None):
        if block.get("type") != "tool_use" or block.get("name") not in tool_names:
            continue
        inputs = block.get("input")
        prompt = inputs.get("prompt") if isinstance(inputs, dict) else None
        if isinstance(prompt, str) and prompt.strip():
            calls.append((str(block.get("id") or ""), prompt_hash(prompt)))
    return calls


OPENING_MESSAGES = 3


def is_opening(messages):
    """True for a thread's first request: no assistant turn yet. Claude Code 2.1 may add
    `system` messages after the first user message (a sub-agent's list of agent types),
    so this is not the same as one message; only short arrays are looked into."""
    if len(messages) == 1:
        return True
    return len(messages) <= OPENING_MESSAGES and all(
        isinstance(m, dict) and m.get("role") in ("user", "system") for m in messages)


def first_prompt_hashes(body):
    """Hashes a Task/Agent call's prompt may have, from a request's first user message.

    The whole text of the message first, then each text block on its own, since
    Claude Code may add context blocks around the prompt it was given.
    """
    messages = messages_of(body)
    if not messages or not isinstance(messages[0], dict) or messages[0].get("role") != "user":
        return []
    texts = [user_text(messages[0])]
    texts += [strip_reminders(b.get("text") or "") for b in _blocks(messages[0].get("content"))
              if b.get("type") == "text"]
    hashes = []
    for text in texts:
        if text.strip() and prompt_hash(text) not in hashes:
            hashes.append(prompt_hash(text))
    return hashes
