"""Measure how fast the page draws, and refresh the README's screenshots.

Usage::

    python tools/viz_screenshot.py [--play-s 20] [--steps 10] [--large 1000]
                                   [--out docs/img/viz.png] [--replay RUN.h5]
                                   [--from-run RUN.h5 --from-day 5] [--busy N]

For the baseline (200 x 200), the baseline opened at the checkpoint of
``--from-run RUN`` nearest ``--from-day`` (a grown tumour), and a copy of the baseline on a
``--large`` x ``--large`` lattice (0: skip), serves ``tme-abm viz`` on
loopback, opens it in headless Chromium and measures, in the browser:

* **step**: click on Step to the new picture on screen (the lattice's
  ``data-tick`` changes, then the next animation frame is painted), median
  and range over ``--steps`` clicks;
* **play**: frames per second while playing for ``--play-s`` seconds with one
  model step per frame (Mesa's render interval 1, play interval 1 ms), and
  the share of frames that advanced exactly one tick.

``--busy N`` instead measures only the baseline while N busy-loop
processes compete for the cores, as on a machine in use.

It also times one time-series update (new row, thinning, the chart payload)
after 1e3, 1e4 and 1e5 ticks, without a browser, to show that it does not
grow with the run.  Finally it saves a screenshot of the baseline page
(zoomed in, a cell hovered) to ``--out`` and, with ``--replay``, one of the
replay page of that run file beside it (``viz_replay.png``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from tme_abm.viz.browser import CHROMIUM_ARGS, find_chromium, served

#: Records every change of the lattice's tick with the time of the next painted frame.
WATCH_TICKS = """
() => {
  window.__frames = [];
  const el = document.querySelector('.tme-lattice');
  const seen = () => {
    const tick = Number(el.getAttribute('data-tick'));
    requestAnimationFrame(() => window.__frames.push([performance.now(), tick]));
  };
  new MutationObserver(seen).observe(el, {attributes: true, attributeFilter: ['data-tick']});
}
"""


def tick_of(page) -> int:
    return int(page.locator(".tme-lattice").get_attribute("data-tick"))


def wait_tick(page, tick: int, timeout_s: float = 120.0) -> None:
    page.wait_for_function(
        f"() => window.__frames.some(f => f[1] >= {tick})", timeout=timeout_s * 1000)


def measure(url: str, browser, steps: int, play_s: float, shot: Path | None) -> dict:
    page = browser.new_page(viewport={"width": 1600, "height": 1100})
    page.goto(url)
    page.locator(".tme-lattice").wait_for(timeout=300_000)
    page.get_by_text("Step:").first.wait_for(timeout=60_000)
    page.wait_for_timeout(1500)
    page.evaluate(WATCH_TICKS)
    step_s = []
    for _ in range(steps):
        start_tick = tick_of(page)
        n0 = page.evaluate("window.__frames.length")
        t0 = page.evaluate("performance.now()")
        page.get_by_role("button", name="Step", exact=True).click()
        wait_tick(page, start_tick + 1)
        frames = page.evaluate("window.__frames")[n0:]
        step_s.append((frames[-1][0] - t0) / 1000.0)
    n0 = page.evaluate("window.__frames.length")
    page.get_by_role("button", name="▶", exact=True).click()
    page.wait_for_timeout(int(play_s * 1000))
    page.get_by_role("button", name="❚❚", exact=True).click()
    page.wait_for_timeout(1000)
    frames = page.evaluate("window.__frames")[n0:]
    # frames painted while playing: from the first to the last change
    times = [f[0] for f in frames]
    ticks = [f[1] for f in frames]
    fps = (len(frames) - 1) / ((times[-1] - times[0]) / 1000.0) if len(frames) > 1 else 0.0
    single = sum(1 for a, b in zip(ticks, ticks[1:], strict=False) if b - a == 1)
    out = {"step_s": step_s, "fps": fps, "frames": len(frames),
           "one_tick_share": single / max(1, len(frames) - 1),
           "last_tick": ticks[-1] if ticks else 0}
    if shot is not None:
        view = page.locator(".tme-view").first
        box = view.bounding_box()
        for _ in range(4):
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.mouse.wheel(0, -200)
            page.wait_for_timeout(150)
        page.mouse.move(box["x"] + box["width"] * 0.52, box["y"] + box["height"] * 0.5)
        page.wait_for_timeout(1500)
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shot))
    page.close()
    return out


def series_update_cost() -> dict[int, float]:
    """Median time of one series update after 1e3, 1e4, 1e5 ticks (seconds)."""
    from tme_abm.scenario import load_scenario
    from tme_abm.scenario.library import list_scenarios
    from tme_abm.viz.frames import Catalogue
    from tme_abm.viz.series import SeriesBuffer, chart_payload, series_names

    cat = Catalogue.from_scenario(load_scenario(list_scenarios()["baseline"]).scenario)
    buffer = SeriesBuffer(series_names(cat))
    row = [1.0] * len(buffer.names)
    out = {}
    tick = 0
    for target in (1_000, 10_000, 100_000):
        while tick < target - 50:
            buffer.add(tick, row)
            tick += 1
        times = []
        for _ in range(50):
            t0 = time.perf_counter()
            buffer.add(tick, row)
            chart_payload(buffer, cat)
            times.append(time.perf_counter() - t0)
            tick += 1
        out[target] = statistics.median(times)
    return out


def large_scenario(folder: Path, n: int) -> Path:
    """The baseline on an n x n lattice, written as a scenario file."""
    from tme_abm.scenario import load_scenario, validate_data
    from tme_abm.scenario.library import list_scenarios
    from tme_abm.viz.params import scenario_toml

    sc = load_scenario(list_scenarios()["baseline"]).scenario
    data = sc.model_dump(mode="json", exclude_none=True)
    data["domain"]["shape"] = [n, n]
    data["name"] = f"baseline_{n}"
    path = folder / f"baseline_{n}.toml"
    path.write_text(scenario_toml(validate_data(data, str(path))), encoding="utf-8")
    return path


def report(name: str, r: dict) -> None:
    s = r["step_s"]
    print(f"{name}: step, click to new picture on screen: median {statistics.median(s):.3f} s "
          f"(min {min(s):.3f}, max {max(s):.3f}, {len(s)} clicks); playing: "
          f"{r['fps']:.1f} frames/s over {r['frames']} frames, "
          f"{100 * r['one_tick_share']:.0f}% of them one tick on (reached tick {r['last_tick']})",
          flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--play-s", type=float, default=20.0)
    ap.add_argument("--large", type=int, default=1000, help="side of the large lattice (0: skip)")
    ap.add_argument("--out", type=Path, default=Path("docs/img/viz.png"))
    ap.add_argument("--replay", type=Path, default=None, help="also shoot the replay of this run")
    ap.add_argument("--from-run", type=Path, default=None,
                    help="also measure the baseline opened at this run's checkpoint nearest "
                         "--from-day (a grown tumour: more cells, slower steps)")
    ap.add_argument("--from-day", type=float, default=5.0)
    ap.add_argument("--busy", type=int, default=0, metavar="N",
                    help="only measure the baseline, with N busy-loop processes "
                         "competing for the cores (a machine in use)")
    args = ap.parse_args()
    chromium = find_chromium()
    if chromium is None:
        print("needs Chromium: apt-get install chromium", file=sys.stderr)
        return 2
    for ticks, cost in series_update_cost().items():
        print(f"series update after {ticks:>7,} ticks: {cost * 1e3:.2f} ms (median of 50)")
    if args.busy:
        from tme_abm.benchmark.loaded import Competitors

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            with served(None) as url, Competitors(args.busy, max_s=3600):
                report(f"baseline 200 x 200, {args.busy} busy process(es) beside it",
                       measure(url, browser, args.steps, args.play_s, None))
            browser.close()
        return 0
    with sync_playwright() as p, tempfile.TemporaryDirectory() as tmp:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        with served(None) as url:
            report("baseline 200 x 200", measure(url, browser, args.steps, args.play_s,
                                                 args.out))
        print(f"wrote {args.out}")
        if args.from_run is not None:
            extra = ("--from-run", str(args.from_run), "--day", str(args.from_day))
            with served(None, extra_args=extra) as url:
                report(f"baseline from {args.from_run.name} at day {args.from_day:g}",
                       measure(url, browser, args.steps, args.play_s, None))
        if args.large:
            scenario = large_scenario(Path(tmp), args.large)
            with served(str(scenario), timeout_s=300) as url:
                report(f"baseline on {args.large} x {args.large}",
                       measure(url, browser, max(3, args.steps // 3), args.play_s, None))
        if args.replay is not None:
            shot = args.out.with_name("viz_replay.png")
            with served(str(args.replay)) as url:
                page = browser.new_page(viewport={"width": 1600, "height": 1100})
                page.goto(url)
                page.locator(".tme-lattice").wait_for(timeout=120_000)
                page.wait_for_timeout(2000)
                page.screenshot(path=str(shot))
                page.close()
            print(f"wrote {shot}")
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
