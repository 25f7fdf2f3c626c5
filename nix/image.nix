# What both images share. Keep command, environment, port, user, working
# directory and health check equal to docker/<service>/Dockerfile: tests/nix
# compares them. The environment is linked at /opt/venv, where the Dockerfile
# puts its venv, so that both images run the same paths.
#
# `created` and the file times keep dockerTools' fixed defaults, so two builds
# of the same commit are bit-for-bit identical.
{
  lib,
  dockerTools,
  service,
  env,
  port,
  description,
  extraEnv ? [ ],
  writableDirs ? [ "app/data" ],
}:
let
  uid = "10001";
  inherit ((builtins.fromTOML (builtins.readFile ../pyproject.toml)).project) version;
in
dockerTools.buildLayeredImage {
  name = "claude-nexus-${service}";
  tag = version;

  contents = [
    # /etc/ssl/certs/ca-certificates.crt and the other usual bundle paths.
    dockerTools.caCertificates
    (dockerTools.fakeNss.override {
      extraPasswdLines = [ "nexus:x:${uid}:${uid}:claude-nexus:/app:/sbin/nologin" ];
      extraGroupLines = [ "nexus:!:${uid}:" ];
    })
  ];

  extraCommands = ''
    mkdir -p opt tmp ${lib.concatStringsSep " " writableDirs}
    ln -s ${env} opt/venv
    chmod 1777 tmp
  '';
  fakeRootCommands = ''
    chown ${uid}:${uid} ${lib.concatStringsSep " " writableDirs}
  '';

  config = {
    Cmd = [ "nexus-${service}" ];
    User = "${uid}:${uid}";
    WorkingDir = "/app";
    ExposedPorts = {
      "${toString port}/tcp" = { };
    };
    Env = [
      "PATH=/opt/venv/bin:/usr/local/bin:/usr/bin:/bin"
      "PYTHONUNBUFFERED=1"
      "PYTHONDONTWRITEBYTECODE=1"
      "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"
      "HOST=0.0.0.0"
      "PORT=${toString port}"
      "DATABASE_URL=sqlite:////app/data/nexus.db"
    ] ++ extraEnv;
    Healthcheck = {
      Test = [
        "CMD"
        "python3"
        "-c"
        "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '${toString port}'), timeout=4)"
      ];
      # Nanoseconds, as Docker stores them: 30s, 5s, 30s.
      Interval = 30000000000;
      Timeout = 5000000000;
      StartPeriod = 30000000000;
      Retries = 3;
    };
    Labels = {
      "org.opencontainers.image.title" = "claude-nexus-${service}";
      "org.opencontainers.image.description" = description;
      "org.opencontainers.image.licenses" = "MIT";
      "org.opencontainers.image.version" = version;
    };
  };
}
