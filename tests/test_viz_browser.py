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
            page.locator("img").first.wait_for(timeout=60_000)
            assert page.locator("img").count() >= 2  # lattice + time series
            page.wait_for_timeout(1000)  # let the first picture settle
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
            page.get_by_role("button", name="STAT3", exact=True).click()
            by_stat3 = wait_for_new_picture(page, stepped)
            page.get_by_role("button", name="cell type", exact=True).click()
            by_type = wait_for_new_picture(page, by_stat3)

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
    # no "New version of Solara available ... Please upgrade" (the pins are deliberate),
    # and the first picture draws without matplotlib's log-scale warning
    assert "Please upgrade" not in log and "cannot be log-scaled" not in log, log
