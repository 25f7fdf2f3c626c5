"""Who, where and what a Claude Code request was for: pure parsers of request bodies.

The grouping keys of docs/analytics.md, read from what Claude Code sends anyway:

- `project`: the working directory its system prompt names. Claude Code 2.1 words it
  ` - Primary working directory: /path` in the main loop and `Working directory: /path`
  (inside `<env>`) for sub-agents and in older versions; with
  `--exclude-dynamic-system-prompt-sections` the same lines move into a
  `<system-reminder>` at the start of the first user message.
- `git_branch`: `Current branch: name` from the git status in the same places.
- `developer`: from `metadata.user_id`: the account when known, else the device
  (JSON form), or the account, else the user hash (the older `user_…` form).
- `subagent_types`: the `subagent_type` of each Task/Agent call in an answer.

Everything here takes parsed values (a body's `system` and first message, possibly the
lazily parsed `Elements` of common/recording/pieces.py) and returns strings or None.
"""
import json
import re

from .recording.pieces import ARRAY_TYPES

PROJECT_CHARS, BRANCH_CHARS, DEVELOPER_CHARS, SUBAGENT_CHARS = 512, 255, 255, 128
_PROJECT = re.compile(r"^[ \t]*(?:-[ \t]*)?(?:Primary[ \t]+)?[Ww]orking directory:[ \t]*(\S[^\n]*?)[ \t]*$",
                      re.MULTILINE)
_BRANCH = re.compile(r"^[ \t]*Current branch:[ \t]*(\S[^\n]*?)[ \t]*$", re.MULTILINE)
_OLD_USER_ID = re.compile(
    r"^user_(?P<user>[0-9a-f]+)_account_(?P<account>[0-9a-f-]*)_session_(?P<session>[0-9a-f-]+)$")
REMINDER = "<system-reminder>"
# Claude Code's default agent: the type of a Task call made before calls named one.
DEFAULT_SUBAGENT = "general-purpose"


def _texts(content):
    """The text of a system prompt or message content: a string or a list of blocks."""
    if isinstance(content, str):
        return [content]
    if not isinstance(content, ARRAY_TYPES):
        return []
    return [b.get("text") for b in content
            if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)]


def _reminders(messages):
    """The `<system-reminder>` texts of the first user message (where Claude Code puts the
    environment when the system prompt leaves it out)."""
    if not isinstance(messages, ARRAY_TYPES) or not len(messages):
        return []
    first = messages[0]
    if not isinstance(first, dict) or first.get("role") != "user":
        return []
    return [t for t in _texts(first.get("content")) if t.lstrip().startswith(REMINDER)]


def _find(pattern, texts, limit):
    for text in texts:
        match = pattern.search(text)
        if match:
            return match.group(1)[:limit]
    return None


def project(texts):
    """The working directory the first of `texts` (strings) to name one names, or None."""
    return _find(_PROJECT, texts, PROJECT_CHARS)


def git_branch(texts):
    """The git branch the first of `texts` (strings) to name one names, or None."""
    return _find(_BRANCH, texts, BRANCH_CHARS)


def developer(user_id):
    """Who sent a request, from Claude Code's `metadata.user_id`; None when it says nothing."""
    if not isinstance(user_id, str) or not user_id.strip():
        return None
    match = _OLD_USER_ID.match(user_id)
    if match:
        return (match["account"] or match["user"])[:DEVELOPER_CHARS]
    if not user_id.lstrip().startswith("{"):
        return None
    try:
        data = json.loads(user_id)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    for name in ("account_uuid", "account_id", "device_id"):
        value = data.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()[:DEVELOPER_CHARS]
    return None


def system_traits(system):
    """(project, git_branch) named by the system prompt alone (callers may remember this:
    Claude Code resends the same system prompt with every request of a session)."""
    texts = ["\n".join(_texts(system))]
    return project(texts), git_branch(texts)


def body_traits(body, from_system=None):
    """{project, git_branch, developer} of a parsed request body (None where unknown).

    `from_system`: `system_traits(body["system"])` when the caller has it already."""
    if not isinstance(body, dict):
        return {"project": None, "git_branch": None, "developer": None}
    found_project, found_branch = from_system or system_traits(body.get("system"))
    if found_project is None or found_branch is None:
        reminders = _reminders(body.get("messages"))
        found_project = found_project or project(reminders)
        found_branch = found_branch or git_branch(reminders)
    metadata = body.get("metadata")
    user_id = metadata.get("user_id") if isinstance(metadata, dict) else None
    return {"project": found_project, "git_branch": found_branch, "developer": developer(user_id)}


def subagent_types(message, tool_names):
    """{tool_use_id: subagent_type} of the Task/Agent calls in an assistant message."""
    content = message.get("content") if isinstance(message, dict) else None
    found = {}
    for block in content if isinstance(content, list) else ():
        if not isinstance(block, dict) or block.get("type") != "tool_use" \
                or block.get("name") not in tool_names:
            continue
        inputs = block.get("input") if isinstance(block.get("input"), dict) else {}
        kind = inputs.get("subagent_type")
        kind = kind.strip() if isinstance(kind, str) and kind.strip() else DEFAULT_SUBAGENT
        found[str(block.get("id") or "")] = kind[:SUBAGENT_CHARS]
    return found
