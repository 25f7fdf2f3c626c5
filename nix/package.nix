# The claude-nexus distribution, built from this checkout.
#
# `service` narrows it to what one image runs: "proxy" (no dashboard/, so no
# Flask) or "dashboard" (no proxy/, so no gevent and no credential code path);
# "all" is the whole distribution, for `nix build`, `nix develop` and the NixOS
# module. Dependencies come from nixpkgs at the flake's pinned revision; the
# version ranges in pyproject.toml are what pip users get.
{
  lib,
  python3Packages,
  service ? "all",
}:
let
  py = python3Packages;
  project = (builtins.fromTOML (builtins.readFile ../pyproject.toml)).project;
  # pyproject's extras name psycopg2-binary (a wheel, for pip users); nixpkgs
  # builds psycopg2 from source. gunicorn's gevent worker imports packaging.
  serviceDeps = {
    proxy = [
      py.gunicorn
      py.gevent
      py.packaging
      py.psycopg2
      # pyproject's otel extra: OpenTelemetry export from the writer process (off unless
      # OTEL_* says where to); no size budget holds the Nix image, so it is always in
      py.opentelemetry-sdk
      py.opentelemetry-exporter-otlp-proto-http
      # urllib3 (the upstream pool) and requests (Slack, alerts, OAuth refresh): the proxy's alone
      py.requests
      py.urllib3
    ];
    dashboard = [
      py.flask
      py.gunicorn
      py.psycopg2
    ];
  };
  services = if service == "all" then [ "proxy" "dashboard" ] else [ service ];
  dropped = lib.subtractLists services [ "proxy" "dashboard" ];
in
py.buildPythonPackage {
  pname = if service == "all" then project.name else "${project.name}-${service}";
  inherit (project) version;
  pyproject = true;

  src = import ./source.nix { inherit lib; } (
    [
      ../pyproject.toml
      ../common
    ]
    ++ map (name: ../. + "/${name}") services
  );

  build-system = [ py.setuptools ];
  dependencies = [
    py.peewee
  ] ++ lib.optionals (py.pythonOlder "3.14") [
    py.backports-zstd
  ] ++ lib.concatMap (name: serviceDeps.${name}) services;

  # The console script of a service left out would only fail on import.
  postInstall = lib.concatMapStrings (name: "rm $out/bin/nexus-${name}\n") dropped;

  pythonImportsCheck = [ "common" ] ++ services;
  # The suite runs once, as the flake's check (nix/checks.nix).
  doCheck = false;

  meta = {
    inherit (project) description;
    license = lib.licenses.mit;
    mainProgram = "nexus";
    platforms = lib.platforms.linux;
  };
}
