"""/search in real headless Chromium against the real gunicorn dashboard, on both databases:
reach it from the navigation, type words, follow a result to its request and conversation;
HTML in what was said shows as text."""
import pytest

from common import db as nexus_db
from common.migrations import migrate
from tests.databases import temporary_database

from .conftest import KEY
from .factories import make_request, minutes_ago
from .server import running_dashboard
from .test_browser import _login, _require_chromium, _shot, browser, page  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

EVIL = 'the axolotl salamander says <img src=x onerror="window.__xss = 1"><script>window.__xss = 2</script>'
CONVERSATION = "e" * 8 + "-0000-4000-8000-" + "e" * 12


def _answer(text):
    return {"type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
            "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
            "usage": {"input_tokens": 1, "output_tokens": 1}}


@pytest.fixture(scope="module", params=("sqlite", "postgresql"))
def site(request, tmp_path_factory):
    """A database of each kind with two searchable requests, and the dashboard on it."""
    _require_chromium()
    home = tmp_path_factory.mktemp("search")
    with temporary_database(request.param, home) as url:
        database = nexus_db.connect(url)
        migrate(database)
        with database.connection_context():
            ids = [make_request(body={"model": "m", "max_tokens": 5, "messages": [
                       {"role": "user", "content": prompt}]}, response=_answer(answer),
                       timestamp=minutes_ago(minutes), conversation_id=CONVERSATION)
                   for prompt, answer, minutes in (
                       ("Where does the axolotl live?", "In Mexican lakes, mostly.", 20),
                       (EVIL, "An axolotl regrows its limbs.", 10))]
        database.close()
        with running_dashboard({"DATABASE_URL": url, "DASHBOARD_API_KEY": KEY}, str(home)) as server:
            server.ids = ids
            yield server


def test_a_person_searches_and_follows_a_result(page, site):  # noqa: F811 (fixtures)
    _login(page, site)
    page.click("nav >> text=Search")
    page.wait_for_url(site.url + "/search")
    page.fill("input[name=q]", "axolotl")
    page.press("input[name=q]", "Enter")
    page.wait_for_selector("ol.search-results")
    results = page.locator("ol.search-results > li")
    assert results.count() == 2
    assert page.locator("ol.search-results mark").first.inner_text().lower() == "axolotl"
    _shot(page, "search")
    results.nth(1).locator("a").first.click()
    page.wait_for_url(site.url + f"/requests/{site.ids[0]}")
    page.go_back()
    page.locator("ol.search-results > li").nth(0).locator("text=conversation").click()
    page.wait_for_url(site.url + f"/conversations/{CONVERSATION}")
    page.goto(site.url + "/search?q=salamander")  # a word of the prompt with HTML in it
    shown = page.locator("ol.search-results > li").inner_text()
    assert '<img src=x onerror="window.__xss = 1">' in shown and "<script>" in shown
    assert page.locator("ol.search-results img").count() == 0
    assert page.evaluate("typeof window.__xss") == "undefined"
    page.goto(site.url + "/search?q=regrows+limbs")
    assert page.locator("ol.search-results > li").count() == 1
    page.goto(site.url + "/search?q=nothingmatchesthis")
    assert "Nothing found" in page.locator("main").inner_text()
