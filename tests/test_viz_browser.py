"""The page as a user sees it: `tme-abm viz` served on loopback, driven in
Debian's Chromium by Playwright (no browser download).

Skipped only when Chromium is not installed (`.ci/run` installs it); the
reason is printed. Set TME_ABM_SCREENSHOT=path to keep the final screenshot
(tools use this to refresh the README's picture).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys

import pytest

from tme_abm.viz.browser import (
    CHROMIUM_ARGS,
    find_chromium,
    lattice_pixels,
    served,
    wait_for_new_picture,
)

CHROMIUM = find_chromium()


#: The server's bound on live models: the test's two tabs fill it, a third is refused.
MAX_MODELS = 2


@pytest.fixture(scope="module")
def server_log(tmp_path_factory):
    return tmp_path_factory.mktemp("viz") / "server.log"


@pytest.fixture(scope="module")
def server(server_log):
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed; .ci/run installs it (apt-get install chromium)")
    with served(max_models=MAX_MODELS, log=server_log) as url:
        yield url
    # the server is shut down: its port refuses connections
    port = int(url.rsplit(":", 1)[1])
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "tme-abm viz is still serving"


def choose(page, label: str, option: str) -> None:
    """Pick ``option`` in the page's select box labelled ``label``."""
    page.get_by_label(label).click(force=True)
    page.get_by_role("option", name=option, exact=True).click()


def open_tab(browser, url: str):
    page = browser.new_page(viewport={"width": 1600, "height": 1100})
    page.goto(url)
    return page


def test_page_steps_changes_controls_and_resets(server, server_log, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1100})
            page.goto(server)
            page.get_by_text("Step: 0").wait_for(timeout=180_000)
            page.locator(".tme-img").first.wait_for(timeout=60_000)
            # lattice + field map, and three time-series charts drawn from the first tick
            assert page.locator(".tme-img").count() == 2
            assert page.locator(".tme-chart canvas").count() == 3
            page.wait_for_timeout(1000)  # let the first picture settle
            # labels from the scenario, with counts; the field's scale is not 0-1e-9
            legend = page.locator(".tme-legend").inner_text()
            assert "CD8 T cell" in legend and "cd8" not in legend.split()
            assert "e-9" not in page.locator(".tme-colorbar").inner_text()
            first = lattice_pixels(page)

            # step: the counter and the picture change
            page.get_by_role("button", name="Step", exact=True).click()
            page.get_by_text("Step: 1").wait_for(timeout=60_000)
            stepped = wait_for_new_picture(page, first)

            # each tab has its own model: a second tab starts at step 0
            other = open_tab(browser, server)
            other.get_by_text("Step: 0").wait_for(timeout=120_000)
            assert page.get_by_text("Step: 1").count() == 1

            # the two tabs fill the server's bound: a third is told so and builds nothing
            third = open_tab(browser, server)
            third.get_by_text(f"already runs {MAX_MODELS} models").wait_for(timeout=120_000)
            assert third.get_by_text(f"--max-models {MAX_MODELS}").count() == 1
            assert third.get_by_text("Step: 0").count() == 0
            # leaving (or closing) a tab gives its model back: the page's unload handler
            # tells the server, which closes the tab's kernel; the third gets in on Try again
            other.goto("about:blank")
            other.close()
            try_again = third.get_by_role("button", name="Try again")
            for _ in range(60):
                if not try_again.count():
                    break
                try_again.click()
                third.wait_for_timeout(500)
            third.get_by_text("Step: 0").wait_for(timeout=60_000)
            third.goto("about:blank")
            third.close()

            # a view control applies at once: colour by STAT3, then back
            choose(page, "colour cells by", "STAT3")
            by_stat3 = wait_for_new_picture(page, stepped)
            choose(page, "colour cells by", "cell type")
            by_type = wait_for_new_picture(page, by_stat3)

            # zoom in: the picture is drawn larger (cells stay squares); fit undoes it
            page.locator(".tme-zoom-in").click()
            assert page.locator(".tme-zoom").inner_text() == "zoom 2.0x"
            zoomed = wait_for_new_picture(page, by_type)
            page.locator(".tme-zoom-fit").click()
            assert page.locator(".tme-zoom").inner_text() == "zoom 1.0x"
            wait_for_new_picture(page, zoomed)

            # hover the centre (the tumour): the panel shows that cell's values
            view = page.locator(".tme-view").first
            box = view.bounding_box()
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            info = page.locator(".tme-info")
            info.get_by_text("tumour cell").wait_for(timeout=30_000)
            text = info.inner_text()
            assert "STAT3" in text and "division (1/min)" in text and "IL-6 (ng/mL)" in text

            # a model control applies on Reset: seed 2 places cells differently
            seed = page.get_by_label("seed")
            seed.fill("2")
            seed.press("Enter")
            page.get_by_role("button", name="Reset", exact=True).click()
            page.get_by_text("Step: 0").wait_for(timeout=60_000)
            reset = wait_for_new_picture(page, by_type)
            page.wait_for_timeout(1000)
            reset = lattice_pixels(page)
            # same view, same step, other seed: not the first picture
            assert reset != first

            shot = tmp_path / "page.png"
            page.screenshot(path=str(shot))
            assert shot.stat().st_size > 10_000
            keep = os.environ.get("TME_ABM_SCREENSHOT")
            if keep:
                shutil.copy(shot, keep)

            # a scenario parameter by dotted key, applied on Reset: a smaller tumour
            def tumour_count() -> int:
                legend = page.locator(".tme-legend").inner_text()
                return int(legend.split("tumour cell")[1].split()[0].replace(",", ""))

            before = tumour_count()
            key = page.get_by_label("parameter by dotted key", exact=False)
            key.fill("placement.0.radius_um")
            page.get_by_role("option", name="placement.0.radius_um").click()
            page.get_by_text("now 200.0; allowed: ≥ 0").wait_for(timeout=30_000)
            value = page.get_by_label("value (µm)")
            value.fill("100")
            value.press("Enter")
            page.get_by_role("button", name="Set (applies on Reset)").click()
            page.get_by_text("placement.0.radius_um=100.0").wait_for(timeout=30_000)
            page.get_by_role("button", name="Reset", exact=True).click()
            page.get_by_text("Step: 0").wait_for(timeout=60_000)
            page.wait_for_function(
                "(n) => { const t = document.querySelector('.tme-legend').innerText;"
                " return Number(t.split('tumour cell')[1].trim().split(/\\s/)[0]"
                ".replace(/,/g, '')) < n / 2; }", arg=before, timeout=60_000)
            assert tumour_count() < before / 2  # a quarter of the disc's area

            # the model's scenario saved from the page validates and keeps the change
            with page.expect_download() as download:
                page.get_by_role("button", name="Save this model's scenario (.toml)").click()
            saved = tmp_path / "saved.toml"
            download.value.save_as(saved)
            assert "radius_um = 100.0" in saved.read_text(encoding="utf-8")
            proc = subprocess.run([sys.executable, "-m", "tme_abm", "validate", str(saved)],
                                  capture_output=True, text=True, timeout=120)
            assert proc.returncode == 0, proc.stderr

            # a Reset the model refuses says why on the page; the tab keeps its model
            page.get_by_role("button", name="Step", exact=True).click()
            page.get_by_text("Step: 1").wait_for(timeout=60_000)
            seed = page.get_by_label("seed")
            seed.fill("abc")
            seed.press("Enter")
            page.get_by_role("button", name="Reset", exact=True).click()
            page.get_by_text("Reset refused: seed must be a non-negative integer, not 'abc'"
                             ).wait_for(timeout=60_000)
            page.get_by_role("button", name="Back to the model").click()
            page.get_by_text("Step: 1").wait_for(timeout=60_000)
        finally:
            browser.close()
    log = server_log.read_text(encoding="utf-8")
    # no "New version of Solara available ... Please upgrade" (the pins are deliberate)
    assert "Please upgrade" not in log and "cannot be log-scaled" not in log, log
    # nothing else either: no warning at start, on step, on Reset or on hover
    assert "Warning" not in log and "Traceback" not in log, log


@pytest.fixture(scope="module")
def replay_server(tmp_path_factory):
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed; .ci/run installs it (apt-get install chromium)")
    run = tmp_path_factory.mktemp("replay") / "tiny.h5"
    tiny = os.path.join(os.path.dirname(__file__), "data", "tiny.toml")
    proc = subprocess.run([sys.executable, "-m", "tme_abm", "run", tiny, "--out", str(run),
                           "--quiet"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    with served(str(run)) as url:
        yield url


def test_replay_moves_through_the_snapshots_of_a_run_file(replay_server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = open_tab(browser, replay_server)
            page.locator(".tme-lattice").wait_for(timeout=120_000)
            page.get_by_text("7 snapshots").wait_for(timeout=60_000)
            caption = page.locator(".tme-caption")
            assert caption.inner_text().startswith("day 0.50")  # opens at the last
            page.wait_for_timeout(500)
            last = lattice_pixels(page)
            # the slider to the first snapshot: day 0, another picture, the same panels
            slider = page.locator(".v-slider").first
            slider.click()
            page.keyboard.press("Home")
            page.wait_for_function(
                "() => document.querySelector('.tme-caption').innerText.startsWith('day 0.00')",
                timeout=60_000)
            first = wait_for_new_picture(page, last)
            assert page.locator(".tme-chart canvas").count() == 3
            # play runs through to the last snapshot and stops there
            page.get_by_role("button", name="▶", exact=True).click()
            page.wait_for_function(
                "() => document.querySelector('.tme-caption').innerText.startsWith('day 0.50')",
                timeout=60_000)
            assert wait_for_new_picture(page, first) != first
            page.get_by_role("button", name="▶", exact=True).wait_for(timeout=30_000)
        finally:
            browser.close()
