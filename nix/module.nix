# NixOS module: the proxy and the dashboard as systemd services running gunicorn
# on bare metal (`nexus-proxy` / `nexus-dashboard`), sharing one state directory,
# after a one-shot unit that applies the database migrations. docs/deploy-nix.md
# has a complete configuration.nix.
#
#   services.claude-nexus = {
#     enable = true;
#     database.createLocally = true;                      # PostgreSQL, peer auth
#     environmentFile = "/run/secrets/claude-nexus.env";  # DASHBOARD_API_KEY=...
#   };
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.claude-nexus;
  inherit (lib)
    mkEnableOption
    mkIf
    mkOption
    types
    ;
  stateDir = "/var/lib/claude-nexus";
  user = "claude-nexus";
  # With createLocally: a database named as the OS user, over the Unix socket, where
  # NixOS's default pg_hba.conf lets each user in as the database role of its name.
  localUrl = "postgresql://${user}@/${user}?host=/run/postgresql";
  databaseUrl =
    if cfg.database.url != null then
      cfg.database.url
    else if cfg.database.createLocally then
      localUrl
    else
      "sqlite:///${stateDir}/nexus.db";

  # Shared by the units: no privileges, a read-only system, only the state
  # directory writable, only IP and Unix sockets. MemoryDenyWriteExecute is
  # left off: libffi closures (ctypes, cffi) need writable-executable pages.
  hardening = {
    User = user;
    Group = user;
    StateDirectory = "claude-nexus";
    StateDirectoryMode = "0750";
    WorkingDirectory = stateDir;
    UMask = "0027";
    NoNewPrivileges = true;
    CapabilityBoundingSet = "";
    AmbientCapabilities = "";
    ProtectSystem = "strict";
    ProtectHome = true;
    PrivateTmp = true;
    PrivateDevices = true;
    PrivateUsers = true;
    ProtectKernelTunables = true;
    ProtectKernelModules = true;
    ProtectKernelLogs = true;
    ProtectControlGroups = true;
    ProtectClock = true;
    ProtectHostname = true;
    ProtectProc = "invisible";
    ProcSubset = "pid";
    RestrictAddressFamilies = [
      "AF_INET"
      "AF_INET6"
      "AF_UNIX"
    ];
    RestrictNamespaces = true;
    RestrictRealtime = true;
    RestrictSUIDSGID = true;
    LockPersonality = true;
    RemoveIPC = true;
    SystemCallArchitectures = "native";
    SystemCallFilter = [
      "@system-service"
      "~@privileged"
    ];
    # A filtered call fails with EPERM instead of killing the worker.
    SystemCallErrorNumber = "EPERM";
    EnvironmentFile = lib.optional (cfg.environmentFile != null) cfg.environmentFile;
  };

  # settings are the environment of docs/configuration.md; Nix values become strings.
  toEnv = value: if builtins.isBool value then lib.boolToString value else toString value;
  environment = {
    DATABASE_URL = databaseUrl;
    NEXUS_SPOOL_DIR = "${stateDir}/spool";
    PYTHONUNBUFFERED = "1";
  } // lib.mapAttrs (_: toEnv) cfg.settings;

  # PostgreSQL must be up and its roles created before the migrations run.
  database = lib.optional cfg.database.createLocally "postgresql.target";
  migrate = [ "claude-nexus-migrate.service" ];

  unit = name: extraEnvironment: extraServiceConfig: {
    description = "claude-nexus ${name}";
    wantedBy = [ "multi-user.target" ];
    after = [ "network-online.target" ] ++ database ++ migrate;
    wants = [ "network-online.target" ];
    requires = migrate;
    environment =
      environment
      // {
        HOST = cfg.${name}.host;
        PORT = toString cfg.${name}.port;
        WEB_CONCURRENCY = toString cfg.${name}.workers;
      }
      // extraEnvironment;
    serviceConfig =
      hardening
      // {
        ExecStart = "${cfg.package}/bin/nexus-${name}";
        Restart = "on-failure";
        RestartSec = 2;
      }
      // extraServiceConfig;
  };

  serviceOptions = name: port: workers: {
    enable = mkOption {
      type = types.bool;
      default = true;
      description = "Run the ${name}.";
    };
    host = mkOption {
      type = types.str;
      default = "127.0.0.1";
      description = "Listen address of the ${name}.";
    };
    port = mkOption {
      type = types.port;
      default = port;
      description = "Listen port of the ${name}.";
    };
    workers = mkOption {
      type = types.ints.positive;
      default = workers;
      description = "gunicorn worker processes of the ${name} (WEB_CONCURRENCY).";
    };
  };
in
{
  options.services.claude-nexus = {
    enable = mkEnableOption "the claude-nexus proxy and dashboard";
    package = mkOption {
      type = types.package;
      # Built with the host's nixpkgs (its Python and packages), not the flake's pin.
      default = pkgs.callPackage ./package.nix { };
      defaultText = lib.literalExpression "pkgs.callPackage (claude-nexus + \"/nix/package.nix\") { }";
      description = "The claude-nexus distribution (both services and `nexus`).";
    };
    database = {
      createLocally = mkOption {
        type = types.bool;
        default = false;
        description = ''
          Run PostgreSQL on this machine with a database and a role named
          `claude-nexus`, reached over its Unix socket with peer authentication
          as the OS user `claude-nexus`.
        '';
      };
      url = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "postgresql://nexus@db.internal/nexus";
        description = ''
          DATABASE_URL of every unit. null: the local PostgreSQL database with
          `createLocally`, else SQLite in ${stateDir}/nexus.db. A password belongs
          in `environmentFile` (DATABASE_URL=...), which takes precedence.
        '';
      };
    };
    settings = mkOption {
      type = types.attrsOf (
        types.oneOf [
          types.str
          types.int
          types.bool
        ]
      );
      default = { };
      example = {
        ENABLE_CLIENT_AUTH = true;
        NEXUS_RETENTION_DAYS = 90;
      };
      description = "Further settings of docs/configuration.md; no secrets (they land in the Nix store).";
    };
    environmentFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      description = "A file of KEY=value secrets (DASHBOARD_API_KEY, SLACK_WEBHOOK_URL), kept out of the Nix store.";
    };
    proxy = serviceOptions "proxy" 3000 1 // {
      credentialsDir = mkOption {
        type = types.str;
        default = "${stateDir}/credentials";
        description = "Directory of <domain>.credentials.json files; only the proxy can read it.";
      };
    };
    dashboard = serviceOptions "dashboard" 3001 1;
    openFirewall = mkOption {
      type = types.bool;
      default = false;
      description = "Open the proxy's and the dashboard's ports.";
    };
  };

  config = mkIf cfg.enable {
    users.users.${user} = {
      isSystemUser = true;
      group = user;
      home = stateDir;
    };
    users.groups.${user} = { };

    services.postgresql = mkIf cfg.database.createLocally {
      enable = true;
      ensureDatabases = [ user ];
      ensureUsers = [
        {
          name = user;
          ensureDBOwnership = true;
        }
      ];
    };

    # Both services start after it; with several proxies starting at once the
    # migrations' own lock would keep them apart too (common/migrations.py).
    systemd.services.claude-nexus-migrate = {
      description = "claude-nexus database migrations";
      after = [ "network-online.target" ] ++ database;
      wants = [ "network-online.target" ];
      requires = database;
      environment = environment;
      serviceConfig = hardening // {
        Type = "oneshot";
        RemainAfterExit = true;
        ExecStart = "${cfg.package}/bin/nexus migrate";
      };
    };
    systemd.services.claude-nexus-proxy = mkIf cfg.proxy.enable (
      unit "proxy" { CREDENTIALS_DIR = cfg.proxy.credentialsDir; } {
        # OAuth refreshes rewrite credential files.
        ReadWritePaths = [ "-${cfg.proxy.credentialsDir}" ];
      }
    );
    systemd.services.claude-nexus-dashboard = mkIf cfg.dashboard.enable (
      unit "dashboard" { } {
        # A compromised dashboard cannot read upstream credentials.
        InaccessiblePaths = [ "-${cfg.proxy.credentialsDir}" ];
      }
    );

    networking.firewall.allowedTCPPorts = lib.optionals cfg.openFirewall (
      lib.optional cfg.proxy.enable cfg.proxy.port
      ++ lib.optional cfg.dashboard.enable cfg.dashboard.port
    );
  };
}
