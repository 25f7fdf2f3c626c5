"""Tree and timeline layout: lanes for branches and tasks, edges to parents."""
import datetime

from dashboard import tree

T0 = datetime.datetime(2026, 1, 1, 12, 0, 0)


def _node(rid, seconds, parent=None, branch="main", task=None, conv="c", status=200):
    return {"request_id": rid, "timestamp": T0 + datetime.timedelta(seconds=seconds),
            "parent_request_id": parent, "branch_id": branch, "conversation_id": conv,
            "is_subtask": task is not None, "parent_task_request_id": task,
            "response_status": status, "model": "m", "duration_ms": 2000}


def test_branches_and_tasks_get_lanes_and_edges():
    nodes = [_node("a", 0), _node("b", 10, "a"), _node("c", 20, "b"),
             _node("d", 30, "a", branch="branch_2"),
             _node("t1", 15, task="b", conv="sub"), _node("t2", 25, "t1", task="b", conv="sub", status=500)]
    layout = tree.tree(nodes)
    xs = {c["id"]: c["x"] for c in layout["circles"]}
    assert xs["a"] == xs["b"] == xs["c"] and xs["d"] != xs["a"] and xs["t1"] not in (xs["a"], xs["d"])
    edges = {(e["cls"], e["x2"], e["y2"]) for e in layout["edges"]}
    ys = {c["id"]: c["y"] for c in layout["circles"]}
    assert ("spawn", xs["t1"], ys["t1"]) in edges and ("next", xs["d"], ys["d"]) in edges
    assert len(layout["edges"]) == 5
    assert [c["cls"] for c in layout["circles"] if c["id"] == "t2"] == ["err"]
    assert [lane["text"] for lane in layout["lanes"]] == ["main", "task", "branch_2"]


def test_timeline_scales_to_the_span():
    bars = tree.timeline([_node("a", 0), _node("b", 98)], width=232)["bars"]
    assert bars[0]["x"] == tree.PAD and bars[1]["x"] == 16 + 98 * 2
    assert bars[1]["w"] == 4.0
    assert tree.timeline([])["bars"] == []
