"""The proxy's WSGI entry point and its factory.

`gunicorn proxy.wsgi:app` imports this module in each worker; importing does no
work. The real application is built on first use (or by the gunicorn hook
`post_worker_init`) by `create_app()`, the one place the proxy's parts are
wired together from the configuration.
"""
from common import config as nexus_config


def create_app(config=None, authenticator=None, notifier=None, connections=None):
    """Build the proxy (not yet started) from `config` (default: the environment).

    `connections` is how many requests the worker serves at once (it sizes the
    upstream pool unless NEXUS_POOL_SIZE does). Records are saved by a writer process
    of the worker's own (proxy/writer.py), so that their Python work does not share the
    worker's GIL.
    """
    from common import db

    from .app import Proxy
    from .auth import Authenticator
    from .metrics import Metrics
    from .recorder import RecordQueue
    from .slack import Notifier
    from .upstream import Upstream
    from .writer import WriterProcess

    config = config or nexus_config.load()
    database = db.connect(config.database_url, pool_size=4)
    metrics = Metrics()
    recorder = RecordQueue(config, WriterProcess(config, metrics.shared_dir), metrics=metrics)
    upstream = Upstream(config, connections=connections, metrics=metrics)
    return Proxy(config, upstream, authenticator or Authenticator(config), recorder,
                 notifier or Notifier(config), metrics, ping=lambda: ping(database))


def ping(database):
    """None when the database answers a query, else the reason it does not."""
    try:
        with database.connection_context():
            database.execute_sql("SELECT 1")
    except Exception as exc:  # any failure is the answer, not an error of ours
        return f"unreachable: {type(exc).__name__}: {str(exc).strip()[:200]}"
    return None


class LazyApp:
    """The WSGI callable gunicorn loads; builds and starts the proxy on first use."""

    def __init__(self, factory=create_app):
        self.factory = factory
        self.proxy = None

    def load(self, **options):
        """Build and start the proxy once (in the worker, after the fork); `options` go to
        the factory."""
        if self.proxy is None:
            proxy = self.factory(**options)
            proxy.recorder.start()
            self.proxy = proxy
        return self.proxy

    def stop(self):
        """Flush the recorder: queued records go to the database or the spool."""
        if self.proxy is not None:
            self.proxy.recorder.stop()
            self.proxy.upstream.close()
            if self.proxy.notifier is not None:
                self.proxy.notifier.close()

    def __call__(self, environ, start_response):
        return (self.proxy or self.load())(environ, start_response)


app = LazyApp()
