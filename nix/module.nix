# NixOS module: the proxy and the dashboard as systemd services running gunicorn
# on bare metal (`nexus-proxy` / `nexus-dashboard`), sharing one state
# directory and, by default, one SQLite database in it.
#
#   services.claude-nexus = {
#     enable = true;
#     environmentFile = "/run/secrets/claude-nexus.env";  # DASHBOARD_API_KEY=...
#   };
{ self }:
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.claude-nexus;
  inherit (lib) mkEnableOption mkIf mkOption types;
  stateDir = "/var/lib/claude-nexus";

  # Shared by both units: no privileges, a read-only system, only the state
  # directory writable, only IP and Unix sockets. MemoryDenyWriteExecute is
  # left off: libffi closures (ctypes, cffi) need writable-executable pages.
  hardening = {
    User = "claude-nexus";
    Group = "claude-nexus";
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
    Restart = "on-failure";
    RestartSec = 2;
  };

  environment = {
    DATABASE_URL = cfg.databaseUrl;
    NEXUS_SPOOL_DIR = "${stateDir}/spool";
    PYTHONUNBUFFERED = "1";
  } // cfg.environment;

  unit = name: extraEnvironment: extraServiceConfig: {
    description = "claude-nexus ${name}";
    wantedBy = [ "multi-user.target" ];
    after = [ "network-online.target" ];
    wants = [ "network-online.target" ];
    environment =
      environment
      // {
        HOST = cfg.${name}.host;
        PORT = toString cfg.${name}.port;
      }
      // extraEnvironment;
    serviceConfig =
      hardening
      // {
        ExecStart = "${cfg.package}/bin/nexus-${name}";
        EnvironmentFile = lib.optional (cfg.environmentFile != null) cfg.environmentFile;
      }
      // extraServiceConfig;
  };
in
{
  options.services.claude-nexus = {
    enable = mkEnableOption "the claude-nexus proxy and dashboard";
    package = mkOption {
      type = types.package;
      default = self.packages.${pkgs.stdenv.hostPlatform.system}.default;
      description = "The claude-nexus distribution (both services).";
    };
    databaseUrl = mkOption {
      type = types.str;
      default = "sqlite:///${stateDir}/nexus.db";
      description = "DATABASE_URL of both services; postgresql://... in production.";
    };
    environment = mkOption {
      type = types.attrsOf types.str;
      default = { };
      description = "Further settings (docs/configuration.md), e.g. ENABLE_CLIENT_AUTH.";
    };
    environmentFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      description = "A file of KEY=value secrets (DASHBOARD_API_KEY, SLACK_WEBHOOK_URL), kept out of the Nix store.";
    };
    proxy = {
      enable = mkOption {
        type = types.bool;
        default = true;
        description = "Run the proxy.";
      };
      host = mkOption {
        type = types.str;
        default = "127.0.0.1";
        description = "Listen address of the proxy.";
      };
      port = mkOption {
        type = types.port;
        default = 3000;
        description = "Listen port of the proxy.";
      };
      credentialsDir = mkOption {
        type = types.str;
        default = "${stateDir}/credentials";
        description = "Directory of <domain>.credentials.json files; only the proxy can read it.";
      };
    };
    dashboard = {
      enable = mkOption {
        type = types.bool;
        default = true;
        description = "Run the dashboard.";
      };
      host = mkOption {
        type = types.str;
        default = "127.0.0.1";
        description = "Listen address of the dashboard.";
      };
      port = mkOption {
        type = types.port;
        default = 3001;
        description = "Listen port of the dashboard.";
      };
    };
    openFirewall = mkOption {
      type = types.bool;
      default = false;
      description = "Open the proxy's and the dashboard's ports.";
    };
  };

  config = mkIf cfg.enable {
    users.users.claude-nexus = {
      isSystemUser = true;
      group = "claude-nexus";
      home = stateDir;
    };
    users.groups.claude-nexus = { };

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
