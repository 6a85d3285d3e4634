"""The Dagster UI after the demo, in a real headless Chromium (Debian's package, driven by
Playwright with its executable path; no browser is downloaded).

Set ``OPSRECON_SCREENSHOT_DIR`` to keep the screenshots (the README's picture comes from
here); otherwise they go to the test's temporary folder.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsrecon_dagster_tests import webserver

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
    data = workdir / "data"
    env.update(
        DAGSTER_HOME=str(data / "dagster_home"),
        OPSRECON_DATABASE_URL=f"sqlite:///{data / 'opsrecon.sqlite3'}",
    )
    with webserver.serving(
        ["-m", "opsrecon_dagster.definitions"], cwd=workdir, env=env, ready_within=90
    ) as base:
        yield base


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
    from playwright.sync_api import TimeoutError as PageTimeout

    assert isinstance(page, Page)
    # Twice at most: on a loaded machine the UI's first render of a page can stall (a
    # GraphQL answer that never arrives); a fresh load then renders it.
    for attempt in (1, 2):
        try:
            page.goto(url, wait_until="networkidle", timeout=90_000)
            for text, n in select:
                # The n-th one, not the first: the page renders in parts, and an earlier
                # element with the same text (the asset's own tab) shows before the one meant.
                target = page.get_by_text(text, exact=True).nth(n)
                target.wait_for(timeout=60_000)
                target.click()
            page.get_by_text(expect).first.wait_for(timeout=60_000)
            break
        except PageTimeout:
            if attempt == 2:
                raise
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
    # Dagster's first-visit dialog is dismissed before actions only; a screenshot is none.
    skip = page.get_by_role("button", name="Skip")
    if skip.is_visible():
        skip.click()
        page.wait_for_timeout(300)
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


# One partition per outcome and family the demo covers: (asset, partition, reason code).
CASES = {
    "succeeded": [
        ("inventory_items", "acme.contoso", "inventory_all_types_covered"),
        ("backup_sets", "globex.contoso", "backup_all_items_captured"),
        ("baseline_snapshots", "acme.contoso", "baseline_snapshot_complete"),
        ("environment_reviews", "acme.contoso", "review_composed"),
    ],
    "partially_succeeded": [
        ("inventory_items", "acme.northwind", "inventory_partial_coverage"),
        ("backup_sets", "acme.northwind", "backup_some_items_failed"),
        ("baseline_snapshots", "acme.northwind", "baseline_snapshot_with_gaps"),
    ],
    "blocked": [
        ("inventory_items", "acme.fabrikam", "environment_consent_missing"),
        ("backup_sets", "globex.hooli", "environment_disabled"),
    ],
    "failed": [("inventory_items", "globex.umbrella", "stale_without_proof")],
}
# The check's badge per outcome (the icon's name in the page): succeeded and partially
# succeeded pass, blocked is a warning, failed an error.
BADGES = {
    "succeeded": "check_circle",
    "partially_succeeded": "check_circle",
    "blocked": "warning_outline",
    "failed": "cancel",
}
FAILS_THE_PARTITION = {"blocked", "failed"}
# The right edge of an element's text, and of its nearest scrolling container's visible box.
TEXT_RIGHT_EDGE = """e => {
  let box = e;
  while (box && !(box.scrollWidth > box.clientWidth + 1)) box = box.parentElement;
  let right = 0;
  const walker = document.createTreeWalker(e, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const range = document.createRange();
    range.selectNodeContents(walker.currentNode);
    for (const rect of range.getClientRects()) right = Math.max(right, rect.right);
  }
  return [right, (box || document.documentElement).getBoundingClientRect().right];
}"""


def _english_strings(codes: list[str]) -> list[str]:
    """What the product says in English on these pages; none may show in German mode."""
    from opsrecon_dagster.operations.reasons import (
        OUTCOME_LABELS,
        message,
        next_step,
        word,
    )

    found = [f"{en}:" for en, _de in OUTCOME_LABELS.values()]
    found += [word(k) for k in ("next_step", "decided_by", "stuck")]
    for code in codes:
        found.append(message(code))
        if (step := next_step(code)) is not None:
            found.append(step)
    return found


def _outcome_shown(
    page: object, base: str, language: str, outcome: str, asset: str, partition: str, code: str
) -> str:
    """The outcome on the partition's check (badge, decision in words, next step), then on
    its partition, and on the deciding run the check links to; returns the check's text."""
    from opsrecon_dagster.operations.reasons import decision_text, next_step

    decided = decision_text(outcome, code, language)  # type: ignore[arg-type]
    text = _check_of(page, base, asset, partition, decided)
    assert decided in text
    badges = set(BADGES.values()) - {BADGES[outcome]}
    html = _detail_html(page)
    assert BADGES[outcome] in html and not any(b in html for b in badges)
    step = next_step(code, language)  # type: ignore[arg-type]
    assert (step is None) or (step in text)
    return text


def _follow_deciding_run(page: object) -> str:
    """Click the check's ``deciding_run`` link; the run page's text."""
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    link = page.locator("tr", has_text="deciding_run").locator("a[href*='/runs/']").first
    href = link.get_attribute("href")
    assert href is not None and "/runs/" in href
    link.click()
    page.wait_for_url(f"**{href}", timeout=90_000)
    page.get_by_text("RUN_START").first.wait_for(timeout=90_000)
    page.wait_for_timeout(1_000)
    return page.inner_text("body")


def _partition_text(page: object, base: str, asset: str, partition: str, failed: bool) -> str:
    url = f"{base}/assets/{asset}?view=partitions&partition={partition}"
    expect = "did not materialize this asset" if failed else "Latest materialization"
    text = _open(page, url, expect)
    assert ("did not materialize this asset" in text) is failed
    assert "Materializing —" not in text and "has started" not in text
    return text


@pytest.mark.parametrize("outcome", list(CASES))
def test_each_outcome_reads_the_same_on_every_surface(
    outcome: str, ui_after_demo: str, browser_page, tmp_path: Path
) -> None:
    """Each outcome is recognizable on the check (its badge and the decision in words), the
    partition (materialized or failed) and the deciding run, whose link works; in every
    family the demo covers."""
    (asset, partition, code), *others = CASES[outcome]
    failed = outcome in FAILS_THE_PARTITION
    _partition_text(browser_page, ui_after_demo, asset, partition, failed)
    if outcome == "failed":
        _shot(browser_page, tmp_path, "ui-partition-failed.png")
    _outcome_shown(browser_page, ui_after_demo, "en", outcome, asset, partition, code)
    _shot(browser_page, tmp_path, f"ui-outcome-{outcome}.png")
    run_page = _follow_deciding_run(browser_page)
    from opsrecon_dagster.operations.reasons import decision_text

    assert decision_text(outcome, code, "en") in run_page
    if failed:
        assert "RUN_FAILURE" in run_page
    if outcome == "failed":  # the killed worker: its step failed, not executing
        assert "Executing (0)" in run_page and "Errored (1)" in run_page
        _shot(browser_page, tmp_path, "ui-run-killed-worker.png")
    for other_asset, other_partition, other_code in others:
        _outcome_shown(
            browser_page, ui_after_demo, "en", outcome, other_asset, other_partition, other_code
        )


def test_runs_list_shows_each_outcome(ui_after_demo: str, browser_page, tmp_path: Path) -> None:
    """The Runs page: each decided run carries its outcome and reason as tags, so a
    partially succeeded run's green "Success" and a blocked run's red "Failure" read
    with their outcome beside them."""
    text = _open(browser_page, f"{ui_after_demo}/runs", "opsrecon/outcome: failed")
    for outcome in CASES:
        assert f"opsrecon/outcome: {outcome}" in text
    _shot(browser_page, tmp_path, "ui-runs-list.png")


def _detail_html(page: object) -> str:
    """The check detail's header (its status badge) as HTML."""
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    html = page.content()
    end = html.find("Latest execution")
    return html[max(0, end - 4000) : end]


def test_overview_attention_list_names_reason_run_and_next_step(
    ui_after_demo: str, browser_page, tmp_path: Path
) -> None:
    """The attention list: per environment its outcome, reason, run (a working link) and
    next step, worst first, readable at 1440 px (nothing cut off at the right)."""
    from playwright.sync_api import Page

    page = browser_page
    assert isinstance(page, Page)
    text = _open(page, f"{ui_after_demo}/assets/operations_overview", "attention 01:")
    text = " ".join(text.split())  # the entries break their lines
    [entry] = re.findall(r"attention \d\d: globex\.umbrella", text)
    assert "The run went stale and produced no proof. [stale_without_proof]" in text
    assert "Next step: Its worker stopped reporting" in text
    for environment in ("acme.fabrikam", "globex.hooli", "acme.northwind"):
        assert environment in text  # blocked and partially succeeded too
    cell = page.locator("tr", has_text=entry).locator("td").last
    # Every line of the entry ends inside the visible part of the metadata table (its
    # scrolling container), so it reads without horizontal scrolling at 1440 px.
    text_right, visible_right = cell.evaluate(TEXT_RIGHT_EDGE)
    assert 0 < text_right <= visible_right
    page.get_by_text(entry).first.hover()
    page.mouse.wheel(0, 400)
    page.wait_for_timeout(500)
    _shot(page, tmp_path, "ui-overview-attention.png")
    link = cell.locator("a[href*='/runs/']").first
    href = link.get_attribute("href")
    link.click()
    page.wait_for_url(f"**{href}", timeout=90_000)
    page.get_by_text("RUN_FAILURE").first.wait_for(timeout=90_000)


@pytest.mark.parametrize("outcome", list(CASES))
def test_german_pages_say_each_outcome_in_german(
    outcome: str, ui_after_german_demo: str, browser_page, tmp_path: Path
) -> None:
    """With OPSRECON_LANGUAGE=de: each outcome's check, partition and deciding run in
    German, codes beside the words; no English string of the product shows."""
    from opsrecon_dagster.operations.reasons import decision_text

    english = _english_strings([code for cases in CASES.values() for _a, _p, code in cases])
    for n, (asset, partition, code) in enumerate(CASES[outcome]):
        text = _outcome_shown(
            browser_page, ui_after_german_demo, "de", outcome, asset, partition, code
        )
        leaked = [s for s in english if s in text]
        assert leaked == [], leaked
        if n == 0:
            _shot(browser_page, tmp_path, f"ui-outcome-{outcome}-de.png")
            run_page = _follow_deciding_run(browser_page)
            assert decision_text(outcome, code, "de") in run_page
            assert decision_text(outcome, code, "en") not in run_page


def test_german_attention_list(ui_after_german_demo: str, browser_page, tmp_path: Path) -> None:
    """The overview in German: outcome, reason and next step; no English string of the
    product shows."""
    from opsrecon_dagster.operations.reasons import message

    text = _open(browser_page, f"{ui_after_german_demo}/assets/operations_overview", "Achtung 01:")
    text = " ".join(text.split())  # the entries break their lines
    assert "Nächster Schritt:" in text and "Fehlgeschlagen" in text and "Blockiert" in text
    assert f"{message('stale_without_proof', 'de')} [stale_without_proof]" in text
    english = _english_strings(
        [code for cases in CASES.values() for _a, _p, code in cases] + ["queued_never_started"]
    )
    leaked = [s for s in english if s in text]
    assert leaked == [], leaked
    browser_page.get_by_text("Achtung 01:").first.hover()
    browser_page.mouse.wheel(0, 400)
    browser_page.wait_for_timeout(500)
    _shot(browser_page, tmp_path, "ui-overview-attention-de.png")
