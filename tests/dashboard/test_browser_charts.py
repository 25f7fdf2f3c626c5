"""Charts and the limits page in real headless Chromium against the real gunicorn dashboard.

A new user's first day: one day of traffic, and the overview's "Last 7 days" must draw an
axis of those seven days (it once spanned years), with empty days as zero and tooltips
that say when and how much. The limits page shows each window's gauge, the projection and
the sessions that used the window.
"""
import datetime
import json

import pytest

from common import db as nexus_db
from common.migrations import migrate
from common.models import utcnow
from common.recording import ratelimit_samples
from tests.databases import temporary_database

from .conftest import KEY
from .factories import make_request, seed_traffic
from .server import running_dashboard
from .test_browser import _login, _shot, browser, page  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
DAY = 86400
ACCOUNT = "acct-browser-0001"
BUSY, QUIET = "5f0c7e52-1b7d-4c1e-8a44-0d5e2f7b9a01", "9a3d1f04-6c2b-4e8f-b1a7-3e9c5d2f8b02"


def _limit_rows(now):
    """Rising five-hour utilization of one account over the last 20 minutes."""
    reset = int((now + datetime.timedelta(hours=2) - datetime.datetime(1970, 1, 1)).total_seconds())
    rows = []
    for n, utilization in enumerate((0.30, 0.40, 0.50, 0.60)):
        headers = {"anthropic-ratelimit-unified-status": "allowed",
                   "anthropic-ratelimit-unified-representative-claim": "five_hour",
                   "anthropic-ratelimit-unified-5h-utilization": str(utilization),
                   "anthropic-ratelimit-unified-5h-reset": str(reset),
                   "anthropic-ratelimit-unified-5h-status": "allowed",
                   "anthropic-ratelimit-unified-7d-utilization": "0.2",
                   "anthropic-ratelimit-unified-7d-reset": str(reset + 3 * DAY),
                   "anthropic-ratelimit-unified-7d-status": "allowed"}
        rows.append({"request_id": f"limit-{n}", "account_id": ACCOUNT, "auth_hash": None,
                     "timestamp": now - datetime.timedelta(minutes=20 - 5 * n),
                     "ratelimit": json.dumps(headers)})
    return rows


@pytest.fixture(scope="module", params=("sqlite", "postgresql"))
def site(request, tmp_path_factory):
    """One day of traffic (a new user's first day) and one subscription's rising window."""
    home = tmp_path_factory.mktemp("charts")
    with temporary_database(request.param, home) as url:
        database = nexus_db.connect(url)
        migrate(database)
        with database.connection_context():
            seed_traffic(database, rows=80, days=1)
            now = utcnow()
            for n in range(3):
                make_request(account_id=ACCOUNT, session_id=BUSY, cost_usd=0.5,
                             timestamp=now - datetime.timedelta(minutes=30 - n))
            make_request(account_id=ACCOUNT, session_id=QUIET, cost_usd=0.1,
                         timestamp=now - datetime.timedelta(minutes=10))
            ratelimit_samples.add(_limit_rows(now))
        database.close()
        with running_dashboard({"DATABASE_URL": url, "DASHBOARD_API_KEY": KEY}, str(home)) as server:
            yield server


def _axis(chart):
    return float(chart.get_attribute("data-x-min")), float(chart.get_attribute("data-x-max"))


def _now():
    return (utcnow() - datetime.datetime(1970, 1, 1)).total_seconds()


@pytest.mark.parametrize("since, span, slack", [("7d", 7 * DAY, DAY), ("24h", DAY, 3600)])
def test_the_axis_spans_the_selected_range(page, site, since, span, slack):  # noqa: F811
    _login(page, site)
    page.goto(site.url + f"/?since={since}")
    page.wait_for_selector(".chart[data-x-max]")
    charts = page.locator(".chart[data-chart]")
    assert charts.count() == 6
    now = _now()
    for i in range(charts.count()):
        low, high = _axis(charts.nth(i))
        # From the start of the range's first day (or hour) to now: no years, no single day.
        assert abs(high - now) < 120, charts.nth(i).get_attribute("data-chart")
        assert span <= high - low < span + slack
    data = json.loads(page.locator("#chart-data").text_content())
    assert len(data["x"]) in ((8, 7) if since == "7d" else (25, 24))
    assert data["requests"].count(0) >= (5 if since == "7d" else 0)  # the empty days are zeros
    _shot(page, f"overview-first-day-{since}")


def test_tooltips_say_when_and_how_much(page, site):  # noqa: F811
    _login(page, site)
    page.goto(site.url + "/?since=24h")
    chart = page.locator('.chart[data-chart="tokens"] .u-over')
    chart.wait_for()
    box = chart.bounding_box()
    page.mouse.move(box["x"] + box["width"] - 5, box["y"] + box["height"] / 2)
    tip = page.locator('.chart[data-chart="tokens"] .chart-tip')
    tip.wait_for(state="visible")
    text = tip.inner_text()
    assert "UTC" in text and "Input:" in text and "tokens" in text


def test_the_token_page_daily_chart_has_axes_over_thirty_days(page, site):  # noqa: F811
    _login(page, site)
    page.goto(site.url + "/token-usage")
    chart = page.locator('.chart[data-chart="daily_tokens"]').first
    chart.locator(".uplot").wait_for()
    low, high = _axis(chart)
    assert high - low == 31 * DAY  # the 31 days the page sums, each a bar
    assert high > _now() > high - DAY
    box = chart.locator(".u-over").bounding_box()
    page.mouse.move(box["x"] + box["width"] - 8, box["y"] + box["height"] / 2)
    tip = chart.locator(".chart-tip")
    tip.wait_for(state="visible")
    assert "UTC day" in tip.inner_text() and "tokens" in tip.inner_text()


def test_the_limits_page_shows_gauges_projection_and_sessions(page, site):  # noqa: F811
    _login(page, site)
    page.goto(site.url + "/limits")
    section = page.locator(f'section.limit[data-key="{ACCOUNT}"]')
    section.wait_for()
    five = section.locator('.gauge[data-window="five_hour"]')
    assert five.locator(".utilization").inner_text() == "60.0%"
    assert float(five.locator("rect.meter-fill").get_attribute("width")) == 180.0
    assert section.locator('.gauge[data-window="seven_day"] .utilization').inner_text() == "20.0%"
    # 30 % to 60 % in 15 minutes: 120 % an hour, full 20 minutes after the last sample.
    assert "120.0 % per hour" in section.locator(".headline").inner_text()
    assert section.locator(".projected").count() == 1
    sessions = section.locator("table.sessions tbody tr td:first-child").all_inner_texts()
    assert sessions == [BUSY, QUIET]
    _shot(page, "limits")
    section.locator("table.sessions a").first.click()
    page.wait_for_url(f"**q={BUSY}**")
    assert page.locator("#rows tr").count() == 3


def test_a_fresh_install_draws_empty_charts_over_the_range(page, tmp_path):  # noqa: F811
    """No traffic yet: every chart still draws the selected week, flat at zero, no errors."""
    with temporary_database("sqlite", tmp_path) as url:
        database = nexus_db.connect(url)
        migrate(database)
        database.close()
        with running_dashboard({"DATABASE_URL": url, "DASHBOARD_API_KEY": KEY}, str(tmp_path)) as server:
            _login(page, server)
            page.goto(server.url + "/?since=7d")
            page.wait_for_selector(".chart[data-x-max]")
            charts = page.locator(".chart[data-chart]")
            for i in range(charts.count()):
                low, high = _axis(charts.nth(i))
                assert 7 * DAY <= high - low < 8 * DAY
            assert page.locator(".chart .uplot").count() == 6
            page.goto(server.url + "/limits")
            assert page.locator("p.empty").count() == 1
