# The test suite inside the Nix sandbox, on SQLite: no network, no PostgreSQL
# server, no Docker engine and no browser there, so those tests are left out
# (they run in .ci/run). Everything else runs as in `make test`.
{
  lib,
  python3,
  runCommand,
  callPackage,
}:
let
  package = callPackage ./package.nix { };
  python = python3.withPackages (ps: [
    package
    ps.pytest
    ps.pytest-timeout
    ps.responses
    ps.hypothesis
    ps.anthropic
    ps.pyyaml
    ps.requests
    ps.opentelemetry-proto
  ]);
  # What the tests read besides the code: docs, deployment files, the layout.
  src = import ./source.nix { inherit lib; } [
    ../pyproject.toml
    ../Makefile
    ../README.md
    ../.ci
    ../common
    ../proxy
    ../dashboard
    ../tests
    ../bench
    ../docs
    ../docker
    ../deploy
    ../nix
    ../flake.nix
    ../flake.lock
  ];
in
runCommand "claude-nexus-tests"
  {
    nativeBuildInputs = [ python ];
  }
  ''
    cp -r ${src} source
    chmod -R u+w source
    cd source
    export HOME=$TMPDIR
    # tests/common/test_serving.py imitates the wrappers this build makes; a venv
    # made from a Nix Python environment is not the bare interpreter it needs.
    python -m pytest -q -p no:cacheprovider \
      -m "not docker and not browser" -k "not postgresql" \
      --ignore=tests/common/test_serving.py tests
    touch $out
  ''
