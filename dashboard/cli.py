"""`nexus-dashboard`: the dashboard under gunicorn, configured by dashboard.gunicorn_conf.

gunicorn runs in this process (common.serving), so the dashboard starts however the
interpreter was (Nix's wrappers add the dependencies inside the entry script only).
Migrations are the proxy's job or `nexus migrate`'s (the NixOS module runs it first).
"""
import sys

from common import serving

CONFIG_MODULE = "dashboard.gunicorn_conf"
APP = "dashboard.wsgi:app"


def main(argv=None):
    """Serve the dashboard; WEB_CONCURRENCY, GUNICORN_CMD_ARGS and extra arguments apply."""
    serving.run("nexus-dashboard", CONFIG_MODULE, APP,
                sys.argv[1:] if argv is None else argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
