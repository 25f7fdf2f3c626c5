"""What the search indexes of a message, and the snippets it shows: pure."""
import json

from common.recording.search_text import (answer_text, piece_text, query_words, snippet,
                                          words)


def test_a_user_message_gives_its_text_and_tool_results():
    piece = json.dumps({"role": "user", "content": [
        {"type": "text", "text": "run the tests"},
        {"type": "tool_result", "tool_use_id": "t1",
         "content": [{"type": "text", "text": "3 failed"}]},
        {"type": "tool_result", "tool_use_id": "t2", "content": "plain output"},
        {"type": "image", "source": {"data": "aGVsbG8="}}]}).encode()
    assert piece_text("message", piece) == "run the tests\n3 failed\nplain output"


def test_assistant_history_system_and_tools_are_not_indexed_from_pieces():
    assistant = json.dumps({"role": "assistant", "content": "said before"}).encode()
    assert piece_text("message", assistant) is None
    assert piece_text("system", b'{"type":"text","text":"You are Claude Code"}') is None
    assert piece_text("tool", b'{"name":"Bash"}') is None
    assert piece_text("message", b"not json") is None


def test_an_answer_gives_its_text_and_tool_inputs_not_its_thinking():
    message = {"role": "assistant", "content": [
        {"type": "thinking", "thinking": "secret musing"},
        {"type": "text", "text": "I will list files."},
        {"type": "tool_use", "id": "t", "name": "Bash",
         "input": {"command": "ls -la /srv", "timeout": 30, "flags": ["x"]}}]}
    text = answer_text(message)
    assert text == "I will list files.\nls -la /srv\n30\nx"
    assert "musing" not in text
    assert answer_text(None) is None


def test_words_are_letters_and_digits_lower_cased_and_distinct():
    assert words("Fix parse_line() in CLI.py, fix it!") == ["cli", "fix", "in", "it", "line",
                                                            "parse", "py"]
    assert words("x" * 65 + " ok") == ["ok"]
    assert query_words("  Parse_LINE parse ") == ["parse", "line"]
    assert query_words("") == []


def test_a_snippet_marks_the_words_and_escapes_everything_else():
    text = "<script>alert(1)</script> the zebra & the <b>ZEBRA</b>"
    html = snippet(text, ["zebra"])
    assert "<script>" not in html and "<b>" not in html
    assert html == ("&lt;script&gt;alert(1)&lt;/script&gt; the <mark>zebra</mark> &amp; "
                    "the &lt;b&gt;<mark>ZEBRA</mark>&lt;/b&gt;")


def test_a_snippet_of_a_long_text_is_cut_around_the_first_match():
    text = "filler " * 200 + "needle here " + "tail " * 200
    html = snippet(text, ["needle"], width=100)
    assert html.startswith("…") and html.endswith("…")
    assert "<mark>needle</mark>" in html
    assert len(html) < 140


def test_claude_code_reminders_are_not_what_people_read():
    piece = json.dumps({"role": "user", "content": [
        {"type": "text", "text": "<system-reminder>CLAUDE.md says tabs</system-reminder>"},
        {"type": "text", "text": "use spaces <system-reminder>todo</system-reminder>please"}]})
    assert piece_text("message", piece.encode()) == "use spaces please"
    only = json.dumps({"role": "user", "content": "<system-reminder>x</system-reminder>"})
    assert piece_text("message", only.encode()) is None


def test_a_snippet_comes_back_apart_for_templates_that_escape():
    from common.recording.search_text import snippet_parts
    html = snippet("a <b> zebra & c", ["zebra"])
    assert snippet_parts(html) == [("a <b> ", False), ("zebra", True), (" & c", False)]
