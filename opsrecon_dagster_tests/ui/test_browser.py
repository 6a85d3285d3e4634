"""The Dagster UI after the demo, in a real headless Chromium (Debian's package, driven by
Playwright with its executable path; no browser is downloaded).

Set ``OPSRECON_SCREENSHOT_DIR`` to keep the screenshots (the README's picture comes from
here); otherwise they go to the test's temporary folder.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
IN_CI = os.environ.get("CI", "").lower() == "true"
# Chromium as root in a sandbox-less container, with no background traffic to the internet.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ui_after_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Run the demo in a fresh folder, then serve its instance with dagster-webserver."""
    if CHROMIUM is None:
        if IN_CI:
            pytest.fail("chromium is required under CI=true (apt-get install chromium)")
        pytest.skip("browser test skipped: no chromium installed (apt-get install chromium)")
    workdir = tmp_path_factory.mktemp("ui")
    demo = subprocess.run(
        [sys.executable, "-m", "opsrecon_dagster.cli.main", "demo"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    port = _free_port()
    data = workdir / "data" / "demo"
    env = {
        **os.environ,
        "DAGSTER_HOME": str(data / "dagster_home"),
        "OPSRECON_DATABASE_URL": f"sqlite:///{data / 'opsrecon.sqlite3'}",
    }
    webserver = Path(sys.executable).with_name("dagster-webserver")
    server = subprocess.Popen(
        [str(webserver), "-h", "127.0.0.1", "-p", str(port), "-m", "opsrecon_dagster.definitions"],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/server_info", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.5)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture
def browser_page(ui_after_demo: str) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        yield page
        browser.close()


def _open(page: object, url: str, expect: str) -> str:
    """Navigate, dismiss Dagster's first-visit dialog, wait for ``expect``; return page text."""
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    page.goto(url, wait_until="networkidle", timeout=60_000)
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.wait_for(timeout=3_000)
        skip.click()
    except Exception:
        pass
    page.get_by_text(expect).first.wait_for(timeout=30_000)
    page.wait_for_timeout(500)
    return page.inner_text("body")


def _shot(page: object, tmp_path: Path, name: str) -> Path:
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    folder = Path(os.environ.get("OPSRECON_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000
    return path


def test_catalog_lists_the_four_assets(ui_after_demo: str, browser_page, tmp_path) -> None:
    text = _open(browser_page, f"{ui_after_demo}/assets", "environment_reviews")
    for asset in ("inventory_items", "baseline_snapshots", "backup_sets", "environment_reviews"):
        assert asset in text
    assert "operations_overview" in text
    _shot(browser_page, tmp_path, "ui-asset-catalog.png")


def test_partition_shows_the_reconciliation_observation(
    ui_after_demo: str, browser_page, tmp_path
) -> None:
    url = f"{ui_after_demo}/assets/inventory_items?view=events&partition=globex.umbrella"
    text = _open(browser_page, url, "stale_without_proof")
    assert "observed" in text
    assert "The run went stale and produced no proof." in text
    assert "failed" in text
    assert "reconciler" in text
    _shot(browser_page, tmp_path, "ui-reconciliation-observation.png")


def test_automation_lists_the_reconciliation_sensor(
    ui_after_demo: str, browser_page, tmp_path
) -> None:
    text = _open(browser_page, f"{ui_after_demo}/automation", "reconciliation_sensor")
    for name in ("reconciliation_sensor", "reconcile_on_run_failure", "inventory_sync_schedule"):
        assert name in text
    _shot(browser_page, tmp_path, "ui-automation.png")
