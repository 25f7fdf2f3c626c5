"""The alerts page in real headless Chromium against the real gunicorn dashboard: reached
from the navigation, it lists the rules and their recent firings."""
import datetime

import pytest

from common import db as nexus_db
from common.alerts import state
from common.alerts.rules import parse
from common.migrations import migrate
from common.models import utcnow
from tests.databases import temporary_database

from .conftest import KEY
from .server import running_dashboard
from .test_alerts import RULES
from .test_browser import _shot, browser, page  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module", params=("sqlite", "postgresql"))
def site(request, tmp_path_factory):
    """A database with one firing alert, and the dashboard reading the same rules file."""
    home = tmp_path_factory.mktemp("alerts")
    (home / "alerts.toml").write_text(RULES)
    with temporary_database(request.param, home) as url:
        database = nexus_db.connect(url)
        migrate(database)
        with database.connection_context():
            spend = parse(RULES)[0]
            at = utcnow() - datetime.timedelta(minutes=5)
            state.delivered(state.claim(database, spend, "claude-opus-4-1", 61.5, at))
        database.close()
        env = {"DATABASE_URL": url, "DASHBOARD_API_KEY": KEY,
               "NEXUS_ALERTS_FILE": str(home / "alerts.toml")}
        with running_dashboard(env, str(home)) as server:
            yield server


def test_the_alerts_page_lists_rules_and_firings(page, site):  # noqa: F811 (fixture)
    page.goto(site.url + "/")
    page.fill("#key", KEY)
    page.click("button[type=submit]")
    page.click("header nav >> text=Alerts")
    page.wait_for_url(site.url + "/alerts")
    rules = page.locator("#alert-rules tbody tr")
    assert rules.count() == 2
    assert "daily spend" in rules.nth(0).inner_text()
    assert "claude-opus-4-1" in rules.nth(0).inner_text()
    assert "no" in rules.nth(1).inner_text()
    firing = page.locator("#alert-firings tbody tr").all_inner_texts()
    assert len(firing) == 1 and "daily spend" in firing[0] and "to hooks.slack.com" in firing[0]
    assert "very-secret-path" not in page.content()
    _shot(page, "alerts")
