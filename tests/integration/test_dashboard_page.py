"""The Ray dashboard's Serve page, opened by a real browser (Debian's headless
Chromium) with the cluster's token, names every Serve application; without
the token it asks for one and names none. The screenshot is kept in
reports/dashboard-serve.png.

The dashboard's web page reads the token from its `ray-authentication-token`
cookie. Cookies are per host, not per port, so a page of this test on
127.0.0.1 sets the cookie and sends the browser on to the dashboard's port.
"""
from __future__ import annotations

import http.server
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from helpers import DASHBOARD, ROOT, TOKEN_FILE, serve_state

pytestmark = pytest.mark.usefixtures("live_cluster")

SERVE_PAGE = f"{DASHBOARD}/#/serve"
SCREENSHOT = ROOT / "reports" / "dashboard-serve.png"


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium")
    if not path:
        # scripts/test.sh installs Debian's package; Ubuntu ships Chromium as a snap only.
        pytest.skip("no chromium on this host (Debian: apt-get install chromium)")
    return path


@contextmanager
def via_cookie(token: str) -> Iterator[str]:
    """A URL on 127.0.0.1 that sets the token cookie and redirects to the Serve page."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the name http.server calls
            self.send_response(302)
            self.send_header("Set-Cookie", f"ray-authentication-token={token}; Path=/; SameSite=Lax")
            self.send_header("Location", SERVE_PAGE)
            self.end_headers()

        def log_message(self, *args):  # the token stays out of the test's output
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def browse(chromium: str, url: str, *action: str) -> str:
    """Chromium's run on url, given time for the page's own requests; its stdout."""
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             f"--user-data-dir={profile}", "--window-size=1400,900", "--virtual-time-budget=20000",
             *action, url],
            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_serve_page_names_every_application(chromium):
    apps = sorted(serve_state())
    assert apps, "the live cluster runs no Serve application"
    token = TOKEN_FILE.read_text().strip()
    with via_cookie(token) as url:
        page = browse(chromium, url, "--dump-dom")
        SCREENSHOT.parent.mkdir(exist_ok=True)
        SCREENSHOT.unlink(missing_ok=True)
        browse(chromium, url, f"--screenshot={SCREENSHOT}")
    missing = [app for app in apps if app not in page]
    assert not missing, f"the Serve page does not name {missing}; it shows:\n{page[-3000:]}"
    assert "RUNNING" in page, page[-3000:]
    assert SCREENSHOT.stat().st_size > 10_000, "the screenshot is (nearly) empty"


def test_serve_page_without_the_token_shows_nothing(chromium):
    with via_cookie("not-the-token") as url:
        page = browse(chromium, url, "--dump-dom")
    leaked = [app for app in serve_state() if app in page]
    assert not leaked, f"without the token the Serve page still names {leaked}"
    assert "Authentication Token Required" in page, f"the page does not ask for the token:\n{page[-3000:]}"
