"""Run gunicorn inside the calling process, as `nexus-proxy` and `nexus-dashboard` do.

The services used to exec `sys.executable -m gunicorn`. That new interpreter only
finds gunicorn if the dependencies are on its default path; Nix's wrappers (the
NixOS module, `nix build`, the Nix images) add them with `site.addsitedir` inside
the entry script, so the exec'd interpreter had no gunicorn. Running gunicorn's
own application class here keeps the path the entry script built: the master
forks its workers, and the proxy's writer process is handed `sys.path` itself
(proxy.writer.BOOTSTRAP).

The command line is gunicorn's own (`-c python:<module>`, GUNICORN_CMD_ARGS,
WEB_CONCURRENCY, any flag), read exactly as `python -m gunicorn` reads it.
gunicorn is imported here, lazily, because only the two services have it: the
`nexus` admin command (common.cli) runs without.
"""
import sys


def gunicorn_args(config_module, app_uri, extra=()):
    """The arguments gunicorn parses: our config module, `extra`, then the app."""
    return ["-c", f"python:{config_module}", *extra, app_uri]


def run(prog, config_module, app_uri, extra=()):
    """Serve `app_uri` under gunicorn in this process; returns only when gunicorn exits."""
    from gunicorn.app.wsgiapp import WSGIApplication

    class Application(WSGIApplication):
        # gunicorn parses sys.argv; give it our arguments for that moment only, so that
        # a USR2 re-exec (sys.executable + sys.argv) starts the same entry point again.
        def load_config(self):
            saved = sys.argv
            sys.argv = [prog, *gunicorn_args(config_module, app_uri, extra)]
            try:
                super().load_config()
            finally:
                sys.argv = saved

    Application("%(prog)s [OPTIONS]", prog=prog).run()
