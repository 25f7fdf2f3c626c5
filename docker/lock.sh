#!/bin/sh
# Regenerate docker/requirements-{proxy,dashboard}.txt: every package the image
# installs, pinned, with the sha256 of each of its published files, so that the
# Docker build installs with --require-hashes. Run after changing the
# dependency lists in pyproject.toml (`make lock`).
#
# Hashes come from pypi.org alone: a local mirror or wheel cache configured for
# pip on this machine must not leak into the lock.
set -eu
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
PIP_TOOLS=${PIP_TOOLS:-pip-tools==7.6.2}
INDEX=${LOCK_INDEX_URL:-https://pypi.org/simple}

tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
export PIP_CONFIG_FILE=/dev/null PIP_FIND_LINKS= PIP_EXTRA_INDEX_URL= PIP_DISABLE_PIP_VERSION_CHECK=1
"$PYTHON" -m venv "$tools"
"$tools/bin/pip" install --quiet --index-url "$INDEX" "$PIP_TOOLS"

for service in proxy dashboard; do
    # The proxy image carries OpenTelemetry export (the otel extra); the dashboard has none.
    extra=; [ "$service" = proxy ] && extra="--extra otel"
    CUSTOM_COMPILE_COMMAND="make lock" "$tools/bin/pip-compile" --quiet \
        --index-url "$INDEX" --no-emit-index-url --no-emit-find-links \
        --generate-hashes --allow-unsafe --strip-extras --resolver=backtracking \
        --extra "$service" $extra \
        --output-file "docker/requirements-$service.txt" \
        pyproject.toml docker/build-requirements.in
done
