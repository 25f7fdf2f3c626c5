"""What a busy neighbour process does to the proxy's latency at concurrency 1.

    python -m bench.neighbour [--seconds 5] [--busy 0.04] [--period 0.1] [--target proxy-off]

The recording writer saves a batch every 0.1 s and is busy for part of it, on a core the
worker, the client and the upstream also use. This measures that shape of load without
the proxy's writer: `--target` (recording off by default) under `wrk` at one connection,
first alone, then beside a process that spins for `--busy` seconds out of every
`--period`, at nice 0 and at nice 19, then alone again. On this project's 2-core machine
a neighbour busy 40 % of a core raised recording-off's p99 from about 1 ms to about 4.5
ms at either nice level (docs/recording-performance.md): the recording-on p99 at c=1 is
the writer's CPU, not its priority or the worker's hand-off.
"""
import argparse
import subprocess
import sys
import tempfile
import time

from bench import lineup, run, servers, wrk

SPIN = ("import os, time\nos.nice({nice})\nwhile True:\n    t = time.monotonic()\n"
        "    while time.monotonic() - t < {busy}:\n        pass\n    time.sleep({rest})\n")


def measure(target_name, seconds, busy, period):
    """[(neighbour, wrk summary)] for: none, nice 0, nice 19, none."""
    plan = [("none", None), ("nice 0", 0), ("nice 19", 19), ("none, again", None)]
    found = []
    with tempfile.TemporaryDirectory(prefix="nexus-neighbour-") as workdir:
        files = run.write_bodies(workdir)
        with servers.upstream(workdir) as upstream, lineup.start(target_name, upstream, workdir) as target:
            wrk.run(target.url, files.small, 50, 1)  # warm up
            for label, nice in plan:
                spinner = None
                if nice is not None:
                    code = SPIN.format(nice=nice, busy=busy, rest=max(0.0, period - busy))
                    spinner = subprocess.Popen([sys.executable, "-c", code])
                    time.sleep(0.3)
                try:
                    found.append((label, wrk.run(target.url, files.small, 1, seconds)))
                finally:
                    if spinner is not None:
                        spinner.kill()
                        spinner.wait()
    return found


def render(found, target_name, busy, period):
    """The figures as a Markdown table."""
    lines = [f"{target_name}, small request, 1 connection; neighbour busy {busy * 1000:.0f} ms "
             f"of every {period * 1000:.0f} ms", "",
             "| neighbour | req/s | p50 ms | p90 ms | p99 ms |", "|---|---|---|---|---|"]
    for label, summary in found:
        lat = summary["latency_us"]
        lines.append(f"| {label} | {summary['requests_per_s']:,.0f} | {lat['p50'] / 1000:.3f} | "
                     f"{lat['p90'] / 1000:.3f} | {lat['p99'] / 1000:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.neighbour", description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="proxy-off", choices=lineup.TARGETS)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--busy", type=float, default=0.04, help="seconds the neighbour spins")
    parser.add_argument("--period", type=float, default=0.1, help="seconds between its bursts")
    args = parser.parse_args(argv)
    found = measure(args.target, args.seconds, args.busy, args.period)
    print(render(found, args.target, args.busy, args.period))
    return 0


if __name__ == "__main__":
    sys.exit(main())
