"""Real Claude Code (npm `@anthropic-ai/claude-code@2`) as a client of the proxy, for tests.

    binary = claude_code_binary()            # None when it is not installed
    repo = git_repository(tmp / "shop", "feature/cart")
    run = run_claude(binary, "Fix it " + script_tag(steps), base_url=proxy.url,
                     home=tmp / "alice", cwd=repo, auth_token="sk-ant-oat01-alice")

`.ci/setup-claude-code.sh` installs it into a cache directory outside the checkout
and exports NEXUS_CLAUDE_CODE (the `claude` executable); without that variable the
default cache directory is looked at, then `claude` on PATH (major version 2 only).
`require_claude_code()` skips a test when it is missing, and fails it under
NEXUS_REQUIRE_ALL=1 as the other real parts do.

`run_claude` runs `claude -p` non-interactively in `cwd` with HOME set to a
per-developer directory, ANTHROPIC_BASE_URL at the proxy, and either an API key or a
subscription-style bearer token; it returns what Claude Code printed (its JSON result
parsed) and never outlives `timeout`. The stand-in upstream that answers it is
tests/claude_code_upstream.py; `python -m tests.claude_code --capture DIR` rewrites the
request-body fixtures in tests/data/claude_code/.
"""
import argparse
import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass

from tests.claude_code_upstream import script_tag, start_claude_code_upstream

PACKAGE = "@anthropic-ai/claude-code@2"
DEFAULT_DIR = os.path.join(os.path.expanduser("~"), ".cache", "nexus", "claude-code")
# Only what Claude Code needs to run a shell and git; nothing of the caller's own setup
# (a developer's real ~/.claude, their ANTHROPIC_* variables) leaks into a run.
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
QUIET = {
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    # --dangerously-skip-permissions refuses to run as root outside a sandbox; these
    # runs are one (temporary HOME and repository, a stand-in upstream).
    "IS_SANDBOX": "1",
}


def _version(path):
    try:
        done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60,
                              env={"PATH": SYSTEM_PATH, "HOME": tempfile.gettempdir(), **QUIET})
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.split()[0] if done.returncode == 0 and done.stdout.strip() else None


def claude_code_binary():
    """The path of a Claude Code 2.x `claude` executable, or None."""
    candidates = [os.environ.get("NEXUS_CLAUDE_CODE"),
                  os.path.join(DEFAULT_DIR, "node_modules", ".bin", "claude"),
                  shutil.which("claude")]
    for path in candidates:
        if path and os.access(path, os.X_OK) and (_version(path) or "").startswith("2."):
            return path
    return None


def claude_code_version(binary):
    """The version Claude Code reports, e.g. `2.1.197`."""
    return _version(binary)


def require_claude_code():
    """The `claude` executable; skips (fails under NEXUS_REQUIRE_ALL) when it is missing."""
    from tests.reliability.support import require
    binary = claude_code_binary()
    require(binary is not None, f"real Claude Code ({PACKAGE}) is not installed: run "
            ".ci/setup-claude-code.sh or set NEXUS_CLAUDE_CODE to its `claude`")
    return binary


def git_repository(path, branch, files=None):
    """A git repository at `path` with one commit, checked out on `branch`; its path."""
    os.makedirs(path, exist_ok=True)
    files = files or {"README.md": f"# {os.path.basename(path)}\n\nA test repository.\n"}
    for name, content in files.items():
        with open(os.path.join(path, name), "w") as f:
            f.write(content)
    env = {"PATH": SYSTEM_PATH, "HOME": str(path), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "Nexus Test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
           "GIT_COMMITTER_NAME": "Nexus Test", "GIT_COMMITTER_EMAIL": "test@example.invalid"}
    for command in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"],
                    ["git", "commit", "-q", "-m", "First commit"],
                    ["git", "checkout", "-q", "-b", branch]):
        subprocess.run(command, cwd=path, env=env, check=True, capture_output=True)
    return str(path)


@dataclass
class ClaudeRun:
    """What one `claude -p` run printed: exit code, stdout, stderr, the JSON result."""

    returncode: int
    stdout: str
    stderr: str
    result: dict | None

    @property
    def session_id(self):
        return (self.result or {}).get("session_id")


def claude_env(base_url, home, api_key=None, auth_token=None):
    """The environment of a run: a clean one, pointed at `base_url`, with one credential."""
    if (api_key is None) == (auth_token is None):
        raise ValueError("give exactly one of api_key and auth_token")
    env = {"PATH": SYSTEM_PATH, "HOME": str(home), "LANG": "C.UTF-8", "TERM": "dumb",
           "ANTHROPIC_BASE_URL": base_url, **QUIET}
    env["ANTHROPIC_API_KEY" if api_key else "ANTHROPIC_AUTH_TOKEN"] = api_key or auth_token
    return env


def run_claude(binary, prompt, *, base_url, home, cwd, api_key=None, auth_token=None,
               model=None, max_turns=12, timeout=180, output_format="json", extra_args=(),
               permissions=("--dangerously-skip-permissions",)):
    """Run `claude -p prompt` to completion (or kill it after `timeout` s); a ClaudeRun.

    `permissions` are the flags that let tools run unasked (e.g. `--allowedTools Bash`
    instead); `extra_args` go to `claude` as they are."""
    os.makedirs(home, exist_ok=True)
    command = [binary, "-p", prompt, "--output-format", output_format,
               "--max-turns", str(max_turns), *permissions, *extra_args]
    if output_format == "stream-json":
        command.append("--verbose")  # -p refuses stream-json without it
    if model:
        command += ["--model", model]
    process = subprocess.Popen(command, cwd=cwd, env=claude_env(base_url, home, api_key, auth_token),
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stdout, stderr = _kill(process)
        stderr += f"\n[killed after {timeout} s]"
    finally:
        _kill(process)  # a background shell it started must not outlive the run
    return ClaudeRun(process.returncode, stdout, stderr, _result(stdout))


def _kill(process):
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    if process.returncode is None or process.stdout and not process.stdout.closed:
        return process.communicate()
    return "", ""


def _result(stdout):
    for line in reversed((stdout or "").strip().splitlines()):
        with contextlib.suppress(ValueError):
            value = json.loads(line)
            if isinstance(value, dict):
                return value
    return None


# -- a whole session, for tests and for the fixtures ------------------------------------

def session_script(repo, subagent="Explore"):
    """Steps of a session that reads, runs a shell command, then delegates to a sub-agent."""
    return [
        {"tool": "Bash", "input": {"command": "git status --short --branch",
                                   "description": "Show the branch and status"}},
        {"tool": "Read", "input": {"file_path": os.path.join(repo, "README.md")}},
        {"agent": subagent, "description": "Survey the repository",
         "prompt": "List the files of this repository and say what they hold.",
         "script": [{"tool": "Bash", "input": {"command": "ls -la",
                                                "description": "List the files"}},
                    {"text": "The repository holds a README."}]},
        {"text": "All done: the repository is clean and documented."},
    ]


SUGGESTION = "[SUGGESTION MODE"


def kind_of(body):
    """`main`, `subagent` or `side` for a request body Claude Code sent (for fixtures).

    The side call of a `-p` run is the prompt suggestion (`--prompt-suggestions`): the
    main conversation, forked, with one more user message asking what comes next."""
    tools = {t.get("name") for t in body.get("tools") or []}
    last = (body.get("messages") or [{}])[-1].get("content")
    if not tools or (isinstance(last, str) and last.startswith(SUGGESTION)):
        return "side"
    return "main" if "Agent" in tools else "subagent"


def capture(directory, binary=None):
    """Run a session in each auth mode and save one request body of each kind under
    `directory/<mode>/`, with a README naming the version (`--capture`)."""
    binary = binary or claude_code_binary()
    if not binary:
        raise SystemExit(f"Claude Code is not installed ({PACKAGE})")
    version = claude_code_version(binary)
    saved = {}
    with tempfile.TemporaryDirectory(prefix="nexus-cc-") as tmp, start_claude_code_upstream() as up:
        for mode, credential in (("auth_token", "sk-ant-oat01-fixture-token"),
                                 ("api_key", "sk-ant-api03-fixture-key")):
            repo = git_repository(os.path.join(tmp, mode, "shop"), "feature/cart")
            up.clear()
            run = run_claude(binary, "Check the repository. " + script_tag(session_script(repo)),
                             base_url=up.url, home=os.path.join(tmp, mode, "home"), cwd=repo,
                             output_format="stream-json",
                             extra_args=("--prompt-suggestions", "true"), **{mode: credential})
            if run.returncode != 0:
                raise SystemExit(f"claude failed ({mode}): {run.stderr[-2000:]}")
            os.makedirs(os.path.join(directory, mode), exist_ok=True)
            for received in up.requests():
                if received["path"] != "/v1/messages":
                    continue
                body = json.loads(base64.b64decode(received["body_b64"]))
                name = kind_of(body)
                if name in saved.get(mode, ()):
                    continue
                saved.setdefault(mode, []).append(name)
                _write_json(os.path.join(directory, mode, f"{name}.json"), body)
                _write_json(os.path.join(directory, mode, f"{name}.headers.json"),
                            dict(received["headers"]))
    return version, saved


def _write_json(path, value):
    with open(path, "w") as f:
        json.dump(value, f, indent=1, ensure_ascii=False)
        f.write("\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description="Capture Claude Code's request bodies.")
    parser.add_argument("--capture", metavar="DIR", required=True,
                        help="write <mode>/<kind>.json request bodies here")
    args = parser.parse_args(argv)
    version, saved = capture(args.capture)
    print(json.dumps({"version": version, "saved": saved}))


if __name__ == "__main__":
    sys.exit(main())
