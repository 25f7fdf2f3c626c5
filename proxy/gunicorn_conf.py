"""gunicorn settings for the proxy: `gunicorn -c python:proxy.gunicorn_conf proxy.wsgi:app`.

Workers come from WEB_CONCURRENCY and extra flags from GUNICORN_CMD_ARGS, as
gunicorn itself reads them; this file sets only what the proxy needs: the
gevent worker (proxy.gunicorn_worker), the address from HOST/PORT, JSON logs, and
the hooks that start and flush the recorder and share metrics between workers.
"""
from gunicorn.glogging import Logger

from common import config as nexus_config
from common import logs

_config = nexus_config.load()
_host = f"[{_config.host}]" if ":" in _config.host else _config.host

bind = [f"{_host}:{_config.port or 3000}"]
# gunicorn's gevent worker, answering bad request lines as gunicorn 27 does on any version.
worker_class = "proxy.gunicorn_worker.Worker"
worker_connections = 2000
# Streams last minutes: on SIGTERM a worker stops accepting and gives in-flight
# requests this long to finish, then flushes its records.
graceful_timeout = 30
keepalive = 5
# The proxy logs one JSON line per request itself. gunicorn's access log stays off
# unless asked for (GUNICORN_CMD_ARGS="--access-logfile -"); and no logconfig_dict:
# with one set, gunicorn builds every request's access-log atoms and throws them away.
accesslog = None
loglevel = _config.log_level
logger_class = logs.json_gunicorn_logger(Logger, lean=True)
# gunicorn 25+ opens a control socket in $HOME by default: several proxies (or the
# dashboard) on one machine would fight over it, and containers may not have $HOME.
control_socket_disable = True


def on_starting(server):
    from proxy import cli, metrics
    error = cli.check_alerts(_config)  # bare gunicorn too: a bad rules file stops start-up
    if error:
        raise SystemExit(f"nexus-proxy: {error}")
    metrics.prepare_shared_dir()


def on_exit(server):
    from proxy import metrics
    metrics.remove_shared_dir()


def _anthropic_shaped_errors():
    """gunicorn answers requests it cannot parse itself, in HTML, through util.write_error
    (its one writer of such answers): answer them in Anthropic's error shape instead."""
    from gunicorn import util

    from proxy.refusals import gunicorn_error

    def write_error(sock, status, reason, message):
        util.write_nonblock(sock, gunicorn_error(status, reason, message))

    util.write_error = write_error


def post_worker_init(worker):
    """In the worker, after gevent's monkey-patching: cooperative psycopg2, Anthropic-shaped
    errors from gunicorn, then the app."""
    from common.db import make_psycopg2_cooperative
    from proxy import heap, wsgi
    heap.keep_top_pad()
    make_psycopg2_cooperative()
    _anthropic_shaped_errors()
    from proxy.green import real_rlock
    logs.use_locks(real_rlock)  # the writer thread logs too
    wsgi.app.load(connections=worker.cfg.worker_connections)


def worker_exit(server, worker):
    """After in-flight requests finished (or the graceful timeout): flush the records."""
    from proxy import wsgi
    wsgi.app.stop()
