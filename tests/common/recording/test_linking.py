"""Linking's pure rules: sessions, message hashes, request types, compaction, sub-agents."""
import json

import pytest

from common.recording import linking
from tests import scenarios

SESSION = "6f1d2c3b-1111-4222-8333-944455556666"
ACCOUNT = "0a0b0c0d-1111-4222-8333-944455556666"


def test_session_from_old_user_id_form():
    user_id = f"user_{'ab' * 32}_account_{ACCOUNT}_session_{SESSION}"
    assert linking.parse_user_id(user_id) == (SESSION, ACCOUNT)


def test_session_from_json_user_id_form():
    user_id = json.dumps({"device_id": "f" * 64, "account_uuid": ACCOUNT, "session_id": SESSION})
    assert linking.parse_user_id(user_id) == (SESSION, ACCOUNT)


def test_api_key_users_have_an_empty_account():
    user_id = json.dumps({"device_id": "f" * 64, "account_uuid": "", "session_id": SESSION})
    assert linking.parse_user_id(user_id) == (SESSION, None)


@pytest.mark.parametrize("user_id", [None, "", "claude-1", "{not json", "[1, 2]", 42])
def test_other_user_ids_give_nothing(user_id):
    assert linking.parse_user_id(user_id) == (None, None)


def test_the_session_header_wins_over_metadata():
    body = {"metadata": {"user_id": f"user_{'ab' * 32}_account_{ACCOUNT}_session_{SESSION}"}}
    assert linking.session_and_account({"x-claude-code-session-id": "from-header"}, body) == (
        "from-header", ACCOUNT)
    assert linking.session_and_account({}, body) == (SESSION, ACCOUNT)


def _user(*texts):
    return {"role": "user", "content": [{"type": "text", "text": t} for t in texts]}


def test_string_and_block_content_hash_the_same():
    as_string = [{"role": "user", "content": "fix the test"}]
    assert linking.current_message_hash(as_string) == linking.current_message_hash([_user("fix the test")])


def test_system_reminders_and_cache_control_do_not_change_the_hash():
    plain = [_user("fix the test")]
    noisy = [_user("<system-reminder>\nCLAUDE.md says: use pytest\n</system-reminder>", "fix the test")]
    noisy[0]["content"][-1]["cache_control"] = {"type": "ephemeral"}
    inline = [{"role": "user", "content": "fix <system-reminder>todo</system-reminder>the test"}]
    assert linking.current_message_hash(noisy) == linking.current_message_hash(plain)
    assert linking.current_message_hash(inline) == linking.current_message_hash(
        [{"role": "user", "content": "fix the test"}])


def test_a_different_word_changes_the_hash():
    assert linking.current_message_hash([_user("fix the test")]) != linking.current_message_hash(
        [_user("fix the tests")])


def test_resent_tool_results_and_new_tool_ids_hash_the_same():
    call = {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"file_path": "/a"}}
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "text"}
    once = [_user("go"), {"role": "assistant", "content": [call]},
            {"role": "user", "content": [result]}]
    twice = [_user("go"), {"role": "assistant", "content": [call]},
             {"role": "user", "content": [result, dict(result)]}]
    renamed = json.loads(json.dumps(once).replace("toolu_1", "toolu_2"))
    assert linking.current_message_hash(once) == linking.current_message_hash(twice)
    assert linking.current_message_hash(once) == linking.current_message_hash(renamed)


def test_thinking_blocks_and_system_messages_are_ignored():
    answer = {"role": "assistant", "content": [
        {"type": "thinking", "thinking": "hmm", "signature": "sig"}, {"type": "text", "text": "ok"}]}
    bare = {"role": "assistant", "content": [{"type": "text", "text": "ok"}]}
    system = {"role": "system", "content": "be brief"}
    assert linking.current_message_hash([_user("a"), answer]) == linking.current_message_hash(
        [system, _user("a"), bare])


def test_parent_hash_is_the_previous_requests_hash():
    first = [_user("hi")]
    second = first + [{"role": "assistant", "content": "hello"}, _user("list files")]
    third = second + [{"role": "assistant", "content": "done"}, _user("thanks")]
    assert linking.parent_message_hash(first) is None
    assert linking.parent_message_hash(second) == linking.current_message_hash(first)
    assert linking.parent_message_hash(third) == linking.current_message_hash(second)
    hashes = linking.prefix_hashes(third)
    assert linking.ancestor_hashes(hashes) == [linking.current_message_hash(second),
                                               linking.current_message_hash(first)]


def test_system_hash_ignores_cache_control_and_is_none_without_system():
    blocks = [{"type": "text", "text": "You are Claude Code", "cache_control": {"type": "ephemeral"}}]
    assert linking.system_hash(blocks) == linking.system_hash("You are Claude Code")
    assert linking.system_hash(None) is None


CLAUDE_CODE = {"user-agent": "claude-cli/2.0.14 (external, cli)", "x-app": "cli"}


@pytest.mark.parametrize("path, body, headers, expected", [
    ("/v1/messages", {"model": "claude-haiku-4-5", "max_tokens": 1,
                      "messages": [{"role": "user", "content": "quota"}]}, CLAUDE_CODE, "quota"),
    ("/v1/messages", {"model": "claude-haiku-4-5", "max_tokens": 512, "system": "Write a title",
                      "messages": [{"role": "user", "content": "Please write a title"}]},
     CLAUDE_CODE, "query_evaluation"),
    ("/v1/messages", {"model": "claude-haiku-4-5", "max_tokens": 512,
                      "messages": [{"role": "user", "content": "What is 2+2?"}]},
     {"user-agent": "Anthropic/Python 0.70.0"}, "inference"),
    ("/v1/messages", {"model": "claude-haiku-4-5", "max_tokens": 512, "tools": scenarios.TOOLS,
                      "messages": [{"role": "user", "content": "Find callers"}]},
     CLAUDE_CODE, "inference"),
    ("/v1/messages", {"model": "claude-sonnet-4-5", "max_tokens": 512,
                      "messages": [{"role": "user", "content": "hi"}]}, CLAUDE_CODE, "inference"),
    ("/v1/messages/count_tokens", {"messages": []}, CLAUDE_CODE, "count_tokens"),
    ("/v1/messages/batches/msgbatch_1/results", None, {}, "batch"),
    ("/v1/models", None, {}, "models"),
    ("/v1/files/file_1", None, {}, "files"),
    ("/v1/organizations/usage", None, {}, "other"),
])
def test_request_types(path, body, headers, expected):
    assert linking.request_type(path, body, headers) == expected


SUMMARY = "1. Primary Request and Intent:\n   Fix the parser.\n2. Pending Tasks:\n   - tests\n"


def test_old_and_new_continuations_match_the_summarisers_answer():
    answer = f"<analysis>\nthinking it over\n</analysis>\n\n<summary>\n{SUMMARY}</summary>"
    expected = linking.summary_fingerprint(answer)
    old = (scenarios.OLD_CONTINUATION + "Analysis:\nthinking it over\n\nSummary:\n" + SUMMARY + ".")
    new = (scenarios.NEW_CONTINUATION + "Summary:\n" + SUMMARY + "\n\nIf you need specific details "
           "from before compaction, read the full transcript at: /tmp/x.jsonl\nPlease continue "
           "the conversation from where we left it off without asking the user any further questions.")
    for text in (old, new):
        body = {"messages": [_user("<system-reminder>ctx</system-reminder>", text, "next step")]}
        assert linking.continuation_summary(body) == expected


def test_an_ordinary_first_message_is_no_continuation():
    assert linking.continuation_summary({"messages": [_user("hi")]}) is None
    assert linking.is_summary_request({"messages": [_user(scenarios.SUMMARY_INSTRUCTION)]})
    assert not linking.is_summary_request({"messages": [_user("hi")]})


def test_task_and_agent_calls_are_found_by_name():
    message = {"content": [
        {"type": "text", "text": "in parallel"},
        {"type": "tool_use", "id": "t1", "name": "Task", "input": {"prompt": "Find  callers\n"}},
        {"type": "tool_use", "id": "t2", "name": "Agent", "input": {"prompt": "Rename it"}},
        {"type": "tool_use", "id": "t3", "name": "Bash", "input": {"prompt": "not a task"}}]}
    found = linking.task_invocations(message, ("Task", "Agent"))
    assert found == [("t1", linking.prompt_hash("Find callers")), ("t2", linking.prompt_hash("Rename it"))]
    assert linking.task_invocations(message, ("Agent",)) == [("t2", linking.prompt_hash("Rename it"))]


def test_a_sub_agents_first_prompt_matches_its_task_call():
    body = {"messages": [_user("<system-reminder>ctx</system-reminder>", "Find callers")]}
    assert linking.prompt_hash("Find callers") in linking.first_prompt_hashes(body)
    assert linking.first_prompt_hashes({"messages": []}) == []

