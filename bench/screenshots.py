"""Retake the README's first screenshots from a fresh one-day database.

    python -m bench.screenshots [--out docs/screenshots] [--rows 1500]

What a new user sees after a day of Claude Code through the proxy: a fresh SQLite
database seeded with one day of synthetic traffic (`bench.seed`, every body kept),
the real dashboard (gunicorn) on it, and headless Chromium taking the overview of the
last 24 hours and a conversation with sub-agent tasks. The browser tests take the other
pages' screenshots (docs/dashboard.md).
"""
import argparse
import os
import sys
import tempfile

from common import db as nexus_db
from common.migrations import migrate
from common.models import ApiRequest
from common.recording import aggregates

from . import seed as bench_seed

CHROMIUM = "/usr/bin/chromium"
KEY = "screenshots-dashboard-key-0123456789"


def fresh_day(url, rows):
    """Migrate and seed one day of traffic at `url`; the richest sub-agent conversation's id."""
    database = nexus_db.connect(url)
    migrate(database)
    with database.connection_context():
        bench_seed.seed(database, rows, days=1, seed_value=14, body_fraction=1.0)
        aggregates.rebuild_aggregates(database)
        spawner = (ApiRequest.select(ApiRequest.parent_task_request_id)
                   .where(ApiRequest.is_subtask == True).first())  # noqa: E712
        return ApiRequest.get(ApiRequest.request_id == spawner.parent_task_request_id).conversation_id


def shoot(url, out, conversation_id):
    """Log in and save overview.png and conversation-tasks.png into `out`."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--headless", "--no-sandbox", "--disable-gpu"])
        page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
        page.goto(url + "/login")
        page.fill("#key", KEY)
        page.click("button[type=submit]")
        page.goto(url + "/?since=24h")
        page.wait_for_selector(".chart .uplot")
        page.screenshot(path=os.path.join(out, "overview.png"))
        page.goto(url + f"/conversations/{conversation_id}")
        page.wait_for_selector("svg.tree line.spawn")
        page.screenshot(path=os.path.join(out, "conversation-tasks.png"))
        browser.close()


def main(argv=None):
    """Entry point: seed a day, serve it, shoot."""
    from tests.dashboard.server import running_dashboard
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/screenshots")
    parser.add_argument("--rows", type=int, default=1500)
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    with tempfile.TemporaryDirectory() as home:
        url = f"sqlite:///{home}/nexus.db"
        conversation_id = fresh_day(url, args.rows)
        env = {"DATABASE_URL": url, "DASHBOARD_API_KEY": KEY}
        with running_dashboard(env, home) as server:
            shoot(server.url, os.path.abspath(args.out), conversation_id)
    print(f"wrote {args.out}/overview.png and {args.out}/conversation-tasks.png", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
