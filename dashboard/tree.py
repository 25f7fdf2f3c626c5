"""Layouts for the conversation page: a branch tree and a timeline, as SVG coordinates. Pure.

Rows go down in time order; each branch, and each sub-agent task, has its own lane
(column), so a rewind shows as a new lane leaving an earlier request, like a git graph.
"""
import datetime

ROW, LANE, PAD, RADIUS = 22, 26, 16, 6
MAX_NODES = 400


def _ts(value):
    return datetime.datetime.fromisoformat(value) if isinstance(value, str) else value


def _lane_key(node):
    if node.get("is_subtask") and node.get("parent_task_request_id"):
        # The recorder files sub-agents under their caller's conversation: a lane per branch.
        return ("task", node.get("conversation_id"), node.get("branch_id"))
    return ("branch", node.get("branch_id") or "main")


def tree(nodes):
    """SVG geometry for `nodes` (request rows): positioned circles, edges and lane labels."""
    nodes = sorted(nodes, key=lambda n: _ts(n["timestamp"]))[:MAX_NODES]
    lanes, placed = {}, {}
    for row, node in enumerate(nodes):
        lane = lanes.setdefault(_lane_key(node), len(lanes))
        placed[node["request_id"]] = (PAD + lane * LANE, PAD + row * ROW)
    circles, edges = [], []
    for node in nodes:
        x, y = placed[node["request_id"]]
        status = node.get("response_status") or 0
        circles.append({"x": x, "y": y, "r": RADIUS, "id": node["request_id"],
                        "cls": "err" if status >= 400 else ("task" if node.get("is_subtask") else "ok"),
                        "label": f"{_ts(node['timestamp']):%H:%M:%S} {node.get('model') or ''}"
                                 f" {status or ''}".strip()})
        parent, task = node.get("parent_request_id"), node.get("parent_task_request_id")
        kind = "next"
        if node.get("is_subtask") and task in placed and (parent == task or parent not in placed):
            parent, kind = task, "spawn"  # a sub-agent's first request, off the Task call
        if parent in placed:
            px, py = placed[parent]
            edges.append({"x1": px, "y1": py, "x2": x, "y2": y, "cls": kind})
    labels = [{"x": PAD + lane * LANE, "text": key[1] if key[0] == "branch" else "task"}
              for key, lane in lanes.items()]
    width = PAD * 2 + max(len(lanes) - 1, 0) * LANE
    return {"width": width, "text_x": width + 4, "height": PAD * 2 + max(len(nodes) - 1, 0) * ROW,
            "circles": circles, "edges": edges, "lanes": labels,
            "truncated": len(placed) >= MAX_NODES}


def timeline(nodes, width=900, row=14):
    """Bars from each request's start to its end, on a shared time axis."""
    nodes = sorted(nodes, key=lambda n: _ts(n["timestamp"]))[:MAX_NODES]
    if not nodes:
        return {"width": width, "height": 0, "bars": [], "span_s": 0}
    start = _ts(nodes[0]["timestamp"])
    ends = [_ts(n["timestamp"]) + datetime.timedelta(milliseconds=n.get("duration_ms") or 0)
            for n in nodes]
    span = max((max(ends) - start).total_seconds(), 1.0)
    scale = (width - 2 * PAD) / span
    bars = []
    for i, node in enumerate(nodes):
        offset = (_ts(node["timestamp"]) - start).total_seconds()
        status = node.get("response_status") or 0
        bars.append({"x": round(PAD + offset * scale, 1), "y": 4 + i * row,
                     "w": round(max(2.0, (node.get("duration_ms") or 0) / 1000 * scale), 1),
                     "h": row - 4, "id": node["request_id"],
                     "cls": "err" if status >= 400 else ("task" if node.get("is_subtask") else "ok"),
                     "label": f"+{offset:.0f}s {node.get('model') or ''} "
                              f"{(node.get('duration_ms') or 0) / 1000:.1f}s"})
    return {"width": width, "height": 8 + len(nodes) * row, "bars": bars, "span_s": round(span)}
