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

pytestmark = pytest.mark.slow  # real processes: `tasks.py test --fast` leaves it out

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


def _serve_demo(workdir: Path, language: str) -> Iterator[str]:
    """Run the demo in ``workdir`` in a language, then serve its instance (dagster-webserver)."""
    if CHROMIUM is None:
        if IN_CI:
            pytest.fail("chromium is required under CI=true (apt-get install chromium)")
        pytest.skip("browser test skipped: no chromium installed (apt-get install chromium)")
    env = {**os.environ, "OPSRECON_LANGUAGE": language}
    demo = subprocess.run(
        [sys.executable, "-m", "opsrecon_dagster.cli.main", "demo"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    port = _free_port()
    data = workdir / "data"
    env.update(
        DAGSTER_HOME=str(data / "dagster_home"),
        OPSRECON_DATABASE_URL=f"sqlite:///{data / 'opsrecon.sqlite3'}",
    )
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


@pytest.fixture(scope="module")
def ui_after_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The UI after the demo (English)."""
    yield from _serve_demo(tmp_path_factory.mktemp("ui"), "en")


@pytest.fixture(scope="module")
def ui_after_german_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The UI after the demo run with ``OPSRECON_LANGUAGE=de``."""
    yield from _serve_demo(tmp_path_factory.mktemp("ui-de"), "de")


@pytest.fixture
def browser_page(ui_after_demo: str) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        # Dagster's first-visit dialog may open at any moment of a page's life (late under
        # load): Playwright dismisses it whenever it shows up before an action.
        skip = page.get_by_role("button", name="Skip")
        page.add_locator_handler(skip, lambda overlay: overlay.click())
        yield page
        browser.close()


def _open(page: object, url: str, expect: str, *select: tuple[str, int]) -> str:
    """Navigate, click each ``(text, n)`` of ``select`` in turn (the n-th element reading
    ``text``, in page order, once it exists), wait for ``expect``; return the page text.
    The waits end when their element shows; the ceilings are generous for a loaded machine."""
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    page.goto(url, wait_until="networkidle", timeout=90_000)
    for text, n in select:
        # Waiting for the n-th one, not the first: the page renders in parts, and an earlier
        # element with the same text (the asset's own tab) shows before the one meant.
        target = page.get_by_text(text, exact=True).nth(n)
        target.wait_for(timeout=90_000)
        target.click()
    page.get_by_text(expect).first.wait_for(timeout=90_000)
    page.wait_for_timeout(500)
    return page.inner_text("body")


def _check_of(page: object, base: str, asset: str, partition: str, expect: str) -> str:
    """The asset's proof check as the UI shows it for one partition: the check's own
    Partitions tab (the second, after the asset's), then the partition."""
    url = f"{base}/assets/{asset}?view=checks"
    return _open(page, url, expect, ("Partitions", 1), (partition, 0))


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


def test_killed_worker_partition_is_failed_with_the_failed_check(
    ui_after_demo: str, browser_page, tmp_path
) -> None:
    """(a) The killed worker's partition is not "Materializing": its latest run failed, and
    its check shows the reconciler's failed decision."""
    url = f"{ui_after_demo}/assets/inventory_items?view=partitions&partition=globex.umbrella"
    text = _open(browser_page, url, "did not materialize this asset")
    assert "Materializing —" not in text and "has started" not in text
    assert "failed, and did not materialize this asset" in text
    _shot(browser_page, tmp_path, "ui-partition-failed.png")
    # Wait for the whole description (the code alone may show in the metadata first).
    decided = "The run went stale and produced no proof. [stale_without_proof]"
    text = _check_of(browser_page, ui_after_demo, "inventory_items", "globex.umbrella", decided)
    assert decided in text
    assert "reconciler" in text and "Failed" in text
    _shot(browser_page, tmp_path, "ui-check-failed-decision.png")


def test_blocked_partition_is_not_green(ui_after_demo: str, browser_page, tmp_path) -> None:
    """(b) The blocked run's partition shows its failed attempt and an error check."""
    url = f"{ui_after_demo}/assets/inventory_items?view=partitions&partition=acme.fabrikam"
    text = _open(browser_page, url, "did not materialize this asset")
    assert "failed, and did not materialize this asset" in text
    text = _check_of(
        browser_page,
        ui_after_demo,
        "inventory_items",
        "acme.fabrikam",
        "environment_consent_missing",
    )
    assert "[environment_consent_missing]" in text and "blocked" in text
    assert "warning_outline" not in _detail_html(browser_page)  # an error, not a warning


def _detail_html(page: object) -> str:
    """The check detail's header (its status badge) as HTML."""
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    html = page.content()
    end = html.find("Latest execution")
    return html[max(0, end - 4000) : end]


def test_partially_succeeded_partition_shows_a_warning(
    ui_after_demo: str, browser_page, tmp_path
) -> None:
    """(c) Partially succeeded: materialized, with the proof check as a warning."""
    partial = "Some policy types were synced, others failed. [inventory_partial_coverage]"
    text = _check_of(
        browser_page,
        ui_after_demo,
        "inventory_items",
        "acme.northwind",
        partial,
    )
    assert partial in text
    assert "warning_outline" in _detail_html(browser_page)  # the yellow warning badge
    _shot(browser_page, tmp_path, "ui-check-warning.png")
    url = f"{ui_after_demo}/assets/inventory_items?view=partitions&partition=acme.northwind"
    text = _open(browser_page, url, "Latest materialization")
    assert "did not materialize" not in text


def test_overview_shows_the_attention_list(ui_after_demo: str, browser_page, tmp_path) -> None:
    """(d) The overview lists what needs attention per workspace and environment."""
    text = _open(browser_page, f"{ui_after_demo}/assets/operations_overview", "blocked_24h")
    assert "attention" in text and "failed_24h" in text
    for environment in ("acme.fabrikam", "globex.umbrella", "globex.hooli"):
        assert environment in text
    assert "latest_problem_run" in text
    _shot(browser_page, tmp_path, "ui-overview-attention.png")


def test_german_messages_in_the_ui(ui_after_german_demo: str, browser_page, tmp_path) -> None:
    """(e) With OPSRECON_LANGUAGE=de the decisions read in German, codes beside them."""
    german = "Der Lauf ist ohne Fortschritt geblieben und hat keinen Nachweis erzeugt."
    text = _check_of(
        browser_page, ui_after_german_demo, "inventory_items", "globex.umbrella", german
    )
    assert f"{german} [stale_without_proof]" in text
    _shot(browser_page, tmp_path, "ui-check-german.png")
