"""The dashboard in real headless Chromium against the real gunicorn server.

Log in, open every page, filter, open a request, follow a conversation, export, see a
live row arrive, log out; any console error or page error fails the test. The XSS test
sends HTML through the real proxy and checks that the browser shows it as text.
"""
import csv
import io
import os
import time

import pytest
import requests

from common import db as nexus_db
from common.migrations import migrate
from common.models import ApiRequest, RequestBody
from tests.databases import temporary_database

from .conftest import KEY
from .factories import make_request, seed_traffic
from .server import running_dashboard

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _require_chromium():
    if not os.path.exists(CHROMIUM):
        if os.environ.get("NEXUS_REQUIRE_ALL"):
            pytest.fail(f"{CHROMIUM} is missing (.ci/setup-chromium.sh installs it)")
        pytest.skip(f"{CHROMIUM} is missing")


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module."""
    _require_chromium()
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module", params=("sqlite", "postgresql"))
def site(request, tmp_path_factory):
    """A seeded database of each kind and the dashboard serving it, with a login key."""
    home = tmp_path_factory.mktemp("dashboard")
    with temporary_database(request.param, home) as url:
        database = nexus_db.connect(url)
        migrate(database)
        with database.connection_context():
            seed_traffic(database, rows=600, days=3)
        database.close()
        with running_dashboard({"DATABASE_URL": url, "DASHBOARD_API_KEY": KEY}, str(home)) as server:
            server.db_url = url
            yield server


class Console:
    """Collects console errors and uncaught page errors."""

    def __init__(self, page):
        self.errors = []
        page.on("console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))


@pytest.fixture
def page(browser, tmp_path):
    """A fresh browser context and page; fails the test on any console error."""
    context = browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 900})
    tab = context.new_page()
    tab.nexus_console = Console(tab)
    yield tab
    context.close()
    assert tab.nexus_console.errors == []


def _shot(page, name):
    """Save a screenshot to NEXUS_SCREENSHOTS_DIR when set (docs/screenshots)."""
    target = os.environ.get("NEXUS_SCREENSHOTS_DIR")
    if target:
        os.makedirs(target, exist_ok=True)
        page.screenshot(path=os.path.join(target, f"{name}.png"), full_page=False)


def _login(page, site):
    page.goto(site.url + "/requests")
    assert "/login" in page.url
    page.fill("#key", KEY)
    page.click("button[type=submit]")
    page.wait_for_url(site.url + "/requests")


def test_a_person_uses_every_page(page, site, tmp_path):
    _login(page, site)
    page.goto(site.url + "/?since=3d")
    page.wait_for_selector(".chart .uplot")  # the vendored uPlot drew the charts
    assert page.locator(".chart .uplot").count() == 6
    _shot(page, "overview")

    page.goto(site.url + "/requests")
    page.select_option("select[name=type]", "query_evaluation")
    page.click(".filters button[type=submit]")
    page.wait_for_url("**type=query_evaluation**")
    types = page.locator("#rows tr td:nth-child(4)").all_inner_texts()
    assert types and set(types) == {"query_evaluation"}

    page.goto(site.url + "/requests?type=inference")
    _shot(page, "requests")
    with page.expect_download() as download:
        page.click("text=CSV")
    with open(download.value.path(), encoding="utf-8") as handle:
        rows = list(csv.DictReader(io.StringIO(handle.read())))
    assert rows and {r["request_type"] for r in rows} == {"inference"}

    with nexus_db.connect(site.db_url).connection_context():
        with_body = (ApiRequest.select(ApiRequest.request_id)
                     .join(RequestBody, on=(ApiRequest.request_id == RequestBody.request_id))
                     .where(ApiRequest.conversation_id.is_null(False), ApiRequest.message_count > 3)
                     .order_by(ApiRequest.timestamp.desc()).first())
    page.goto(site.url + f"/requests?q={with_body.request_id}")
    page.click("#rows tr a")
    page.wait_for_selector("section.conversation")
    assert page.locator(".tool-use").count() >= 1
    _shot(page, "request")

    page.click("a.conversation-link")
    page.wait_for_selector("svg.tree circle")
    _shot(page, "conversation")
    page.locator("svg.tree a.node-link").first.click()
    page.wait_for_selector("section.conversation")

    page.goto(site.url + "/conversations")
    page.locator("a.conversation-link").first.click()
    page.wait_for_selector("svg.timeline rect")

    with nexus_db.connect(site.db_url).connection_context():
        spawner = (ApiRequest.select(ApiRequest.parent_task_request_id)
                   .where(ApiRequest.is_subtask == True).first())  # noqa: E712
        rich = ApiRequest.get(ApiRequest.request_id == spawner.parent_task_request_id).conversation_id
    page.goto(site.url + f"/conversations/{rich}")
    assert page.locator("svg.tree line.spawn").count() >= 1  # a sub-agent task hangs off its call
    _shot(page, "conversation-tasks")

    page.goto(site.url + "/token-usage")
    assert page.locator("section.account").count() >= 1
    _shot(page, "token-usage")

    page.goto(site.url + "/logout")
    page.click("main button[type=submit]")
    page.wait_for_url("**/login**")
    page.goto(site.url + "/token-usage")
    assert "/login" in page.url


def test_new_requests_appear_without_a_reload(page, site):
    _login(page, site)
    database = nexus_db.connect(site.db_url)
    with database.connection_context():
        make_request(domain="live-arrival.example")
        page.goto(site.url + "/requests")
        assert page.locator("text=live-arrival.example").count() == 1
        make_request(domain="second-arrival.example")
    page.wait_for_selector("text=second-arrival.example", timeout=15000)
    assert page.locator("#rows tr").first.inner_text().find("second-arrival.example") >= 0


def test_bad_input_pages(page, site):
    _login(page, site)
    response = page.goto(site.url + "/requests/does-not-exist")
    assert response.status == 404 and "No request has this id" in page.content()
    response = page.goto(site.url + "/requests?since=whenever")
    assert response.status == 400 and "since" in page.locator(".error-message").inner_text()
    # Chromium reports the error status of the document itself; nothing else may fail.
    expected = [e for e in page.nexus_console.errors if "status of 404" in e or "status of 400" in e]
    assert len(expected) == 2
    page.nexus_console.errors = [e for e in page.nexus_console.errors if e not in expected]


EVIL_PROMPT = 'Say <script>window.__xss = 1</script> and <img src=x onerror="window.__xss = 2">'


def test_html_in_prompts_and_answers_shows_as_text(browser, tmp_path):
    """Through the real proxy and fake upstream (which echoes the prompt) into the page."""
    _require_chromium()
    from tests.fake_upstream import start_fake_upstream
    from tests.proxy_server import running_proxy

    with temporary_database("sqlite", tmp_path) as url, start_fake_upstream() as upstream, \
            running_proxy({"CLAUDE_API_BASE_URL": upstream.url, "DATABASE_URL": url},
                          cwd=str(tmp_path)) as proxy:
        ids = []
        for stream in (False, True):
            reply = requests.post(proxy.url + "/v1/messages", timeout=30, headers={
                "x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}, json={
                "model": "claude-haiku-4-5-20251001", "max_tokens": 100, "stream": stream,
                "system": EVIL_PROMPT, "messages": [{"role": "user", "content": EVIL_PROMPT}]})
            assert reply.status_code == 200
            ids.append(reply.headers["x-nexus-request-id"])
        database = nexus_db.connect(url)
        deadline = time.monotonic() + 20
        with database.connection_context():
            while ApiRequest.select().where(ApiRequest.request_id.in_(ids)).count() < 2:
                assert time.monotonic() < deadline, "the proxy did not record the requests"
                time.sleep(0.2)
        with running_dashboard({"DATABASE_URL": url, "DASHBOARD_API_KEY": KEY}, str(tmp_path)) as server:
            context = browser.new_context()
            page = context.new_page()
            console = Console(page)
            _login(page, server)
            for rid in ids:
                page.goto(server.url + f"/requests/{rid}")
                page.wait_for_selector("section.conversation")
                shown = page.locator("section.conversation").inner_text()
                assert shown.count("<script>window.__xss = 1</script>") >= 2  # prompt and echo
                assert '<img src=x onerror="window.__xss = 2">' in shown
                assert page.evaluate("typeof window.__xss") == "undefined"
                assert page.locator("section.conversation img").count() == 0
            page.goto(server.url + "/requests")
            assert page.evaluate("typeof window.__xss") == "undefined"
            context.close()
            assert console.errors == []
