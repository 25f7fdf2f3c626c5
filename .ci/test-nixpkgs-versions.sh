#!/usr/bin/env bash
# The suite under the pinned nixpkgs' Python and package versions
# (nix/python-versions.txt), beside the main run under the Docker images' pins:
# what `nix flake check` runs, and how the Nix images behave. CI has no Nix
# (and no network to nixpkgs), so a CPython of the same minor version from pyenv
# and the same versions from PyPI stand in. It runs the parts whose behaviour
# those versions decide (the services, storage, the dashboard, hostile input, the
# flake) and, to stay near ten minutes on CI's two cores, leaves out Docker, the
# browser and the long runs; unlike nix/checks.nix it has PostgreSQL, so the
# tests on both databases run. Arguments replace the default test paths.
set -euo pipefail
cd "$(dirname "$0")/.."
versions=nix/python-versions.txt
minor=$(awk '$1 == "python" {print $2}' "$versions")
pyenv_root=${PYENV_ROOT:-/root/.pyenv}
python=$(ls -d "$pyenv_root"/versions/"$minor".*/bin/python3 2>/dev/null | sort -V | tail -n 1)
[ -n "$python" ] || { echo "no CPython $minor under $pyenv_root/versions" >&2; exit 1; }
venv=${NIXPKGS_VENV:-.venv-nixpkgs}
pins=$(awk '!/^#/ && NF == 2 && $1 != "python" {print $1 "==" $2}' "$versions")
stamp="$venv/.installed"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$python $pins" ]; then
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check $pins
    echo "$python $pins" > "$stamp"
fi
echo "$("$venv/bin/python" --version); $(echo $pins)"
[ $# -gt 0 ] || set -- tests/proxy tests/common tests/dashboard tests/reliability tests/nix \
    tests/test_layout.py
# The checkout on the path, not installed: the tests import it as they find it.
PYTHONPATH=$PWD "$venv/bin/python" -m pytest -q -p no:cacheprovider \
    -m "not docker and not browser and not slow" "$@"
