# Every output of the flake for one system, given that system's nixpkgs.
{ pkgs }:
{
  package = pkgs.callPackage ./package.nix { };
  proxyEnv = pkgs.callPackage ./env.nix { service = "proxy"; };
  dashboardEnv = pkgs.callPackage ./env.nix { service = "dashboard"; };
  proxyImage = pkgs.callPackage ./proxy-image.nix { };
  dashboardImage = pkgs.callPackage ./dashboard-image.nix { };
  tests = pkgs.callPackage ./checks.nix { };
  devShell = pkgs.callPackage ./devshell.nix { };
}
