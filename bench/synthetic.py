"""Synthetic Claude Code traffic as api_requests rows: pure, deterministic per seed.

`day_of_traffic(rng, day, rows)` returns about `rows` rows (dicts keyed by column)
for one UTC day, sorted by time, plus bodies for a fraction of them. Conversations
grow their message lists, rewind into branches, spawn sub-agent tasks, make side
calls to a small model, hit errors and stream most responses.
"""
import datetime
import json
import uuid

DOMAINS = tuple(f"{team}.{org}.example" for org in ("acme", "globex", "initech", "umbrella")
                for team in ("web", "data", "infra", "mobile", "ml"))
ACCOUNTS = tuple(f"acc_{n:02d}" for n in range(1, 9))
# model, weight, $/MTok input, output, cache write (1 h), cache read
MODELS = (
    ("claude-sonnet-4-5-20250929", 55, 3.0, 15.0, 6.0, 0.30),
    ("claude-opus-4-1-20250805", 15, 15.0, 75.0, 30.0, 1.50),
    ("claude-sonnet-4-20250514", 15, 3.0, 15.0, 6.0, 0.30),
    ("claude-haiku-4-5-20251001", 15, 1.0, 5.0, 2.0, 0.10),
)
SIDE_MODEL = ("claude-3-5-haiku-20241022", 0, 0.8, 4.0, 1.6, 0.08)
ERRORS = (
    (429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"),
    (529, "overloaded_error", "Overloaded"),
    (500, "api_error", "Internal server error"),
    (400, "invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum"),
)
SYSTEM_PROMPT = ("You are Claude Code, Anthropic's official CLI for Claude. You are an interactive "
                 "CLI tool that helps users with software engineering tasks.")
PROMPTS = ("Fix the failing test in tests/test_api.py", "Add pagination to the users endpoint",
           "Why is the build slow?", "Refactor the payment module into smaller functions",
           "Write a migration that adds an index on orders.created_at",
           "Explain what this regular expression does: ^(?:[a-z0-9]+\\.)+[a-z]{2,}$")
TOOLS = ("Read", "Edit", "Bash", "Grep", "Glob")


def _uuid(rng):
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _model(rng):
    return rng.choices(MODELS, weights=[m[1] for m in MODELS])[0]


def _cost(model, usage):
    _, _, p_in, p_out, p_cw, p_cr = model
    return (usage["input_tokens"] * p_in + usage["output_tokens"] * p_out
            + usage["cache_creation_input_tokens"] * p_cw
            + usage["cache_read_input_tokens"] * p_cr) / 1e6


def _usage(rng, turn, ok):
    cache_read = min(180_000, turn * rng.randint(2_000, 6_000)) if turn else 0
    usage = {
        "input_tokens": rng.randint(3, 4_000),
        "output_tokens": rng.randint(20, 4_000) if ok else 0,
        "cache_creation_input_tokens": rng.randint(0, 8_000) if ok else 0,
        "cache_read_input_tokens": cache_read if ok else 0,
    }
    usage["cache_creation"] = {"ephemeral_5m_input_tokens": 0,
                               "ephemeral_1h_input_tokens": usage["cache_creation_input_tokens"]}
    return usage


def _ratelimit(rng, when):
    reset5 = int((when + datetime.timedelta(hours=rng.uniform(0.2, 5))).timestamp())
    reset7 = int((when + datetime.timedelta(days=rng.uniform(0.5, 7))).timestamp())
    util5 = rng.uniform(0, 1.05)
    return json.dumps({
        "anthropic-ratelimit-unified-status": "rejected" if util5 > 1 else "allowed",
        "anthropic-ratelimit-unified-5h-status": "rejected" if util5 > 1 else "allowed",
        "anthropic-ratelimit-unified-5h-utilization": f"{util5:.2f}",
        "anthropic-ratelimit-unified-5h-reset": str(reset5),
        "anthropic-ratelimit-unified-7d-status": "allowed",
        "anthropic-ratelimit-unified-7d-utilization": f"{rng.uniform(0, 0.9):.2f}",
        "anthropic-ratelimit-unified-7d-reset": str(reset7),
        "anthropic-ratelimit-unified-representative-claim": "five_hour",
    })


def _messages(turn, prompt, tool_ids):
    """The message list a client sends on its `turn`-th request of a conversation."""
    messages = [{"role": "user", "content": prompt}]
    for i in range(turn):
        tid = tool_ids[i]
        messages.append({"role": "assistant", "content": [
            {"type": "text", "text": f"Step {i + 1}: let me look."},
            {"type": "tool_use", "id": tid, "name": TOOLS[i % len(TOOLS)],
             "input": {"path": f"src/module_{i}.py"}}]})
        messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": tid, "content": f"contents of src/module_{i}.py"}]})
    return messages[-13:] if len(messages) > 13 else messages


def _bodies(row, turn, prompt, tool_ids):
    request = {"model": row["model"], "max_tokens": 32000, "stream": row["stream"],
               "system": [{"type": "text", "text": SYSTEM_PROMPT}],
               "messages": _messages(turn, prompt, tool_ids)}
    content = [{"type": "thinking", "thinking": "The user wants a focused change.", "signature": "sig"},
               {"type": "text", "text": f"Working on it (turn {turn + 1})."},
               {"type": "tool_use", "id": tool_ids[turn], "name": TOOLS[turn % len(TOOLS)],
                "input": {"path": f"src/module_{turn}.py"}}]
    usage = json.loads(row["usage_data"])
    message = {"id": "msg_" + row["request_id"][:12], "type": "message", "role": "assistant",
               "model": row["model"], "content": content, "stop_reason": "tool_use", "usage": usage}
    if row["error"]:
        response = row["error"]
    elif row["stream"]:
        response = _sse(message)
    else:
        response = json.dumps(message)
    headers = {"content-type": "application/json", "x-api-key": "[redacted]",
               "anthropic-version": "2023-06-01", "user-agent": "claude-cli/2.0.14"}
    return {"request_id": row["request_id"], "request_body": json.dumps(request),
            "response_body": response, "request_headers": json.dumps(headers),
            "response_headers": json.dumps({"content-type": "text/event-stream" if row["stream"]
                                            else "application/json", "request-id": "req_x"})}


def _sse(message):
    start = dict(message, content=[], usage={"input_tokens": message["usage"]["input_tokens"],
                                             "output_tokens": 1})
    events = [("message_start", {"type": "message_start", "message": start})]
    for index, block in enumerate(message["content"]):
        events.append(("content_block_start", {"type": "content_block_start", "index": index,
                                               "content_block": block}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    events.append(("message_delta", {"type": "message_delta", "usage": message["usage"],
                                     "delta": {"stop_reason": message["stop_reason"]}}))
    events.append(("message_stop", {"type": "message_stop"}))
    return "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events)


class _Conversation:
    """Mutable state of one conversation while its rows are generated."""

    def __init__(self, rng, start, parent_task=None, domain=None):
        self.rng = rng
        self.domain = domain or rng.choice(DOMAINS)
        self.account = ACCOUNTS[DOMAINS.index(self.domain) % len(ACCOUNTS)]
        self.session = _uuid(rng)
        self.conversation_id = _uuid(rng)
        self.model = _model(rng)
        self.prompt = rng.choice(PROMPTS)
        self.parent_task = parent_task
        self.time = start
        self.rows = []
        self.branches = 1


def _row(conv, model, when, turn, parent, branch, request_type, body_fraction):
    rng = conv.rng
    ok = rng.random() > 0.03
    status, err = 200, None
    if not ok:
        status, etype, msg = rng.choice(ERRORS)
        err = json.dumps({"type": "error", "error": {"type": etype, "message": msg}})
    usage = _usage(rng, turn, ok)
    duration = rng.lognormvariate(8.3, 0.8) if ok else rng.uniform(50, 2000)
    stream = rng.random() < 0.85
    row = {
        "request_id": _uuid(rng), "domain": conv.domain, "timestamp": when, "method": "POST",
        "path": "/v1/messages", "model": model[0], "request_type": request_type,
        "stream": stream, "response_status": status,
        "input_tokens": usage["input_tokens"], "output_tokens": usage["output_tokens"],
        "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
        "cache_read_input_tokens": usage["cache_read_input_tokens"],
        "usage_data": json.dumps(usage), "cost_usd": round(_cost(model, usage), 6),
        "duration_ms": round(duration, 1),
        "first_token_ms": round(min(duration, rng.lognormvariate(6.9, 0.6)), 1) if stream and ok else None,
        "error": err, "account_id": conv.account, "session_id": conv.session,
        "conversation_id": conv.conversation_id if request_type == "inference" else None,
        "branch_id": branch if request_type == "inference" else None,
        "parent_request_id": parent, "is_subtask": conv.parent_task is not None,
        "parent_task_request_id": conv.parent_task, "message_count": 2 * turn + 1,
        "stop_reason": "tool_use" if ok else None,
        "ratelimit": _ratelimit(rng, when) if rng.random() < 0.3 else None,
        "client_key_id": None, "upstream_request_id": "req_" + _uuid(rng).replace("-", "")[:24],
    }
    body = None
    if rng.random() < body_fraction:
        tool_ids = [f"toolu_{conv.conversation_id[:8]}_{i}" for i in range(turn + 1)]
        body = _bodies(row, turn, conv.prompt, tool_ids)
    return row, body


def _conversation_rows(conv, turns, body_fraction, out_rows, out_bodies, depth=0):
    """Generate `turns` requests of `conv` (and its side calls and sub-agents)."""
    rng = conv.rng
    chain = []  # (request_id, branch) of the current line of turns
    branch = "main"
    for turn in range(turns):
        conv.time += datetime.timedelta(seconds=rng.uniform(3, 90))
        parent = chain[-1][0] if chain else None
        if len(chain) > 3 and rng.random() < 0.06:  # rewind: a second child of an earlier request
            back = rng.randrange(1, len(chain) - 1)
            chain = chain[:back]
            parent = chain[-1][0]
            conv.branches += 1
            branch = f"branch_{conv.branches}"
        row, body = _row(conv, conv.model, conv.time, turn, parent, branch, "inference", body_fraction)
        out_rows.append(row)
        if body:
            out_bodies.append(body)
        chain.append((row["request_id"], branch))
        if rng.random() < 0.25:
            side, side_body = _row(conv, SIDE_MODEL, conv.time + datetime.timedelta(milliseconds=300),
                                   0, None, None, "query_evaluation", body_fraction)
            out_rows.append(side)
            if side_body:
                out_bodies.append(side_body)
        if depth == 0 and rng.random() < 0.04:
            sub = _Conversation(rng, conv.time, parent_task=row["request_id"], domain=conv.domain)
            _conversation_rows(sub, rng.randint(2, 12), body_fraction, out_rows, out_bodies, depth + 1)


def day_of_traffic(rng, day, rows, body_fraction=0.05):
    """About `rows` rows starting on `day` (a date), sorted by timestamp, and their bodies."""
    out_rows, out_bodies = [], []
    midnight = datetime.datetime.combine(day, datetime.time())
    while len(out_rows) < rows:
        # Busier in working hours: the start hour is drawn from a bimodal mix.
        hour = min(23.99, max(0.0, rng.gauss(14, 4) if rng.random() < 0.8 else rng.uniform(0, 24)))
        start = midnight + datetime.timedelta(hours=hour)
        conv = _Conversation(rng, start)
        _conversation_rows(conv, max(1, min(60, int(rng.expovariate(1 / 12)))), body_fraction,
                           out_rows, out_bodies)
        if rng.random() < 0.01:
            quota = _Conversation(rng, start)
            row, _ = _row(quota, SIDE_MODEL, start, 0, None, None, "quota", 0)
            out_rows.append(row)
    out_rows.sort(key=lambda r: r["timestamp"])
    return out_rows, out_bodies
