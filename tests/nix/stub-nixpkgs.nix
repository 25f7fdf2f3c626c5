# A stand-in for nixpkgs that offers only the attributes the flake and nix/ use,
# so that `nix-instantiate --eval` can check their wiring without a network.
# Evaluating against it fails on any attribute it lacks, so this file is also
# the list of nixpkgs attributes the project depends on: each was checked
# against nixpkgs' own source (the file named beside it) for the pinned
# release, nixos-24.11. Add an attribute here only after checking it there.
#
# Derivations are plain attribute sets that remember their arguments, so tests
# can read an image's config or a package's dependency list.
let
  systems = [
    "x86_64-linux"
    "aarch64-linux"
  ];

  drv =
    name: attrs:
    attrs
    // {
      type = "derivation";
      inherit name;
      outPath = "/nix/store/00000000000000000000000000000000-${name}";
    };

  lib = rec {
    # lib/attrsets.nix
    genAttrs =
      names: f:
      builtins.listToAttrs (
        map (n: {
          name = n;
          value = f n;
        }) names
      );
    # lib/lists.nix
    subtractLists = e: builtins.filter (x: !(builtins.elem x e));
    concatMap = builtins.concatMap;
    optional = cond: x: if cond then [ x ] else [ ];
    optionals = cond: xs: if cond then xs else [ ];
    # lib/strings.nix
    concatStringsSep = builtins.concatStringsSep;
    concatMapStrings = f: xs: builtins.concatStringsSep "" (map f xs);
    # lib/fileset/default.nix: toSource fails on a path that does not exist.
    fileset = {
      unions =
        paths:
        assert builtins.all builtins.pathExists paths;
        paths;
      toSource =
        { root, fileset }:
        drv "source" {
          files = map toString fileset;
        };
    };
    # lib/licenses.nix, lib/systems/doubles.nix
    licenses.mit = "MIT";
    platforms.linux = systems;
    # lib/options.nix, lib/modules.nix, lib/types.nix
    mkOption = args: args // { _type = "option"; };
    mkEnableOption = name: mkOption {
      type = types.bool;
      default = false;
      description = "Whether to enable ${name}.";
    };
    mkIf = condition: content: {
      _type = "if";
      inherit condition content;
    };
    types = {
      bool = "bool";
      str = "str";
      path = "path";
      port = "port";
      package = "package";
      attrsOf = t: "attrsOf ${t}";
      nullOr = t: "nullOr ${t}";
    };
  };

  python3Packages =
    let
      # pkgs/development/python-modules/<name>/default.nix
      module = name: drv "python3.12-${name}" { pname = name; };
    in
    {
      # pkgs/development/interpreters/python/mk-python-derivation.nix
      buildPythonPackage = attrs: drv "python3.12-${attrs.pname}-${attrs.version}" { args = attrs; };
      # pkgs/top-level/python-packages.nix (pythonOlder, of the set's Python: 3.12 here)
      pythonOlder = version: builtins.compareVersions "3.12" version < 0;
    }
    // lib.genAttrs [
      "anthropic"
      "backports-zstd"
      "flask"
      "gevent"
      "gunicorn"
      "hypothesis"
      "opentelemetry-exporter-otlp-proto-http"
      "opentelemetry-proto"
      "opentelemetry-sdk"
      "packaging"
      "peewee"
      "psycopg2"
      "pytest"
      "pytest-timeout"
      "pyyaml"
      "requests"
      "responses"
      "setuptools"
      "urllib3"
    ] module;

  pkgsFor =
    system:
    let
      pkgs = {
        inherit lib python3Packages;
        # pkgs/top-level/splice.nix (callPackage)
        callPackage =
          f: args:
          let
            fn = if builtins.isFunction f then f else import f;
          in
          fn (builtins.intersectAttrs (builtins.functionArgs fn) pkgs // args);
        # pkgs/development/interpreters/python/with-packages.nix
        python3 = {
          pkgs = python3Packages;
          withPackages = f: drv "python3-3.12-env" { packages = f python3Packages; };
        };
        # pkgs/build-support/docker/default.nix
        dockerTools = {
          buildLayeredImage = args: drv "${args.name}.tar.gz" { imageArgs = args; };
          caCertificates = drv "ca-certificates" { };
          # pkgs/build-support/fake-nss/default.nix (extraPasswdLines, extraGroupLines)
          fakeNss = drv "fake-nss" { } // {
            override = args: drv "fake-nss" { overrideArgs = args; };
          };
        };
        # pkgs/build-support/trivial-builders/default.nix
        runCommand = name: env: script: drv name { inherit env script; };
        # pkgs/build-support/mkshell/default.nix
        mkShell = args: drv "nix-shell" { shellArgs = args; };
        # pkgs/by-name/ni/nixfmt-rfc-style/package.nix
        nixfmt-rfc-style = drv "nixfmt-rfc-style" { };
        stdenv.hostPlatform.system = system;
      };
    in
    pkgs;
in
{
  inherit lib;
  legacyPackages = lib.genAttrs systems pkgsFor;
}
