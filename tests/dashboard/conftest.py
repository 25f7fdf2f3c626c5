"""Fixtures for the dashboard: an app on a fresh database (SQLite and PostgreSQL),
a test client, and a logged-in client."""
import re

import pytest

from common import config as nexus_config
from dashboard.app import create_app

from .factories import seed_traffic

KEY = "test-dashboard-key-0123456789"


def make_app(db_url, **env):
    """The dashboard for `db_url` with extra settings from `env`."""
    return create_app(nexus_config.load({"DATABASE_URL": db_url, **env}))


@pytest.fixture
def seeded(database):
    """The fresh database with a few hundred synthetic requests and their aggregates."""
    seed_traffic(database)
    return database


@pytest.fixture
def app(db_url, seeded):
    """A dashboard with a login key, over seeded data."""
    return make_app(db_url, DASHBOARD_API_KEY=KEY)


@pytest.fixture
def anon(app):
    """A client that has not logged in."""
    return app.test_client()


def csrf_of(html):
    """The CSRF token in a rendered form."""
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def log_in(client, key=KEY):
    """Log `client` in through the form; the response of the POST."""
    token = csrf_of(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={"key": key, "csrf_token": token, "next": "/"})


@pytest.fixture
def client(app):
    """A client logged in through the login form."""
    c = app.test_client()
    assert log_in(c).status_code == 302
    return c
