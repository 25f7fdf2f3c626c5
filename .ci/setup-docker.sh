# A Docker engine and the tools of tests/images (sourced by .ci/run, which
# defines apt_install). No registry is reachable: the tests build their base
# images with mmdebstrap. dockerd runs without a bridge network, so containers
# use --network host and are reached on 127.0.0.1 only.
command -v dockerd >/dev/null || apt_install docker.io
command -v mmdebstrap >/dev/null || apt_install mmdebstrap
# The compose file is checked with `docker-compose config` (Debian's v1) when
# the CLI has no compose plugin.
docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null || apt_install docker-compose
# Debian's Nix: parses every .nix file and evaluates the flake against the
# stand-in nixpkgs in tests/nix (no network reaches nixpkgs itself).
command -v nix-instantiate >/dev/null || apt_install nix-bin

if ! docker info >/dev/null 2>&1; then
    dockerd_log=/var/log/dockerd.log
    nohup dockerd --bridge=none --iptables=false >"$dockerd_log" 2>&1 &
    for _ in $(seq 60); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    if ! docker info >/dev/null 2>&1; then
        echo "dockerd did not start; the end of $dockerd_log:" >&2
        tail -n 40 "$dockerd_log" >&2
        exit 1
    fi
fi
docker version --format 'docker engine {{.Server.Version}}'
