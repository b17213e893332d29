"""Tests: the admin dashboard in a real browser (Debian's chromium driven headless by
Playwright) against the running embedded lab.

The page renders with no console error and asks nothing of any other origin; the v1/v2 split on
cluster-2's Tier-2 moves while ``gateway-lab scenario canary`` changes the weights; a Tier-2
stopped with ``gateway-lab kill`` shows as down on Tier-1's page within 2 s of the command
returning and healthy again after ``gateway-lab start``; a rejected reload shows its file's
diagnostics; the explain form answers from the live state. A screenshot is saved under the
test's tmp path (``make screenshot`` also copies it to docs/images/dashboard.png). Skipped,
with the reason, where Playwright or a chromium is missing.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.lab.labkit import RunningLab

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page


ROOT = Path(__file__).resolve().parents[2]
DOC_SCREENSHOT = ROOT / "docs" / "images" / "dashboard.png"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
SHOWN_DOWN_WITHIN = 2.0
CANARY_REQUESTS = 3000
"""Per split: long enough for the page's 1 s rate window to hold one split only."""
VICTIM = "tier2-cluster-3"
VICTIM_CLUSTER = "outbound|8443|cluster-3|tier2.lab"
VICTIM_HOST = "127.0.3.1:8443"
HELLO_V2_SHARE = (
    'tr.subcluster[data-cluster^="outbound|5000|v2|helloworld"] [data-field="destination_share"]'
)


def find_browser() -> str | None:
    """``DASHBOARD_BROWSER``, else the first chromium on PATH or in /usr/bin."""
    chosen = os.environ.get("DASHBOARD_BROWSER")
    if chosen:
        return chosen if Path(chosen).is_file() else None
    for name in BROWSERS:
        found = shutil.which(name) or (
            f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").is_file() else None
        )
        if found:
            return found
    return None


def missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if importlib.util.find_spec("playwright") is None:
        return "Playwright for Python is not installed (dev extra: make .venv/.installed)"
    if find_browser() is None:
        return "no chromium found (apt-get install chromium, or set DASHBOARD_BROWSER to one)"
    return None


MISSING = missing()
# Checked before the lab starts: without a browser nothing here can run.
pytestmark = [pytest.mark.lab, pytest.mark.skipif(MISSING is not None, reason=MISSING or "")]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    executable = find_browser()
    assert executable is not None
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            yield launched
        finally:
            launched.close()


class DashboardPage:
    """One page on a gateway's dashboard, with what the browser reported along the way."""

    def __init__(self, browser: Browser, url: str) -> None:
        self.url = url
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.page: Page = self.context.new_page()
        self.console_errors: list[str] = []
        self.requested: list[str] = []
        self.page.on(
            "console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None
        )
        self.page.on("pageerror", lambda exc: self.console_errors.append(str(exc)))
        self.page.on("request", lambda r: self.requested.append(r.url))
        self.page.goto(url)
        self.page.wait_for_function(
            "document.getElementById('connection').textContent === 'live'"
            " && document.getElementById('version').textContent !== '—'",
            timeout=15_000,
        )

    def close(self) -> None:
        self.context.close()

    def check_clean(self) -> None:
        assert self.console_errors == []
        origin = self.url.rstrip("/")
        foreign = [u for u in self.requested if not (u.startswith(origin) or u.startswith("data:"))]
        assert foreign == []

    def text(self, selector: str) -> str | None:
        node = self.page.query_selector(selector)
        return None if node is None else node.inner_text()

    def attribute(self, selector: str, name: str) -> str | None:
        node = self.page.query_selector(selector)
        return None if node is None else node.get_attribute(name)


@pytest.fixture
def open_page(browser: Browser) -> Iterator[Callable[[str], DashboardPage]]:
    pages: list[DashboardPage] = []

    def open_(url: str) -> DashboardPage:
        pages.append(DashboardPage(browser, url))
        return pages[-1]

    yield open_
    for page in pages:
        page.close()


def printed_dashboard(lab: RunningLab, name: str) -> str:
    """The dashboard URL ``gateway-lab up`` printed for the gateway ``name``."""
    found = re.search(rf"^\s+{re.escape(name)}\s+(http://\S+/)$", lab.text(), re.MULTILINE)
    assert found, f"gateway-lab up printed no dashboard URL for {name}:\n{lab.text()}"
    return found.group(1)


def until(check: Callable[[], Any], within: float, what: str, every: float = 0.05) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {within}s waiting for {what}")


def share(text: str | None) -> float | None:
    if text is None or not text.strip().endswith("%"):
        return None
    return float(text.replace("%", "").strip())


class Load:
    """A bounded background load through Tier-1: ``count`` requests at most, ``limit`` seconds
    at most, stopped early by ``stop``. Every 50th request names a host no route serves."""

    def __init__(self, lab: RunningLab, count: int = 2000, limit: float = 60.0) -> None:
        port = lab.topology.tier1.port_for("HTTP")
        self.url = f"http://{lab.topology.tier1.address}:{port}/productpage"
        self.count, self.limit = count, limit
        self.stopped = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + self.limit
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        for i in range(self.count):
            if self.stopped.is_set() or time.monotonic() > deadline:
                return
            host = "nowhere.example" if i % 50 == 0 else "bookinfo.example.com"
            request = urllib.request.Request(self.url, headers={"Host": host})
            try:
                with opener.open(request, timeout=5) as resp:
                    resp.read()
            except urllib.error.HTTPError as exc:
                exc.close()
            except OSError:
                pass
            self.sent += 1

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=10)


def test_page_renders_live_state_without_console_errors(
    lab: RunningLab, open_page: Callable[[str], DashboardPage], tmp_path: Path
) -> None:
    """Tier-1's page: version, reload, listeners with certificate expiry, every cluster with its
    priorities and hosts, the live split of weighted traffic over the three clusters and the
    404 NR errors; then the screenshot."""
    lab.wait_healthy()
    page = open_page(printed_dashboard(lab, "tier1-gateway"))
    dump = lab.admin("/config_dump")
    assert page.text("#version") == dump["version"]
    assert (page.text("#reload-result") or "").startswith("accepted")
    clusters = lab.admin("/clusters")
    shown = {n.get_attribute("data-cluster") for n in page.page.query_selector_all("div.cluster")}
    assert shown == set(clusters)
    https = page.page.query_selector_all("#listener-table tbody tr td:last-child .badge")
    assert https and all(re.fullmatch(r"\d+(\.\d)? (d|h|s)", b.inner_text()) for b in https)
    load = Load(lab)
    try:

        def split_shown() -> bool:
            shares = [
                share(
                    page.text(
                        f'tr.subcluster[data-cluster="outbound|8443|{c}|tier2.lab"] '
                        '[data-field="destination_share"]'
                    )
                )
                for c in ("cluster-1", "cluster-2", "cluster-3")
            ]
            flagged = page.page.query_selector('#error-table tr[data-flags="NR"]')
            window = re.search(r"[\d.]+", page.text("#rate-window") or "")
            covered = window is not None and float(window.group()) >= 0.9
            return all(s is not None and s > 0 for s in shares) and flagged and covered

        until(split_shown, 30, "the weighted split and a 404 NR on the page", every=0.2)
        rps = float(page.text("#rps") or "0")
        assert rps > 0
        # The screenshot shows an explain answer too (the form itself is tested below).
        page.page.fill("#explain-url", "http://bookinfo.example.com:8080/productpage")
        page.page.fill("#explain-headers", "X-CLUSTER-SELECTOR: cluster-2")
        page.page.click("#explain-form button[type=submit]")
        page.page.wait_for_selector("#explain-route", timeout=10_000)
        shot = tmp_path / "dashboard.png"
        page.page.screenshot(path=str(shot), full_page=True)
    finally:
        load.stop()
    assert shot.stat().st_size > 10_000
    print(f"dashboard screenshot: {shot}")
    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        DOC_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOC_SCREENSHOT)
        print(f"copied to {DOC_SCREENSHOT}")
    page.check_clean()


def test_canary_moves_the_split_on_the_tier2_page(
    lab: RunningLab, open_page: Callable[[str], DashboardPage]
) -> None:
    """While the canary scenario runs 90/10, 50/50 then 0/100 on cluster-2, the v2 share that
    cluster-2's page shows for helloworld goes from about 10 % through about 50 % to 100 %."""
    page = open_page(printed_dashboard(lab, "tier2-cluster-2"))
    scenario = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway_lab.cli",
            "scenario",
            "canary",
            "--requests",
            str(CANARY_REQUESTS),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen: list[float] = []
    deadline = time.monotonic() + 240
    try:
        while scenario.poll() is None and time.monotonic() < deadline:
            value = share(page.text(HELLO_V2_SHARE))
            if value is not None and (not seen or seen[-1] != value):
                seen.append(value)
            time.sleep(0.1)
    finally:
        if scenario.poll() is None:
            scenario.kill()
        output = scenario.communicate(timeout=30)[0]
    print(f"v2 shares shown during the canary: {seen}")
    assert scenario.returncode == 0, output
    assert seen, f"no v2 share was ever shown:\n{output}"
    assert min(seen) <= 25 and max(seen) >= 95, (seen, output)
    assert any(40 <= v <= 60 for v in seen), seen  # and the 50/50 in between
    page.check_clean()


def test_a_killed_tier2_shows_down_within_two_seconds(
    lab: RunningLab, open_page: Callable[[str], DashboardPage]
) -> None:
    """``gateway-lab kill``: Tier-1's page shows the Tier-2 host down (its health check failing)
    within 2 s, then unhealthy; ``gateway-lab start``: healthy again."""
    lab.wait_healthy()
    page = open_page(printed_dashboard(lab, "tier1-gateway"))
    row = f'div.cluster[data-cluster="{VICTIM_CLUSTER}"] tr[data-host="{VICTIM_HOST}"]'

    def state() -> str | None:
        return page.attribute(row, "data-state")

    until(lambda: state() == "healthy", 30, f"{VICTIM_HOST} healthy on the page")
    began = time.monotonic()
    killed = lab.cli("kill", VICTIM)
    returned = time.monotonic()
    assert killed.returncode == 0, killed.stdout + killed.stderr
    try:
        until(lambda: state() != "healthy", 10, f"{VICTIM_HOST} shown down")
        shown = time.monotonic()
        print(
            f"{VICTIM} shown {state()} {shown - returned:.2f}s after `gateway-lab kill` returned "
            f"({shown - began:.2f}s after it was started)"
        )
        assert shown - returned <= SHOWN_DOWN_WITHIN
        until(lambda: state() == "unhealthy", 10, f"{VICTIM_HOST} unhealthy")
        print(f"{VICTIM} shown unhealthy {time.monotonic() - returned:.2f}s after kill returned")
        host = next(
            h
            for h in lab.admin("/clusters")[VICTIM_CLUSTER]["hosts"]
            if h["address"] == "127.0.3.1"
        )
        assert host["healthy"] is False and host["health_check_failed"] is True
    finally:
        started = lab.cli("start", VICTIM)
    assert started.returncode == 0, started.stdout + started.stderr
    until(lambda: state() == "healthy", 30, f"{VICTIM_HOST} healthy again")
    page.check_clean()


BROKEN = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: broken, namespace: bookinfo}
spec:
  hosts: [bookinfo.example.com]
  gateways: [bookinfo/bookinfo-gateway]
  http:
  - route:
    - destination: {host: helloworld}
      weight: -1
"""


def test_a_rejected_reload_shows_its_diagnostics(
    lab: RunningLab, open_page: Callable[[str], DashboardPage]
) -> None:
    """A broken override on cluster-1: its Tier-2 page says rejected, names the file and the
    field, and keeps the version; once the file is gone the reload is accepted again."""
    page = open_page(printed_dashboard(lab, "tier2-cluster-1"))
    version = page.text("#version")
    broken = lab.workdir / "overrides" / "cluster-1" / "dashboard-broken.yaml"
    broken.write_text(BROKEN)
    try:
        until(
            lambda: (page.text("#reload-result") or "").startswith("rejected"),
            15,
            "the rejected reload on the page",
        )
        diagnostics = page.text("#diagnostics") or ""
        assert page.page.is_visible("#diagnostics")
        assert "dashboard-broken.yaml" in diagnostics and "weight" in diagnostics, diagnostics
        assert page.text("#reload-result") == f"rejected: still serving {version}"
        assert page.text("#version") == version
    finally:
        broken.unlink()
    until(
        lambda: (page.text("#reload-result") or "").startswith("accepted"),
        15,
        "the reload accepted again",
    )
    assert not page.page.is_visible("#diagnostics")
    page.check_clean()


def test_explain_form_answers_from_the_live_state(
    lab: RunningLab, open_page: Callable[[str], DashboardPage]
) -> None:
    """The form's answer names the rule and destination that ``/explain`` gives."""
    page = open_page(printed_dashboard(lab, "tier1-gateway"))
    url = f"http://bookinfo.example.com:{lab.topology.tier1.port_for('HTTP')}/productpage"
    page.page.fill("#explain-url", url)
    page.page.fill("#explain-headers", "X-CLUSTER-SELECTOR: cluster-3")
    page.page.click("#explain-form button[type=submit]")
    page.page.wait_for_selector("#explain-route", timeout=10_000)
    query = urllib.parse.urlencode({"url": url, "header": "X-CLUSTER-SELECTOR: cluster-3"})
    expected = lab.admin(f"/explain?{query}")
    assert page.text("#explain-route") == expected["route"]
    assert expected["route"].endswith("select-cluster-3")
    rows = page.page.query_selector_all("#explain-destinations tbody tr")
    assert [r.get_attribute("data-cluster") for r in rows] == [VICTIM_CLUSTER]
    assert "100.0 %" in rows[0].inner_text()  # the only destination gets the whole share
    page.check_clean()
