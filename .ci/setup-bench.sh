# The bench's smoke test (tests/bench) drives Debian's wrk and nginx.
# Sourced by .ci/run, which defines apt_install.
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
if [ ${#missing[@]} -gt 0 ]; then
    # policy-rc.d keeps the nginx package from starting a server on :80 in containers;
    # elsewhere the bench never uses that server, it starts its own on a free port.
    apt_install "${missing[@]}"
fi
