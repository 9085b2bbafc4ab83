"""One reward fit at a time in a background thread: :class:`BackgroundFit` (``LoopConfig.overlap_fit``).

The thread only computes; the caller's thread starts it with everything the fit reads already drawn,
and applies its result when it joins, so the labels, rewards and fits are those of the serial loop.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

__all__ = ["BackgroundFit"]


class BackgroundFit:
    """Runs ``work()`` in a daemon thread; :meth:`join` waits for it and hands back its result."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._out: dict = {}

    @property
    def running(self) -> bool:
        """A fit was started and not joined yet."""
        return self._thread is not None

    def start(self, work: Callable[[], dict]) -> None:
        """Starts ``work`` (returning a dict) in a thread; its wall and thread CPU seconds are added to the dict."""
        if self._thread is not None:
            raise RuntimeError("a background fit is still running: join it first")
        self._out = {}

        def run() -> None:
            t, c = time.perf_counter(), time.thread_time()
            try:
                out = work()
                self._out = out | {"seconds": time.perf_counter() - t, "cpu": time.thread_time() - c}
            except BaseException as err:  # re-raised by join in the caller's thread
                self._out = {"error": err}

        self._thread = threading.Thread(target=run, name="prefrl-fit", daemon=True)
        self._thread.start()

    def join(self) -> dict | None:
        """Waits for the fit; returns its dict (with ``seconds`` and ``cpu``), or None if none was running.

        Raises:
            whatever ``work`` raised.
        """
        if self._thread is None:
            return None
        self._thread.join()
        self._thread, out = None, self._out
        if "error" in out:
            raise out["error"]
        return out
