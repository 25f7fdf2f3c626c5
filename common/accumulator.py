"""Rebuild a Messages API answer from its stream of events.

The result has the non-streaming shape (id, type, role, model, content, stop_reason,
stop_sequence, usage), so a streamed and a non-streamed request are recorded alike.
Usage is merged field by field: `message_start` carries the input side, and each
`message_delta` overrides only the fields it carries (nested `cache_creation` too).
Reading usage from one event only is the mistake this module exists to avoid.
"""
import copy
import json
from typing import NamedTuple

from common.sse import SSEParser

# Blocks whose input arrives as input_json_delta pieces.
_JSON_INPUT_BLOCKS = frozenset({"tool_use", "server_tool_use", "mcp_tool_use"})
# delta type -> (block field it extends, delta field holding the piece)
_DELTA_FIELDS = {
    "text_delta": ("text", "text"),
    "thinking_delta": ("thinking", "thinking"),
    "signature_delta": ("signature", "signature"),
    "input_json_delta": ("input", "partial_json"),
}


def merge_usage(base, update):
    """`base` with every non-null field of `update` laid over it, nested dicts merged."""
    merged = copy.deepcopy(base) if base else {}
    for key, value in (update or {}).items():
        if value is None:
            continue
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_usage(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


class Accumulated(NamedTuple):
    message: dict | None
    usage: dict
    error: dict | None
    complete: bool


class MessageAccumulator:
    """Feed it (event name, parsed data) pairs; read `.message`, `.usage`, `.error`."""

    def __init__(self):
        self._head = None
        self._blocks = {}
        self._pieces = {}
        self.usage = {}
        self.error = None
        self.complete = False

    def feed(self, event_name, data):
        """Apply one event. Unknown events and malformed ones are ignored."""
        if not isinstance(data, dict):
            return
        kind = data.get("type") or event_name
        handler = getattr(self, "_on_" + str(kind), None)
        if handler is not None:
            try:
                handler(data)
            except (KeyError, TypeError, AttributeError, ValueError):
                pass  # a malformed event must not lose what was already rebuilt

    def _on_message_start(self, data):
        self._head = copy.deepcopy(data["message"])
        self._head["content"] = []
        self.usage = merge_usage(self.usage, self._head.pop("usage", None))

    def _on_content_block_start(self, data):
        index = int(data["index"])
        self._blocks[index] = copy.deepcopy(data["content_block"])
        # Deltas are kept as lists of pieces and joined when read: appending to a string
        # in a dict copies it each time, which is quadratic on long answers.
        self._pieces[index] = {}

    def _on_content_block_delta(self, data):
        index, delta = int(data["index"]), data["delta"]
        if index not in self._blocks:
            return
        pieces = self._pieces[index]
        field, value = _DELTA_FIELDS.get(delta.get("type"), (None, None))
        if field is not None:
            pieces.setdefault(field, []).append(str(delta[value]))
        elif delta.get("type") == "citations_delta":
            self._blocks[index].setdefault("citations", []).append(delta["citation"])

    def _on_message_delta(self, data):
        if self._head is not None:
            self._head.update(copy.deepcopy(data.get("delta") or {}))
        self.usage = merge_usage(self.usage, data.get("usage"))

    def _on_message_stop(self, data):
        self.complete = True

    def _on_error(self, data):
        self.error = copy.deepcopy(data.get("error") or data)

    @property
    def message(self):
        """The message rebuilt so far (None before message_start)."""
        if self._head is None:
            return None
        message = copy.deepcopy(self._head)
        message["content"] = [self._finished(i) for i in sorted(self._blocks)]
        message["usage"] = copy.deepcopy(self.usage)
        return message

    def _finished(self, index):
        block = copy.deepcopy(self._blocks[index])
        for field, pieces in self._pieces[index].items():
            joined = "".join(pieces)
            if field != "input":
                block[field] = block.get(field, "") + joined
            elif block.get("type") in _JSON_INPUT_BLOCKS and joined.strip():
                try:
                    block["input"] = json.loads(joined)
                except ValueError:
                    pass  # truncated mid-input: keep what content_block_start gave
        return block

    def result(self):
        return Accumulated(self.message, copy.deepcopy(self.usage), self.error, self.complete)


def events_from_sse(data):
    """(event name, parsed JSON) for each event in `data` whose data is JSON."""
    for event in SSEParser().feed(data):
        try:
            yield event.event, json.loads(event.data)
        except ValueError:
            continue


def message_from_sse(data):
    """Rebuild the message from a whole (or truncated) SSE body in bytes."""
    accumulator = MessageAccumulator()
    for name, payload in events_from_sse(data):
        accumulator.feed(name, payload)
    return accumulator.result()
