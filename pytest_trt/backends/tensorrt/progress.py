"""Live progress of engine builds: whole lines, throttled, to whatever sink the shell installs.

Builds report here (``report``); the pytest plugin installs a sink that writes through pytest's terminal
writer with capture suspended (so ``-s`` and captured runs both read cleanly). pytest-xdist workers
install none: they have no terminal of their own, and their lines would interleave with the
controller's; their builds appear in the session summary instead. Scripts may install ``print``.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

THROTTLE_S = 2.0   # at most one phase line per this many seconds (start and finish lines always show)

_sink: Callable[[str], None] | None = None


def install(sink: Callable[[str], None] | None) -> Callable[[str], None] | None:
    """Set where progress lines go (None: nowhere); returns the previous sink."""
    global _sink
    previous, _sink = _sink, sink
    return previous


def report(line: str) -> None:
    if _sink is not None:
        _sink(line)


class BuildProgress:
    """One build's lines: 'building ...', throttled phase lines with elapsed seconds, 'built ... in N s'.

    Thread-safe: TensorRT calls its progress monitor from several internal threads (IProgressMonitor docs).
    """

    def __init__(self, what: str, clock: Callable[[], float] = time.monotonic):
        self.what = what
        self._clock = clock
        self._start = clock()
        self._last = self._start
        self._lock = threading.Lock()

    def _emit(self, text: str) -> None:
        line = f"pytest-trt: {text}"
        with self._lock:
            report(line)

    def started(self) -> None:
        self._emit(f"building {self.what} ...")

    def phase(self, name: str, step: int | None = None, steps: int | None = None) -> None:
        now = self._clock()
        with self._lock:
            if now - self._last < THROTTLE_S:
                return
            self._last = now
        where = f" (step {step}/{steps})" if step is not None and steps else ""
        self._emit(f"building {self.what}: {name}{where}, {now - self._start:.0f} s so far")

    def finished(self, ok: bool = True) -> float:
        seconds = self._clock() - self._start
        self._emit(f"{'built' if ok else 'failed to build'} {self.what} in {seconds:.1f} s")
        return seconds

    def __enter__(self) -> "BuildProgress":
        self.started()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.finished(ok=exc_type is None)
        return False
