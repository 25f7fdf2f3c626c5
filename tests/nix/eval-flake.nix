# The flake's outputs evaluated against the stand-in nixpkgs, reduced to plain
# data for tests/nix/test_flake.py. Run with
#   nix-instantiate --eval --strict --json tests/nix/eval-flake.nix
let
  flake = import ../../flake.nix;
  nixpkgs = import ./stub-nixpkgs.nix;
  self = flake.outputs { inherit self nixpkgs; };
  names = builtins.attrNames;
  image = img: {
    file = img.name;
    inherit (img.imageArgs) name tag config extraCommands fakeRootCommands;
    created = img.imageArgs.created or null;
    contents = map (c: c.name) img.imageArgs.contents;
    passwd = (builtins.elemAt img.imageArgs.contents 1).overrideArgs;
  };
  package = p: {
    inherit (p) name;
    inherit (p.args) pname version postInstall pythonImportsCheck doCheck;
    files = p.args.src.files;
    root = p.args.src.root;
    dependencies = map (d: d.pname) p.args.dependencies;
    buildSystem = map (d: d.pname) p.args.build-system;
  };
  envOf = program: builtins.head (builtins.match "(/nix/store/[^/]+)/bin/.*" program);
  perSystem = system: {
    packages = names self.packages.${system};
    apps = builtins.mapAttrs (_: a: { inherit (a) type program; }) self.apps.${system};
    devShells = names self.devShells.${system};
    checks = names self.checks.${system};
    checkScript = self.checks.${system}.tests.script;
    formatter = self.formatter.${system}.name;
    default = package self.packages.${system}.default;
    proxyImage = image self.packages.${system}.proxy-image;
    dashboardImage = image self.packages.${system}.dashboard-image;
  };
  pkgs = nixpkgs.legacyPackages.x86_64-linux;
  # Each image's Python environment, with the packages in it.
  envPackages = service: map package (
    builtins.filter (p: p ? args) (pkgs.callPackage ../../nix/env.nix { inherit service; }).packages
  );
  # The NixOS module called as the module system would, with every option at
  # its default except `enable`.
  defaults = builtins.mapAttrs (
    _: o: if (o._type or null) == "option" then o.default else defaults o
  );
  # `extra` are option values on top of the defaults, e.g. database.createLocally.
  moduleWith =
    extra:
    let
      call = values: import self.nixosModules.default {
        config.services.claude-nexus = values;
        inherit (nixpkgs) lib;
        inherit pkgs;
      };
      options = (call { }).options.services.claude-nexus;
      merge = a: b: a // builtins.mapAttrs (n: v: if builtins.isAttrs v && a ? ${n} then merge a.${n} v else v) b;
      result = call (merge (defaults options) ({ enable = true; } // extra));
      content = result.config.content;
      services = content.systemd.services;
    in
    {
      optionNames = names options;
      condition = result.config.condition;
      users = content.users.users;
      postgresql = content.services.postgresql;
      migrate = services.claude-nexus-migrate;
      proxy = services.claude-nexus-proxy.content;
      dashboard = services.claude-nexus-dashboard.content;
      packageName = (defaults options).package.name;
    };
  module = moduleWith { };
  moduleLocalDatabase = moduleWith { database.createLocally = true; settings = { ENABLE_CLIENT_AUTH = true; NEXUS_RETENTION_DAYS = 90; }; proxy.workers = 4; };
in
{
  inherit module moduleLocalDatabase;
  inherit (nixpkgs) nixosOptionNames;
  overlay = names (self.overlays.default pkgs pkgs);
  systems = names self.packages;
  x86_64-linux = perSystem "x86_64-linux";
  aarch64-linux = perSystem "aarch64-linux";
  envs = {
    proxy = envPackages "proxy";
    dashboard = envPackages "dashboard";
  };
}
