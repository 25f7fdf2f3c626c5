"""Gunicorn settings for the dashboard (`gunicorn -c python:dashboard.gunicorn_conf`).

Workers follow WEB_CONCURRENCY and any flag in GUNICORN_CMD_ARGS overrides these, as
gunicorn does by itself. Without DASHBOARD_API_KEY the dashboard has no login, so it
binds to 127.0.0.1 whatever HOST says, and refuses to start on any other address.
"""
import ipaddress

from common import config as nexus_config

_config = nexus_config.load()
_port = _config.port or "3001"
_host = _config.host if _config.dashboard_api_key else "127.0.0.1"

bind = [f"[{_host}]:{_port}" if ":" in _host else f"{_host}:{_port}"]
# Threads let the live-update polls and a long export run beside page views.
worker_class = "gthread"
threads = 4
timeout = 120
accesslog = "-"
errorlog = "-"


def _loopback(address):
    host = address.rsplit(":", 1)[0].strip("[]") if not address.startswith("unix:") else "localhost"
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def on_starting(server):
    """Refuse to serve a key-less dashboard beyond this machine (e.g. via GUNICORN_CMD_ARGS)."""
    if _config.dashboard_api_key:
        return
    exposed = [a for a in server.cfg.bind if not _loopback(a)]
    if exposed:
        raise SystemExit(f"nexus-dashboard: DASHBOARD_API_KEY is not set, so the dashboard "
                         f"serves 127.0.0.1 only; refusing to bind {', '.join(exposed)}")
    server.log.warning("DASHBOARD_API_KEY is not set: serving 127.0.0.1 only, without login")
