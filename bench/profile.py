"""Profile the proxy's worker under load with py-spy; print where the time goes.

    python -m bench.profile --target proxy-sqlite --connections 50 --seconds 8
    python -m bench.profile --target proxy-off --body 1mb
    python -m bench.profile --target proxy-postgresql --body 300kb --connections 1 --with-writer
    python -m bench.profile --target proxy-off --body stream --connections 10

py-spy (a bench-only dependency: `pip install py-spy`) samples the one gunicorn
worker while wrk loads it through the stand-in. The summary lists functions by
self time and by inclusive time, as file:line, with the thread (the gevent hub
serving requests, or the recorder's writer) they ran in. Only samples holding
the GIL count (`--gil`): that is CPU the worker's requests compete for. `--raw` keeps the
collapsed stacks (flamegraph.pl or speedscope read them). `--with-writer` samples the
worker's child processes too (the record writer, proxy/writer.py); each stack then
starts with the process it ran in.
"""
import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from bench import lineup, run, servers, wrk


def summarize(collapsed, top=25):
    """(total samples, [(self share, frame)], [(inclusive share, function)]) of collapsed stacks."""
    own, inclusive, total = collections.Counter(), collections.Counter(), 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        count = int(count)
        total += count
        frames = stack.split(";")
        own[_short(frames[-1])] += count
        for function in {_function(f) for f in frames}:
            inclusive[function] += count
    share = lambda c: [(n / total, k) for k, n in c.most_common(top)] if total else []  # noqa: E731
    return total, share(own), share(inclusive)


def _short(frame):
    return frame.replace(str(run.ROOT) + "/", "").replace(sys.prefix + "/lib/", "")


def _function(frame):
    """A frame without its line number: 'name (file)'."""
    frame = _short(frame)
    head, _, where = frame.rpartition(" (")
    return f"{head} ({where.rsplit(':', 1)[0]})" if head and ":" in where else frame


def render(total, own, inclusive, title):
    """The summary as text."""
    lines = [f"# {title}", f"{total} samples", "", "## self time (innermost frame)"]
    lines += [f"{share:6.1%}  {frame}" for share, frame in own]
    lines += ["", "## inclusive time (function anywhere on the stack)"]
    lines += [f"{share:6.1%}  {frame}" for share, frame in inclusive]
    return "\n".join(lines) + "\n"


def profile(target_name, connections, seconds, body, rate, workdir, with_writer=False):
    """Run the load, record with py-spy; the collapsed stacks as text."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    files = run.write_bodies(workdir)
    out = Path(workdir) / "profile.txt"
    with servers.upstream(workdir) as upstream, lineup.start(target_name, upstream, workdir) as target:
        wrk.run(target.url, files.small, 50, 1)  # warm up
        body_file = {"1mb": files.big, "300kb": files.claude_code}.get(body, files.small)
        headers = None
        if body == "stream":
            body_file = Path(workdir) / "stream.json"
            body_file.write_bytes(files.small_stream)
            headers = {"x-bench-events": 200, "x-bench-interval-ms": 1, "x-bench-first-ms": 2}
        load = threading.Thread(target=wrk.run, args=(target.url, body_file, connections, seconds + 2),
                                kwargs={"headers": headers})
        load.start()
        subprocess.run([py_spy, "record", "-p", str(target.worker_pid), "-d", str(seconds),
                        "-r", str(rate), "--threads", "--gil", "--nonblocking", "-f", "raw", "-o", str(out),
                        *(["--subprocesses"] if with_writer else [])],
                       check=True, capture_output=True)
        load.join()
    return out.read_text()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="proxy-sqlite", choices=lineup.TARGETS[1:])
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--body", choices=("small", "300kb", "1mb", "stream"), default="small")
    parser.add_argument("--rate", type=int, default=250, help="samples per second")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--raw", help="also write the collapsed stacks to this file")
    parser.add_argument("--with-writer", action="store_true",
                        help="sample the worker's child processes (the record writer) too")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="nexus-profile-") as workdir:
        collapsed = profile(args.target, args.connections, args.seconds, args.body, args.rate,
                            workdir, args.with_writer)
    if args.raw:
        Path(args.raw).write_text(collapsed)
    title = f"{args.target}, {args.body} body, {args.connections} connections, {args.seconds} s"
    title += ", worker and writer process" if args.with_writer else ""
    print(render(*summarize(collapsed, args.top), title))
    return 0


if __name__ == "__main__":
    sys.exit(main())
