{
  description = "claude-nexus: a recording proxy and dashboard for the Anthropic Claude API";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forEachSystem = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      nexus = pkgs: import ./nix { inherit pkgs; };
      app = env: name: {
        type = "app";
        program = "${env}/bin/nexus-${name}";
      };
    in
    {
      packages = forEachSystem (pkgs: {
        default = (nexus pkgs).package;
        proxy-image = (nexus pkgs).proxyImage;
        dashboard-image = (nexus pkgs).dashboardImage;
      });

      apps = forEachSystem (pkgs: {
        proxy = app (nexus pkgs).proxyEnv "proxy";
        dashboard = app (nexus pkgs).dashboardEnv "dashboard";
      });

      devShells = forEachSystem (pkgs: {
        default = (nexus pkgs).devShell;
      });

      checks = forEachSystem (pkgs: {
        tests = (nexus pkgs).tests;
      });

      formatter = forEachSystem (pkgs: pkgs.nixfmt);

      # The module builds the package with the host's nixpkgs; the overlay offers
      # it there as pkgs.claude-nexus for anything else.
      nixosModules.default = ./nix/module.nix;
      overlays.default = final: prev: { claude-nexus = final.callPackage ./nix/package.nix { }; };
    };
}
