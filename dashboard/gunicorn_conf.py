"""Gunicorn settings for the dashboard (`gunicorn -c python:dashboard.gunicorn_conf`).

Workers follow WEB_CONCURRENCY and any flag in GUNICORN_CMD_ARGS overrides these, as
gunicorn does by itself. Without DASHBOARD_API_KEY the dashboard has no login, so it
binds to 127.0.0.1 whatever HOST says, and refuses to start on any other address.
"""
import ipaddress
import socket

from gunicorn.glogging import Logger

from common import config as nexus_config
from common import logs

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
loglevel = _config.log_level
logger_class = logs.json_gunicorn_logger(Logger)  # JSON lines, as the proxy's
# gunicorn 25+ opens a control socket in $HOME by default: the dashboard and the
# proxies on one machine would fight over it, and containers may not have $HOME.
control_socket_disable = True


def _exposed(listeners):
    """Addresses among `listeners` that other machines could reach."""
    found = []
    for listener in listeners:
        address = listener.sock.getsockname()
        if listener.sock.family not in (socket.AF_INET, socket.AF_INET6):
            continue  # a unix socket is local by nature
        if not ipaddress.ip_address(address[0]).is_loopback:
            found.append(f"{address[0]}:{address[1]}")
    return found


def when_ready(server):
    """Refuse to serve a key-less dashboard beyond this machine (e.g. via GUNICORN_CMD_ARGS).

    Checked on the bound sockets, before any worker starts, so fd:// binds count too.
    """
    if _config.dashboard_api_key:
        return
    exposed = _exposed(server.LISTENERS)
    if exposed:
        server.log.error("DASHBOARD_API_KEY is not set, so the dashboard serves 127.0.0.1 "
                         "only; refusing to listen on %s", ", ".join(exposed))
        raise SystemExit(3)
    server.log.warning("DASHBOARD_API_KEY is not set: serving 127.0.0.1 only, without login")
