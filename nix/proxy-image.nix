# `nix build .#proxy-image && docker load < result`: the proxy, uid 10001,
# port 3000, a writable /app/data and /app/credentials.
{ callPackage }:
callPackage ./image.nix {
  service = "proxy";
  env = callPackage ./env.nix { service = "proxy"; };
  port = 3000;
  description = "Recording proxy for the Anthropic Claude API";
  extraEnv = [
    "NEXUS_SPOOL_DIR=/app/data/spool"
    "CREDENTIALS_DIR=/app/credentials"
  ];
  writableDirs = [
    "app/data"
    "app/credentials"
  ];
}
