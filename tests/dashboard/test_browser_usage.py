"""The /usage page in real headless Chromium against the real gunicorn dashboard."""
import pytest

from common import db as nexus_db
from common.models import ApiRequest

from .test_browser import _login, _shot, browser, page, site  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_a_person_groups_usage_and_follows_a_group_to_its_requests(page, site):  # noqa: F811
    _login(page, site)
    page.goto(site.url + "/usage?since=3d")
    page.wait_for_selector(".chart .uplot")  # cost over time of the top projects
    assert page.locator("h1").inner_text() == "Usage by project"
    assert page.locator("#usage-groups tbody tr").count() > 1
    _shot(page, "usage")

    page.click("nav.switch a[data-group-by=branch]")
    page.wait_for_url("**group_by=branch**")
    page.wait_for_selector(".chart .uplot")
    assert page.locator("h1").inner_text() == "Usage by branch"
    legend = page.locator(".chart .u-legend").inner_text()
    branch = page.locator("#usage-groups tbody tr a").first.inner_text()
    assert branch in legend

    page.locator("#usage-groups tbody tr a").first.click()
    page.wait_for_url("**/requests?branch=**")
    assert page.locator("input[name=branch]").input_value() == branch
    shown = page.locator("#rows tr").count()
    with nexus_db.connect(site.db_url).connection_context():
        stored = ApiRequest.select().where(ApiRequest.git_branch == branch).count()
    assert shown == min(stored, 50) and shown > 0
