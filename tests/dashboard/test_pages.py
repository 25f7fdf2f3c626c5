"""Every page, as HTML and as JSON, on SQLite and PostgreSQL; bad input; escaping."""
import csv
import datetime

from bench import seed as bench_seed
from common.recording import aggregates
from common.models import ApiRequest, utcnow

from .factories import make_request, minutes_ago

PAGES = ["/", "/?since=24h", "/?since=30d&domain=web.acme.example", "/requests",
         "/requests?type=query_evaluation&status=2xx", "/requests?status=error&since=3d",
         "/requests?q=opus", "/conversations", "/token-usage", "/token-usage?window_hours=24"]


def test_every_page_renders_and_has_json(client):
    for path in PAGES:
        html = client.get(path)
        assert html.status_code == 200, path
        assert html.mimetype == "text/html"
        sep = "&" if "?" in path else "?"
        data = client.get(path + sep + "format=json")
        assert data.status_code == 200 and data.is_json, path


def test_overview_cards_match_the_rows(client, seeded):
    cutoff = utcnow() - datetime.timedelta(days=2)
    rows = ApiRequest.select().where(ApiRequest.timestamp >= cutoff.replace(minute=0, second=0, microsecond=0))
    totals = client.get("/?since=2d&format=json").json["totals"]
    assert totals["requests"] == rows.count()
    assert totals["output_tokens"] == sum(r.output_tokens for r in rows)
    assert totals["latency_ms"]["p50"] <= totals["latency_ms"]["p95"]
    data = client.get("/?since=2d&format=json").json
    per_model = sum(sum(values) for values in data["cost_by_model"].values())
    assert abs(per_model - totals["cost_usd"]) < 1e-6
    per_domain = sum(sum(values) for values in data["requests_by_domain"].values())
    assert per_domain <= totals["requests"] and len(data["requests_by_domain"]) <= 8


def test_ranges_of_days_add_up_to_the_rows_whatever_the_hour_they_start(client, database):
    """Whole days come from the daily sums, the partial first and last days from the
    hours: totals and each day's point still count exactly the rows in the range."""
    bench_seed.seed(database, 900, days=12, seed_value=11, body_fraction=0)
    aggregates.rebuild(database)
    now = utcnow()
    for since, until in ((now - datetime.timedelta(days=10, hours=7), now),
                         (now - datetime.timedelta(days=9, hours=15),
                          now - datetime.timedelta(days=2, hours=5)),
                         ((now - datetime.timedelta(days=8)).replace(hour=0, minute=0),
                          (now - datetime.timedelta(days=1)).replace(hour=0, minute=0))):
        start = since.replace(minute=0, second=0, microsecond=0)
        rows = list(ApiRequest.select().where(ApiRequest.timestamp >= start,
                                              ApiRequest.timestamp < until))
        data = client.get(f"/api/stats?since={since.isoformat()}&until={until.isoformat()}").json
        assert data["granularity"] == "day"
        assert data["totals"]["requests"] == len(rows) > 100
        assert data["totals"]["output_tokens"] == sum(r.output_tokens for r in rows)
        per_day = {}
        for r in rows:
            day = r.timestamp.strftime("%Y-%m-%d")
            per_day[day] = per_day.get(day, 0) + 1
        assert {p["time"][:10]: p["requests"] for p in data["series"]} == per_day


def test_overview_cards_refresh_themselves(client, seeded):
    page = client.get("/?since=24h").get_data(as_text=True)
    assert 'hx-trigger="every 30s"' in page
    before = client.get("/?since=24h&fragment=cards").get_data(as_text=True)
    assert before.strip().startswith('<section class="cards" id="cards"') and "<html" not in before
    count = client.get("/?since=24h&format=json").json["totals"]["requests"]
    assert f'id="card-requests">{count:,}<' in before
    aggregates.add([{"timestamp": minutes_ago(1), "domain": "fresh.example", "model": "m",
                     "request_type": "inference", "response_status": 200, "input_tokens": 1,
                     "output_tokens": 1, "cost_usd": 0.0, "duration_ms": 10.0}])
    after = client.get("/?since=24h&fragment=cards").get_data(as_text=True)
    assert f'id="card-requests">{count + 1:,}<' in after


def test_requests_list_filters_and_pages(client):
    seen, url = [], "/api/requests?limit=50"
    while url:
        page = client.get(url).json
        seen += page["requests"]
        url = f"/api/requests?limit=50&before={page['next']}" if page["next"] else None
    assert len(seen) == ApiRequest.select().count()
    assert len({r["request_id"] for r in seen}) == len(seen)
    stamps = [r["timestamp"] for r in seen]
    assert stamps == sorted(stamps, reverse=True)
    quota = client.get("/api/requests?type=quota&limit=500").json["requests"]
    assert all(r["request_type"] == "quota" for r in quota)
    errors = client.get("/api/requests?status=4xx&limit=500").json["requests"]
    assert errors and all(400 <= r["response_status"] < 500 for r in errors)


def test_search_by_id_and_text(client, seeded):
    rid = make_request(domain="needle.example", error="upstream said: needle-in-haystack")
    by_id = client.get(f"/api/requests?q={rid}").json["requests"]
    assert [r["request_id"] for r in by_id] == [rid]
    by_text = client.get("/api/requests?q=needle-in-hay").json["requests"]
    assert [r["request_id"] for r in by_text] == [rid]
    old = make_request(error="needle-from-last-month", timestamp=minutes_ago(60 * 24 * 20))
    recent_only = client.get("/api/requests?q=needle-from-last")
    assert recent_only.json["requests"] == [] and "searched_since" in recent_only.json
    assert "set Since to search further back" in client.get("/requests?q=needle-from-last").get_data(as_text=True)
    further = client.get("/api/requests?q=needle-from-last&since=30d").json["requests"]
    assert [r["request_id"] for r in further] == [old]


def test_live_rows_arrive_after_the_cursor(client, seeded):
    page = client.get("/requests").get_data(as_text=True)
    marker = 'hx-get="/requests/live?after='
    assert marker in page
    after = page.split(marker, 1)[1].split('"', 1)[0].replace("&amp;", "&")
    assert client.get(f"/requests/live?after={after}").status_code == 204
    rid = make_request(domain="live.example")
    # a long stream is recorded when it ends, stamped with when it began: still live
    late = make_request(domain="live.example", timestamp=minutes_ago(20))
    fresh = client.get(f"/requests/live?after={after}").get_data(as_text=True)
    assert rid in fresh and late in fresh
    assert 'id="live-poller"' in fresh and 'hx-swap-oob="true"' in fresh
    following = fresh.split('hx-get="/requests/live?after=', 1)[1].split('"', 1)[0]
    assert client.get(f"/requests/live?after={following}").status_code == 204
    filtered = client.get(f"/requests/live?after={after}&domain=other.example")
    assert filtered.status_code == 204


def test_request_detail_shows_the_conversation(client, seeded):
    body = {"model": "claude-sonnet-4-5", "system": "You are terse.", "messages": [
        {"role": "user", "content": "What is in a.py?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "tu_1", "name": "Read", "input": {"path": "a.py"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu_1", "content": "x = 1"}]}]}
    response = {"type": "message", "role": "assistant", "content": [{"type": "text", "text": "It sets x."}],
                "usage": {"input_tokens": 10, "output_tokens": 4}}
    rid = make_request(body=body, response=response,
                       headers={"x-api-key": "sk-ant-secret-value", "anthropic-version": "2023-06-01"},
                       usage_data='{"input_tokens": 10, "output_tokens": 20}')
    page = client.get(f"/requests/{rid}").get_data(as_text=True)
    for text in ("You are terse.", "What is in a.py?", "tu_1", "x = 1", "It sets x.", "2023-06-01"):
        assert text in page
    assert "sk-ant-secret-value" not in page and "[redacted]" in page
    data = client.get(f"/api/requests/{rid}").json
    assert data["request_headers"]["x-api-key"] == "[redacted]"
    assert data["request_body"]["system"] == "You are terse."


def test_conversation_pages(client, seeded):
    first = client.get("/api/conversations?limit=5").json
    listing = first["conversations"]
    assert len(listing) == 5
    older = client.get(f"/api/conversations?limit=5&before={first['next']}").json["conversations"]
    assert older and not {c["conversation_id"] for c in older} & {c["conversation_id"] for c in listing}
    assert max(c["last_timestamp"] for c in older) < min(c["last_timestamp"] for c in listing)
    keys = {"conversation_id", "branches", "request_count", "first_timestamp", "last_timestamp",
            "input_tokens", "output_tokens", "cost_usd"}
    assert keys <= set(listing[0])
    branched = (ApiRequest.select(ApiRequest.conversation_id).where(ApiRequest.branch_id != "main")
                .first().conversation_id)
    data = client.get(f"/api/conversations/{branched}").json
    assert len(data["branches"]) >= 2
    assert {r["conversation_id"] for r in data["requests"]} == {branched}
    page = client.get(f"/conversations/{branched}").get_data(as_text=True)
    assert '<svg class="tree"' in page and '<svg class="timeline"' in page


def test_subtasks_hang_under_their_parent_conversation(client, seeded):
    task = ApiRequest.select().where(ApiRequest.is_subtask == True).first()  # noqa: E712
    parent = ApiRequest.get(ApiRequest.request_id == task.parent_task_request_id)
    data = client.get(f"/api/conversations/{parent.conversation_id}").json
    assert task.conversation_id in {t["conversation_id"] for t in data["subtasks"]}
    page = client.get(f"/conversations/{parent.conversation_id}").get_data(as_text=True)
    assert 'class="edge spawn"' in page


def test_token_usage_per_account(client, seeded):
    make_request(account_id="acc_hand", domain="hand.example", input_tokens=1000, output_tokens=500,
                 cache_read_input_tokens=70, timestamp=minutes_ago(30),
                 ratelimit='{"anthropic-ratelimit-unified-status": "allowed", '
                           '"anthropic-ratelimit-unified-5h-utilization": "0.25"}')
    make_request(account_id="acc_hand", input_tokens=5, timestamp=minutes_ago(60 * 6))
    data = client.get("/api/token-usage?account_id=acc_hand").json
    [account] = data["accounts"]
    assert account["window"]["input_tokens"] == 1000 and account["window"]["total_tokens"] == 1570
    assert account["ratelimit"]["status"] == "allowed"
    assert account["ratelimit"]["windows"][0]["utilization"] == 0.25
    assert data["window_hours"] == 5
    assert len(account["daily"]) == 31 and account["daily"][-1]["date"] == utcnow().date().isoformat()
    assert sum(d["input_tokens"] for d in account["daily"]) == account["last_30d"]["input_tokens"]
    wide = client.get("/api/token-usage?account_id=acc_hand&window_hours=7").json
    assert wide["accounts"][0]["window"]["input_tokens"] == 1005


def test_exports_follow_the_filter(client):
    csv_text = client.get("/requests/export.csv?type=quota").get_data(as_text=True)
    lines = csv_text.strip().splitlines()
    assert lines[0].startswith("request_id,domain,timestamp")
    quota = ApiRequest.select().where(ApiRequest.request_type == "quota").count()
    assert len(lines) == quota + 1 and all(",quota," in line for line in lines[1:])
    data = client.get("/requests/export.json?type=quota")
    assert data.headers["Content-Disposition"].startswith("attachment")
    assert len(data.json["requests"]) == quota
    api = client.get("/api/requests?type=quota&limit=500").json["requests"]
    assert data.json["requests"] == api  # same rows, same JSON types as the API
    header = lines[0].split(",")
    first = next(csv.reader([lines[1]]))
    assert first[header.index("stream")] in ("true", "false")
    assert first[header.index("timestamp")] == api[0]["timestamp"]
    assert client.get("/api/requests?format=csv&limit=3").get_data(as_text=True).count("\n") == 4
    assert client.get("/requests/export.json?domain=none.example").json == {"requests": []}
    assert client.get("/requests/export.csv?domain=none.example").get_data(as_text=True).count("\n") == 1


def test_unknown_ids_are_404_pages(client):
    for path in ("/requests/00000000-0000-0000-0000-000000000000", "/requests/%3Cscript%3E",
                 "/conversations/nope", "/api/conversations/nope", "/no-such-page",
                 "/requests/export.xml"):
        response = client.get(path)
        assert response.status_code == 404, path
    assert client.get("/api/requests/nope").json["error"]["type"] == "not_found"


def test_malformed_filters_are_400_with_a_message(client):
    for path, words in (("/requests?since=tomorrow", "since"), ("/requests?status=2", "status"),
                        ("/requests?before=abc", "before"), ("/api/requests?limit=-1", "limit"),
                        ("/?until=x", "until"), ("/token-usage?window_hours=0", "window_hours"),
                        ("/conversations?limit=many", "limit"), ("/requests/live", "after"),
                        ("/requests?type=%3Cb%3E", "type")):
        response = client.get(path)
        assert response.status_code == 400, path
        assert words in response.get_data(as_text=True), path
    assert client.get("/api/requests?since=bad").json["error"]["message"].startswith("since")


def test_user_text_is_escaped(client, seeded):
    evil = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    rid = make_request(domain="xss.example", model=evil, error=evil,
                       body={"messages": [{"role": "user", "content": evil}], "system": evil},
                       response={"type": "message", "content": [{"type": "text", "text": evil}]})
    for path in (f"/requests/{rid}", "/requests?domain=xss.example", f"/requests?q={rid}"):
        page = client.get(path).get_data(as_text=True)
        assert "<script>alert" not in page and "<img src=x" not in page, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page, path
