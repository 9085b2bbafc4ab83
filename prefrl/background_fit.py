"""One reward fit at a time in a background thread: :class:`BackgroundFit` (``LoopConfig.overlap_fit``).

:class:`OverlappedFits` is the :class:`prefrl.loop.PreferenceLoop` side of it: start a fit with what it
reads drawn now, wait for it, apply its result.

The thread only computes; the caller's thread starts it with everything the fit reads already drawn,
and applies its result when it joins, so the labels, rewards and fits are those of the serial loop.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

__all__ = ["BackgroundFit", "OverlappedFits"]


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


class OverlappedFits:
    """The loop's background refits (mixed into :class:`prefrl.loop.PreferenceLoop`).

    The host provides ``store``, ``recorder``, ``trainer``, ``config``, ``_np_rng``, ``_background``
    (a :class:`BackgroundFit`), ``_unlabeled()``, ``_score()`` and ``_set_normalisation()``.
    """

    def _start_fit(self, epochs: int, extra: dict[str, float]) -> None:
        """``_fit`` in a background thread (``LoopConfig.overlap_fit``); ``wait_fit`` finishes it.

        What the serial fit reads is taken here, in the calling thread and in
        the serial order: the labels' tensors, the calibration steps (drawn
        from the recorder before the agent records more) and the step count.
        """
        data = self.store.tensors()
        unlabeled = self._unlabeled()
        calib = self.recorder.random_steps(self.config.calibration_samples, self._np_rng)
        self._steps_at_fit = self.recorder.total

        def work() -> dict:
            metrics = self.trainer.fit(data, epochs, self.config.fit_min_steps, unlabeled)
            return {"metrics": metrics, "raw": self._score(*calib)}

        self._fit_extra = extra
        self._background.start(work)

    def wait_fit(self) -> dict[str, float] | None:
        """Finishes a background fit (``LoopConfig.overlap_fit``): waits for it and applies its result.

        Returns:
            That fit's round metrics (as ``update`` returns them serially), or
            None if no fit was running.

        Raises:
            whatever the fit raised.
        """
        out = self._background.join()
        if out is None:
            return None
        self._set_normalisation(out["raw"])
        self.fit_seconds += out["seconds"]
        self.fit_overlap_cpu_seconds += out["cpu"]
        self._fitted = True
        self.labels_arrived = 0
        self.metrics = out["metrics"] | self._fit_extra
        self._fit_unreported = self.metrics
        return self.metrics

    def finished_fit(self) -> dict[str, float] | None:
        """The metrics of a background fit that finished since the last call, once (else None).

        Joins a fit still running. A callback calls it at a rollout end before
        ``update`` (which may start the next one), so every round's metrics
        are reported, one rollout later than a serial fit's.
        """
        self.wait_fit()
        out, self._fit_unreported = self._fit_unreported, None
        return out
