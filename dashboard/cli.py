"""`nexus-dashboard`: the dashboard under gunicorn, configured by dashboard.gunicorn_conf."""
import os
import sys


def main(argv=None):
    """Replace this process with gunicorn; WEB_CONCURRENCY and GUNICORN_CMD_ARGS apply."""
    args = [sys.executable, "-m", "gunicorn", "-c", "python:dashboard.gunicorn_conf",
            *(sys.argv[1:] if argv is None else argv), "dashboard.wsgi:app"]
    os.execv(sys.executable, args)


if __name__ == "__main__":
    main()
