"""Read the final stage of a Dockerfile into the shape of an image config.

Only the instructions our Dockerfiles use are understood; that is enough to
compare them with the config the Nix images declare.
"""
import json
import re
import shlex

_DURATION = re.compile(r"^(\d+)(ms|s|m|h)$")
_NANOS = {"ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


def instructions(text):
    """(KEYWORD, rest) pairs, continuation lines joined, comments dropped."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    pairs = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def _pairs(rest, args):
    """KEY=value words (ENV, LABEL), with ${ARG} references resolved."""
    values = {}
    for word in shlex.split(rest):
        key, _, value = word.partition("=")
        values[key] = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], value)
    return values


def _duration(text):
    number, unit = _DURATION.match(text).groups()
    return int(number) * _NANOS[unit]


def _healthcheck(rest):
    options, _, command = rest.partition("CMD ")
    check = {"Test": ["CMD", *json.loads(command)]}
    names = {"interval": "Interval", "timeout": "Timeout", "start-period": "StartPeriod"}
    for option in shlex.split(options):
        key, _, value = option.lstrip("-").partition("=")
        if key == "retries":
            check["Retries"] = int(value)
        else:
            check[names[key]] = _duration(value)
    return check


def final_stage_config(text):
    """Cmd, Env, ExposedPorts, User, WorkingDir, Healthcheck, Labels of the last stage."""
    stages = [[]]
    for keyword, rest in instructions(text):
        if keyword == "FROM":
            stages.append([])
        stages[-1].append((keyword, rest))
    config = {"Env": {}, "Labels": {}, "ExposedPorts": set()}
    args = {}
    for keyword, rest in stages[-1]:
        if keyword == "ARG":
            name, _, default = rest.partition("=")
            args[name] = default
        elif keyword == "ENV":
            config["Env"].update(_pairs(rest, args))
        elif keyword == "LABEL":
            config["Labels"].update(_pairs(rest, args))
        elif keyword == "EXPOSE":
            config["ExposedPorts"].update(f"{port}/tcp" for port in rest.split())
        elif keyword == "USER":
            config["User"] = rest
        elif keyword == "WORKDIR":
            config["WorkingDir"] = rest
        elif keyword == "CMD":
            config["Cmd"] = json.loads(rest)
        elif keyword == "HEALTHCHECK":
            config["Healthcheck"] = _healthcheck(rest)
    return config
