"""Tell the user when numba compiles kernels, instead of a silent minute.

The first run after an install (or after the kernel cache was cleared)
compiles every kernel it uses: about a minute during which nothing else
happens.  :class:`CompileNotice` listens to numba's ``numba:compile`` events,
which numba sends only when a kernel is compiled (not when it is loaded from
the cache), and while one is under way shows on stderr

* on a terminal, a spinner line with the kernels compiled so far and the time,
  replaced by one summary line when compilation stops;
* elsewhere (a log file, a pipe), one line, once per process.

It shows nothing when the kernels are already cached.
"""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType
from typing import Any, TextIO

from tme_abm import _runtime

#: What the notice says (the first words of every form of it).
MESSAGE = "compiling kernels, first use only"
_SPIN = "|/-\\"
_LINE_SHOWN = False  # the one line for non-terminals was printed in this process


class CompileNotice:
    """Context manager that reports numba compilations while it is active.

    Parameters
    ----------
    stream
        Where the notice goes (default ``sys.stderr`` at entry).
    enabled
        False shows nothing (``--quiet``).
    interactive
        Spinner (True) or a single line (False); default: whether ``stream``
        is a terminal.
    interval
        Seconds between spinner frames.
    settle
        Seconds without a compilation after which a burst of compilations
        counts as finished (its summary line is printed).

    Attributes
    ----------
    kernels
        Kernels compiled while active (outermost compilations only: a kernel
        that compiles the functions it calls counts once).
    seconds
        Wall time spent compiling them.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        enabled: bool = True,
        interactive: bool | None = None,
        interval: float = 0.15,
        settle: float = 0.5,
    ) -> None:
        self.stream = stream
        self.enabled = enabled
        self.interactive = interactive
        self.interval = interval
        self.settle = settle
        self.kernels = 0
        self.seconds = 0.0
        self._depth = 0
        self._burst_start: float | None = None
        self._burst_kernels = 0
        self._last_end = 0.0
        self._started = 0.0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._width = 0
        self._listener: Any = None

    # ------------------------------------------------------------ numba side
    def _on_start(self) -> None:
        with self._lock:
            self._depth += 1
            if self._depth > 1:
                return
            self._started = time.perf_counter()
            self.kernels += 1
            new_burst = self._burst_start is None
            if new_burst:
                self._burst_start = self._started
                self._burst_kernels = 0
            self._burst_kernels += 1
        if new_burst:
            self._begin_burst()

    def _on_end(self) -> None:
        with self._lock:
            self._depth = max(0, self._depth - 1)
            if self._depth == 0:
                self._last_end = time.perf_counter()
                self.seconds += self._last_end - self._started

    def _begin_burst(self) -> None:
        global _LINE_SHOWN
        if not self.enabled:
            return
        if not self._interactive():
            if not _LINE_SHOWN:
                _LINE_SHOWN = True
                self._write(f"tme-abm: {MESSAGE} (one-off, a minute or more); cached in "
                            f"{_runtime.cache_location()} for later runs\n")
            return
        if self._thread is None or not self._thread.is_alive():
            self._wake.clear()
            self._thread = threading.Thread(target=self._spin, name="tme_abm-jit-notice",
                                            daemon=True)
            self._thread.start()

    # ------------------------------------------------------------ output side
    def _out(self) -> TextIO:
        return self.stream if self.stream is not None else sys.stderr

    def _interactive(self) -> bool:
        if self.interactive is not None:
            return self.interactive
        isatty = getattr(self._out(), "isatty", None)
        try:
            return bool(isatty and isatty())
        except (OSError, ValueError):
            return False

    def _write(self, text: str) -> None:
        out = self._out()
        try:
            out.write(text)
            out.flush()
        except (OSError, ValueError):  # closed or broken stream: stay silent
            pass

    def _line(self, text: str) -> None:
        """Replace the current terminal line with ``text``."""
        pad = max(0, self._width - len(text))
        self._width = len(text)
        self._write("\r" + text + " " * pad)

    def _burst_over(self, now: float) -> bool:
        return self._depth == 0 and now - self._last_end >= self.settle

    def _spin(self) -> None:
        frame = 0
        while True:
            now = time.perf_counter()
            with self._lock:
                start = self._burst_start
                n = self._burst_kernels
                over = start is None or self._burst_over(now)
                if over:
                    self._burst_start = None
            if over:
                self._finish(start, n)
                return
            elapsed = now - start
            self._line(f"{_SPIN[frame % len(_SPIN)]} {MESSAGE} (one-off, a minute or more): "
                       f"{n} compiled, {elapsed:.0f} s")
            frame += 1
            if self._wake.wait(self.interval):
                with self._lock:
                    start, n = self._burst_start, self._burst_kernels
                    self._burst_start = None
                self._finish(start, n)
                return

    def _finish(self, start: float | None, n: int) -> None:
        if start is None:
            self._line("")
            self._write("\r")
            return
        took = max(self._last_end, start) - start
        self._line(f"compiled {n} kernel{'s' if n != 1 else ''} in {took:.0f} s "
                   f"(cached in {_runtime.cache_location()}; later runs skip this)")
        self._write("\n")
        self._width = 0

    # ------------------------------------------------------------ context
    def __enter__(self) -> CompileNotice:
        from numba.core import event

        notice = self

        class _Listener(event.Listener):
            def on_start(self, ev: Any) -> None:
                notice._on_start()

            def on_end(self, ev: Any) -> None:
                notice._on_end()

        self._listener = _Listener()
        event.register("numba:compile", self._listener)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        from numba.core import event

        if self._listener is not None:
            event.unregister("numba:compile", self._listener)
            self._listener = None
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._wake.set()
            thread.join(timeout=2.0)
