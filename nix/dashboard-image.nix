# `nix build .#dashboard-image && docker load < result`: the dashboard, uid
# 10001, port 3001. No proxy code, no gevent, no credentials directory.
{ callPackage }:
callPackage ./image.nix {
  service = "dashboard";
  env = callPackage ./env.nix { service = "dashboard"; };
  port = 3001;
  description = "Dashboard of the requests recorded by claude-nexus";
}
