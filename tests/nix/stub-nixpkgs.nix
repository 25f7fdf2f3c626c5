# A stand-in for nixpkgs that offers only the attributes the flake and nix/ use,
# so that `nix-instantiate --eval` can check their wiring without a network.
# Evaluating against it fails on any attribute it lacks, so this file is also
# the list of nixpkgs attributes the project depends on: each was checked
# against nixpkgs' own source (the file named beside it) for the pinned
# release, nixos-26.05. Add an attribute here only after checking it there.
#
# Where it can, it is as strict as nixpkgs: option types check their values
# (an int default on a types.str option fails), mkOption takes only its own
# argument names, lib.fileset.toSource refuses files outside its root, and the
# builders refuse argument names that nixpkgs' builder does not know (a
# misspelled doCheck fails here, where nixpkgs would silently pass it on to
# the build as an environment variable). What it cannot prove: that anything
# builds, that nixpkgs' versions of the packages work (the CI step
# .ci/test-nixpkgs-versions.sh runs the suite under them), or the NixOS
# module system's merging (the module is called once, with its defaults).
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

  # Calls `f` after checking that `args` names only `allowed` arguments.
  strictArgs =
    what: allowed: f: args:
    let
      unknown = builtins.filter (n: !(builtins.elem n allowed)) (builtins.attrNames args);
    in
    if unknown == [ ] then
      f args
    else
      throw "${what}: unknown argument(s) ${builtins.concatStringsSep ", " unknown} (misspelled?)";

  isUnder = root: path: builtins.substring 0 (builtins.stringLength "${toString root}/") (toString path) == "${toString root}/";

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
    mapAttrs = builtins.mapAttrs;
    # lib/lists.nix
    subtractLists = e: builtins.filter (x: !(builtins.elem x e));
    concatMap = builtins.concatMap;
    optional = cond: x: if cond then [ x ] else [ ];
    optionals = cond: xs: if cond then xs else [ ];
    # lib/strings.nix
    concatStringsSep = builtins.concatStringsSep;
    concatMapStrings = f: xs: builtins.concatStringsSep "" (map f xs);
    # lib/trivial.nix
    boolToString = b: if b then "true" else "false";
    # lib/fileset/default.nix: a file set is kept as its list of paths here.
    # toSource fails on a root that is not a directory or a file outside the root.
    fileset = {
      unions =
        paths:
        assert builtins.all builtins.pathExists paths;
        paths;
      gitTracked =
        path:
        assert builtins.pathExists (path + "/.git");
        {
          _gitTracked = toString path;
        };
      intersection = tracked: paths: assert tracked ? _gitTracked; paths;
      toSource =
        { root, fileset }:
        assert builtins.isPath root;
        assert (builtins.readDir (dirOf root)).${baseNameOf root} == "directory";
        assert builtins.all (isUnder root) fileset
          || throw "lib.fileset.toSource: a file of `fileset` is not under `root` (${toString root})";
        drv "source" {
          root = toString root;
          files = map toString fileset;
        };
    };
    # lib/licenses.nix, lib/systems/doubles.nix
    licenses.mit = "MIT";
    platforms.linux = systems;
    # lib/options.nix: mkOption's arguments are these and no others. The module
    # system refuses a value of the wrong type; here a default is checked at once.
    mkOption =
      {
        default ? null,
        defaultText ? null,
        example ? null,
        description ? null,
        relatedPackages ? null,
        type ? null,
        apply ? null,
        internal ? null,
        visible ? null,
        readOnly ? null,
      }@args:
      assert
        !(args ? default && args ? type)
        || type.check default
        || throw "mkOption: default ${builtins.toJSON default} is not of type ${type.name}";
      args // { _type = "option"; };
    mkEnableOption =
      name:
      mkOption {
        type = types.bool;
        default = false;
        example = true;
        description = "Whether to enable ${name}.";
      };
    literalExpression = text: {
      _type = "literalExpression";
      inherit text;
    };
    # lib/modules.nix
    mkIf = condition: content: {
      _type = "if";
      inherit condition content;
    };
    # lib/types.nix: each type checks its values, as the module system does.
    types =
      let
        type = name: check: {
          _type = "option-type";
          inherit name check;
        };
      in
      rec {
        bool = type "bool" builtins.isBool;
        str = type "str" builtins.isString;
        int = type "int" builtins.isInt;
        port = type "port" (v: builtins.isInt v && v >= 0 && v <= 65535);
        ints.positive = type "positiveInt" (v: builtins.isInt v && v > 0);
        path = type "path" (v: builtins.isPath v || (builtins.isString v && builtins.substring 0 1 v == "/"));
        package = type "package" (v: builtins.isAttrs v && (v.type or null) == "derivation");
        attrsOf =
          t: type "attrsOf ${t.name}" (v: builtins.isAttrs v && builtins.all t.check (builtins.attrValues v));
        listOf = t: type "listOf ${t.name}" (v: builtins.isList v && builtins.all t.check v);
        nullOr = t: type "nullOr ${t.name}" (v: v == null || t.check v);
        oneOf = ts: type "oneOf" (v: builtins.any (t: t.check v) ts);
      };
  };

  python3Packages =
    let
      # pkgs/development/python-modules/<name>/default.nix
      module = name: drv "python3.13-${name}" { pname = name; };
      # pkgs/development/interpreters/python/mk-python-derivation.nix: its named
      # arguments, and the stdenv.mkDerivation ones this project passes on.
      buildPythonPackageArgs = [
        "pname"
        "version"
        "src"
        "pyproject"
        "format"
        "build-system"
        "dependencies"
        "optional-dependencies"
        "nativeBuildInputs"
        "buildInputs"
        "propagatedBuildInputs"
        "nativeCheckInputs"
        "checkInputs"
        "doCheck"
        "pythonImportsCheck"
        "pythonRelaxDeps"
        "pythonRemoveDeps"
        "disabled"
        "meta"
        "passthru"
        "patches"
        "postPatch"
        "preInstall"
        "postInstall"
        "postFixup"
        "makeWrapperArgs"
        "dontWrapPythonPrograms"
        "catchConflicts"
        "pytestFlags"
        "disabledTests"
        "disabledTestPaths"
        "env"
      ];
    in
    {
      buildPythonPackage = strictArgs "buildPythonPackage" buildPythonPackageArgs (
        attrs: drv "python3.13-${attrs.pname}-${attrs.version}" { args = attrs; }
      );
      # pkgs/top-level/python-packages.nix (pythonOlder, of the set's Python: 3.13 here)
      pythonOlder = version: builtins.compareVersions "3.13" version < 0;
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
          withPackages = f: drv "python3-3.13-env" { packages = f python3Packages; };
        };
        # pkgs/build-support/docker/default.nix (buildLayeredImage's arguments)
        dockerTools = {
          buildLayeredImage = strictArgs "dockerTools.buildLayeredImage" [
            "name"
            "tag"
            "fromImage"
            "contents"
            "config"
            "architecture"
            "created"
            "mtime"
            "uid"
            "gid"
            "uname"
            "gname"
            "maxLayers"
            "extraCommands"
            "fakeRootCommands"
            "enableFakechroot"
            "includeStorePaths"
            "includeNixDB"
            "passthru"
            "compressor"
          ] (args: drv "${args.name}.tar.gz" { imageArgs = args; });
          caCertificates = drv "ca-certificates" { };
          # pkgs/build-support/fake-nss/default.nix (extraPasswdLines, extraGroupLines)
          fakeNss = drv "fake-nss" { } // {
            override = strictArgs "fakeNss.override" [
              "extraPasswdLines"
              "extraGroupLines"
            ] (args: drv "fake-nss" { overrideArgs = args; });
          };
        };
        # pkgs/build-support/trivial-builders/default.nix
        runCommand = name: env: script: drv name { inherit env script; };
        # pkgs/build-support/mkshell/default.nix
        mkShell = args: drv "nix-shell" { shellArgs = args; };
        # pkgs/by-name/ni/nixfmt/package.nix (nixfmt-rfc-style is now its alias)
        nixfmt = drv "nixfmt" { };
        stdenv.hostPlatform.system = system;
      };
    in
    pkgs;
in
{
  inherit lib;
  legacyPackages = lib.genAttrs systems pkgsFor;
  # NixOS option names the module sets outside its own options, from
  # nixos/modules/services/databases/postgresql.nix and
  # nixos/lib/systemd-unit-options.nix (tests/nix/test_flake.py checks them).
  nixosOptionNames = {
    postgresql = [
      "enable"
      "ensureDatabases"
      "ensureUsers"
      "authentication"
    ];
    ensureUser = [
      "name"
      "ensureDBOwnership"
      "ensureClauses"
    ];
    unit = [
      "description"
      "wantedBy"
      "after"
      "before"
      "wants"
      "requires"
      "environment"
      "path"
      "serviceConfig"
    ];
  };
}
