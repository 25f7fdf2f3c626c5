# The checkout's files for a derivation's src: `files` (paths under the root),
# and of them only those git tracks. A flake's source is already only what git
# tracks (and has no .git); `import ./nix` from a checkout has, and filters here.
{ lib }:
files:
let
  inherit (lib) fileset;
  chosen = fileset.unions files;
in
fileset.toSource {
  root = ../.;
  fileset =
    if builtins.pathExists ../.git then
      fileset.intersection (fileset.gitTracked ../.) chosen
    else
      chosen;
}
