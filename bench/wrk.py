"""Plain (non-streaming) load with Debian's `wrk`: closed loop, fixed connections."""
import json
import shutil
import subprocess
from pathlib import Path

LUA = Path(__file__).with_name("lua") / "post.lua"


class WrkError(RuntimeError):
    """wrk is missing or printed no summary."""


def find_wrk():
    """The path of wrk, or an error saying how to install it."""
    path = shutil.which("wrk")
    if path is None:
        raise WrkError("wrk not found: install it with `apt-get install wrk` (Debian)")
    return path


def run(url, body_file, connections, duration, headers=None, timeout_s=10):
    """POST `body_file` to `url` from `connections` connections for `duration` seconds.

    Returns wrk's summary: requests, duration_us, errors, latency_us percentiles,
    plus requests_per_s.
    """
    argv = [find_wrk(), "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s",
            f"--timeout={timeout_s}s", "-s", str(LUA)]
    for name, value in (headers or {}).items():
        argv += ["-H", f"{name}: {value}"]
    argv.append(url)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + timeout_s + 30,
                          env={"BENCH_BODY": str(body_file), "PATH": "/usr/bin:/bin"})
    return parse_output(done.stdout, done.stderr)


def parse_output(stdout, stderr=""):
    """The BENCH_JSON summary line of wrk's output, with requests_per_s added."""
    for line in stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            summary = json.loads(line[len("BENCH_JSON "):])
            seconds = summary["duration_us"] / 1e6
            summary["requests_per_s"] = summary["requests"] / seconds if seconds else 0.0
            return summary
    raise WrkError(f"wrk printed no summary:\n{stdout}\n{stderr}")
