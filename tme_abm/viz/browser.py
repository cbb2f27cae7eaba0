"""Serving the page and driving it in a headless browser (for tests and tools).

Uses Debian's Chromium (``/usr/bin/chromium``) through Playwright, so
``playwright install`` (which downloads a browser, impossible offline) is never
needed; the flags turn off background networking, component updates and sync,
so Chromium makes no network requests of its own and works on an offline node.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


def find_chromium() -> str | None:
    """Path of the system Chromium, or None."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served(scenario: str | None = None, timeout_s: float = 120.0,
           max_models: int | None = None, log: Path | None = None,
           extra_args: tuple[str, ...] = ()) -> Iterator[str]:
    """Run ``tme-abm viz`` on a free loopback port; yield its URL; stop it after.

    Parameters
    ----------
    scenario
        Scenario file or shipped name to serve (None: the baseline).
    timeout_s
        How long the server may take to listen.
    max_models
        ``--max-models`` (None: the server's default).
    log
        File that receives the server's output (None: a temporary file,
        deleted after).  A file, not a pipe: a pipe nobody reads while the
        page runs would fill up and stall the server.
    extra_args
        More arguments of ``tme-abm viz`` (``--from-run RUN``).

    Raises
    ------
    RuntimeError
        If the server exits or does not listen within ``timeout_s``.
    """
    port = free_port()
    cmd = [sys.executable, "-m", "tme_abm", "viz", "--port", str(port)]
    if scenario:
        cmd.insert(4, scenario)
    if max_models is not None:
        cmd += ["--max-models", str(max_models)]
    cmd += list(extra_args)
    with tempfile.TemporaryDirectory() as tmp:
        log_path = Path(log) if log is not None else Path(tmp) / "server.log"
        with open(log_path, "w", encoding="utf-8") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.time() + timeout_s
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"tme-abm viz exited with {proc.returncode}:\n"
                                       f"{log_path.read_text(encoding='utf-8')}")
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", port)) == 0:
                        break
                if time.time() > deadline:
                    raise RuntimeError(f"tme-abm viz did not listen within {timeout_s:g} s")
                time.sleep(0.3)
            # "localhost", not 127.0.0.1: Solara sets its session cookie for localhost
            # without warning (samesite=none needs https or localhost)
            yield f"http://localhost:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def lattice_pixels(page) -> bytes:
    """The lattice panel as rendered (a screenshot of its view: only the
    pixels tell whether the picture changed)."""
    view = page.locator(".tme-view").first
    view.wait_for(timeout=60_000)
    return view.screenshot()


def wait_for_new_picture(page, old: bytes, timeout_s: float = 60.0, poll_ms: int = 100) -> bytes:
    """Wait until the lattice picture differs from ``old``; return it."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            pixels = lattice_pixels(page)
        except Exception:  # the image is being replaced
            pixels = b""
        if pixels and pixels != old:
            return pixels
        page.wait_for_timeout(poll_ms)
    raise AssertionError("the lattice picture did not change")
