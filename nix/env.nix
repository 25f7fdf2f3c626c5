# One service's Python environment: the interpreter and only the packages that
# service imports. Its bin/ holds python3, nexus and nexus-<service>.
{
  python3,
  callPackage,
  service,
}:
python3.withPackages (_: [ (callPackage ./package.nix { inherit service; }) ])
