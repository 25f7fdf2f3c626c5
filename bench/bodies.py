"""Request bodies the scenarios send: a small message and a Claude Code-sized conversation."""
import json
import random

MODEL = "claude-sonnet-4-5-20250929"
_WORDS = ("the function returns a list of files under the directory and the test checks "
          "that each path exists before reading it while the proxy records usage").split()


def small(stream=False):
    """A one-line user message, as the SDK sends it."""
    body = {"model": MODEL, "max_tokens": 1024,
            "messages": [{"role": "user", "content": "Say hello in five words."}]}
    if stream:
        body["stream"] = True
    return json.dumps(body).encode()


def _text(rng, words):
    return " ".join(rng.choice(_WORDS) for _ in range(words))


def _tools(rng):
    return [{"name": name, "description": _text(rng, 300),
             "input_schema": {"type": "object", "properties": {
                 "path": {"type": "string", "description": _text(rng, 20)},
                 "content": {"type": "string", "description": _text(rng, 20)}},
                 "required": ["path"]}}
            for name in ("Task", "Bash", "Glob", "Grep", "Read", "Edit", "Write", "WebFetch",
                         "TodoWrite", "WebSearch", "NotebookEdit", "BashOutput")]


def _turns(rng, index):
    tool_id = f"toolu_bench_{index:05d}"
    return [
        {"role": "assistant", "content": [
            {"type": "text", "text": _text(rng, 40)},
            {"type": "tool_use", "id": tool_id, "name": "Read",
             "input": {"path": f"src/module_{index}.py"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": tool_id, "content": _text(rng, 600)}]},
    ]


def claude_code(size=1_000_000, stream=False, seed=6):
    """A Claude Code-like request (system prompt, tools, a long tool-use history) of about `size` bytes."""
    rng = random.Random(seed)
    body = {"model": MODEL, "max_tokens": 32000,
            "system": [{"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude."},
                       {"type": "text", "text": _text(rng, 2500), "cache_control": {"type": "ephemeral"}}],
            "tools": _tools(rng),
            "metadata": {"user_id": "user_bench_account__session_00000000-0000-4000-8000-000000000006"},
            "messages": [{"role": "user", "content": [{"type": "text", "text": _text(rng, 80)}]}]}
    if stream:
        body["stream"] = True
    length, index = len(json.dumps(body)), 0
    while length < size:
        turns = _turns(rng, index)
        body["messages"] += turns
        length += len(json.dumps(turns))  # near enough: ASCII text, same separators
        index += 1
    return json.dumps(body).encode()
