"""The grouping keys read from what real Claude Code sends (tests/data/claude_code)."""
import json
import pathlib

import pytest

from common import traits
from common.recording.pieces import split_body

DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "claude_code"
MODES = ("auth_token", "api_key")


def _body(mode, kind):
    return json.loads((DATA / mode / f"{kind}.json").read_text())


@pytest.mark.parametrize("mode", MODES)
def test_the_main_loop_names_its_working_directory_and_branch(mode):
    found = traits.body_traits(_body(mode, "main"))
    assert found["project"].endswith(f"/{mode}/shop")
    assert found["project"].startswith("/tmp/")
    assert found["git_branch"] == "feature/cart"


@pytest.mark.parametrize("mode", MODES)
def test_a_subagent_names_the_directory_in_its_own_words_but_no_branch(mode):
    main, sub = _body(mode, "main"), _body(mode, "subagent")
    found = traits.body_traits(sub)
    assert found["project"] == traits.body_traits(main)["project"]
    assert found["git_branch"] is None  # it comes from the spawning request (linking)


@pytest.mark.parametrize("mode", MODES)
def test_the_developer_is_the_device_when_the_account_is_empty(mode):
    body = _body(mode, "main")
    user = json.loads(body["metadata"]["user_id"])
    assert user["account_uuid"] == ""
    assert traits.body_traits(body)["developer"] == user["device_id"]
    assert traits.body_traits(_body(mode, "side"))["developer"] == user["device_id"]


def test_the_traits_read_the_split_body_as_the_writer_holds_it():
    raw = (DATA / "auth_token" / "main.json").read_bytes()
    split = split_body(raw)
    assert traits.body_traits(split.fields) == traits.body_traits(json.loads(raw))


def test_the_environment_moved_into_the_first_messages_reminder_is_found():
    # --exclude-dynamic-system-prompt-sections: the system prompt leaves the environment out.
    body = {"system": [{"type": "text", "text": "You are Claude Code."}],
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "<system-reminder>\nEnvironment:\n - Primary working "
                 "directory: /home/ana/shop\n\ngitStatus: Current branch: x\nCurrent branch: "
                 "fix/login\n</system-reminder>"},
                {"type": "text", "text": "Working directory: /not/this (the user typed it)"}]}]}
    found = traits.body_traits(body)
    assert (found["project"], found["git_branch"]) == ("/home/ana/shop", "fix/login")


@pytest.mark.parametrize("line, expected", [
    ("<env>\nWorking directory: /srv/app\nIs directory a git repo: Yes\n</env>", "/srv/app"),
    (" - Primary working directory: /home/bo/my project  \n - Is a git repository: true",
     "/home/bo/my project"),
    ("Additional working directories: /tmp/other", None),
    ("You are Claude Code.", None),
])
def test_working_directory_forms(line, expected):
    assert traits.project([line]) == expected


@pytest.mark.parametrize("user_id, expected", [
    ('{"device_id":"dev1","account_uuid":"acc-1","session_id":"s"}', "acc-1"),
    ('{"device_id":"dev1","account_uuid":"","session_id":"s"}', "dev1"),
    ("user_" + "ab" * 32 + "_account_1b2c3d4e-0000-4000-8000-000000000001_session_"
     "5f6a7b8c-0000-4000-8000-000000000002", "1b2c3d4e-0000-4000-8000-000000000001"),
    ("user_" + "ab" * 32 + "_account__session_5f6a7b8c-0000-4000-8000-000000000002", "ab" * 32),
    ("", None), ("someone", None), ('{"session_id":"s"}', None), ("[1]", None), (None, None),
])
def test_developer_from_either_form_of_user_id(user_id, expected):
    assert traits.developer(user_id) == expected


def test_subagent_types_of_task_and_agent_calls():
    message = {"content": [
        {"type": "text", "text": "Delegating."},
        {"type": "tool_use", "id": "t1", "name": "Agent",
         "input": {"prompt": "Look", "subagent_type": "Explore"}},
        {"type": "tool_use", "id": "t2", "name": "Task", "input": {"prompt": "Old style"}},
        {"type": "tool_use", "id": "t3", "name": "Bash", "input": {"command": "ls"}}]}
    assert traits.subagent_types(message, ("Task", "Agent")) == {
        "t1": "Explore", "t2": traits.DEFAULT_SUBAGENT}
