"""The WSGI entry point gunicorn loads: `dashboard.wsgi:app`."""
from .app import create_app

app = create_app()
