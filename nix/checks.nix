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
  src = lib.fileset.toSource {
    root = ../.;
    # What the tests read besides the code: docs, deployment files, the layout.
    fileset = lib.fileset.unions [
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
  };
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
    python -m pytest -q -p no:cacheprovider \
      -m "not docker and not browser" -k "not postgresql" tests
    touch $out
  ''
