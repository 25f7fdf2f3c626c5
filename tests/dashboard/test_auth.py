"""Login, sessions, the header key, CSRF, throttling, security headers, open mode."""
import pytest

from dashboard import auth

from .conftest import KEY, csrf_of, log_in, make_app

PROTECTED = ["/", "/requests", "/conversations", "/token-usage", "/requests/export.csv",
             "/api/requests", "/api/stats", "/api/conversations", "/api/token-usage",
             "/static/app.js", "/static/vendor/htmx-2.0.11.min.js", "/logout"]


@pytest.fixture(autouse=True)
def _fresh_throttle():
    auth._failures.clear()
    yield
    auth._failures.clear()


def test_nothing_but_login_and_health_without_auth(anon):
    for path in PROTECTED:
        response = anon.get(path)
        if path.startswith("/api/"):
            assert response.status_code == 401, path
            assert response.json["error"]["type"] == "authentication_error"
        else:
            assert response.status_code == 302 and "/login" in response.location, path
    assert anon.get("/health").json == {"status": "ok"}
    assert anon.get("/login").status_code == 200


def test_login_sets_a_signed_session_without_the_key(anon):
    response = log_in(anon)
    assert response.status_code == 302 and response.location == "/"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and KEY not in cookie
    assert anon.get("/").status_code == 200
    assert anon.get("/api/stats").status_code == 200


def test_wrong_key_and_missing_csrf_are_refused(anon):
    assert log_in(anon, key="nope").status_code == 401
    assert anon.get("/").status_code == 302
    anon.get("/login")
    response = anon.post("/login", data={"key": KEY})
    assert response.status_code == 400 and b"CSRF" in response.data


def test_logout_needs_csrf_and_ends_the_session(client):
    assert client.post("/logout").status_code == 400
    assert client.get("/").status_code == 200
    token = csrf_of(client.get("/").get_data(as_text=True))
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/").status_code == 302


def test_header_key_for_scripts(anon):
    assert anon.get("/api/stats", headers={"X-Dashboard-Key": KEY}).status_code == 200
    assert anon.get("/api/stats", headers={"X-Dashboard-Key": "wrong"}).status_code == 401
    # a script needs no CSRF token: the header cannot be sent cross-site by a form
    assert anon.post("/logout", headers={"X-Dashboard-Key": KEY}).status_code == 302


def test_failed_logins_are_throttled(anon):
    for _ in range(auth.LOGIN_LIMIT):
        assert log_in(anon, key="guess").status_code == 401
    assert log_in(anon).status_code == 429  # even the right key waits out the window


def test_next_never_leaves_the_site(anon):
    token = csrf_of(anon.get("/login").get_data(as_text=True))
    response = anon.post("/login", data={"key": KEY, "csrf_token": token,
                                         "next": "//evil.example/x"})
    assert response.location == "/"


def test_security_headers(client):
    headers = client.get("/requests").headers
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert headers["X-Frame-Options"] == "DENY" and headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "no-store"


def test_a_new_key_ends_old_sessions(db_url, seeded):
    first = make_app(db_url, DASHBOARD_API_KEY=KEY, DASHBOARD_SECRET_KEY="s")
    c = first.test_client()
    log_in(c)
    cookie = c.get_cookie("nexus_session").value
    second = make_app(db_url, DASHBOARD_API_KEY="another-key", DASHBOARD_SECRET_KEY="s")
    c2 = second.test_client()
    c2.set_cookie("nexus_session", cookie)
    assert c2.get("/").status_code == 302


def test_open_mode_says_so_on_every_page(db_url, seeded):
    c = make_app(db_url).test_client()
    for path in ("/", "/requests", "/conversations", "/token-usage"):
        page = c.get(path).get_data(as_text=True)
        assert "No <code>DASHBOARD_API_KEY</code> is set" in page, path
    assert c.get("/login").status_code == 302
