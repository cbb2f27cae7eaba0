"""Measure how fast the page redraws, and refresh the README's screenshot.

Usage::

    python tools/viz_screenshot.py [--steps 10] [--play-s 40] [--out docs/img/viz.png]

Serves ``tme-abm viz`` (baseline, 200 x 200) on loopback, opens it in
headless Chromium, clicks Step ``--steps`` times and times each click until
the lattice picture has changed (model step + both figures + transfer to the
browser), prints the median and range, then plays for ``--play-s`` seconds,
pauses and saves a screenshot.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from tme_abm.viz.browser import (
    CHROMIUM_ARGS,
    find_chromium,
    lattice_pixels,
    served,
    wait_for_new_picture,
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--play-s", type=float, default=40.0)
    ap.add_argument("--out", type=Path, default=Path("docs/img/viz.png"))
    args = ap.parse_args()
    chromium = find_chromium()
    if chromium is None:
        print("needs Chromium: apt-get install chromium", file=sys.stderr)
        return 2
    with served() as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1100})
        page.goto(url)
        page.get_by_text("Step: 0").wait_for(timeout=180_000)
        page.wait_for_timeout(1500)
        pixels = lattice_pixels(page)
        times = []
        for k in range(1, args.steps + 1):
            start = time.perf_counter()
            page.get_by_role("button", name="Step", exact=True).click()
            page.get_by_text(f"Step: {k}").wait_for(timeout=60_000)
            pixels = wait_for_new_picture(page, pixels, poll_ms=20)
            times.append(time.perf_counter() - start)
        print(f"step + redraw, click to new picture: median {statistics.median(times):.2f} s "
              f"(min {min(times):.2f}, max {max(times):.2f}) over {len(times)} steps")
        play = page.get_by_role("button", name="▶", exact=True)
        play.click()
        page.wait_for_timeout(int(args.play_s * 1000))
        page.get_by_role("button", name="❚❚", exact=True).click()
        page.wait_for_timeout(2000)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.out))
        steps = page.get_by_text("Step:").first.inner_text()
        print(f"wrote {args.out} ({steps})")
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
