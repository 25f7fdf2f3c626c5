"""What storing bodies costs, on the overview and in /api/stats."""
import re

from tests.dashboard.conftest import KEY, make_app
from tests.dashboard.factories import make_request

HISTORY = [{"role": "user", "content": "a long history " * 2000}]


def test_the_overview_shows_bodies_received_and_stored(db_url, database):
    for turn in range(10):  # the same history resent, a new message each time
        make_request(body={"model": "m", "messages": HISTORY + [
            {"role": "user", "content": f"turn {turn}"}]}, response={"type": "message"})
    client = make_app(db_url, DASHBOARD_API_KEY=KEY).test_client()
    storage = client.get("/api/stats", headers={"X-Dashboard-Key": KEY}).get_json()["storage"]
    assert storage["requests"] == 10
    assert storage["received_bytes"] > 10 * 30_000
    assert 0 < storage["stored_bytes"] < storage["received_bytes"] / 10
    assert storage["database_bytes"] > 0
    page = client.get("/", headers={"X-Dashboard-Key": KEY}).get_data(as_text=True)
    card = re.search(r'id="card-storage">([^<]+)<small>\(([\d.]+)%\)', page)
    assert card and float(card.group(2)) < 10
