"""Waiting for people's answers before the agent goes on (``min_answered_share``), for both loops.

:class:`LabelWaiting` is shared by :class:`prefrl.loop.PreferenceLoop` (counted in env steps) and
:class:`prefrl.text_loop.TextPreferenceLoop` (counted in completions). The host provides ``is_async``,
``config.min_answered_share``, ``schedule.due(seen)``, ``labels_used``, ``queries.outstanding()`` and
``_collect()``.
"""

from __future__ import annotations

import math
import time
from typing import Callable

__all__ = ["LabelWaiting"]


class LabelWaiting:
    """``labels_short`` and the polling behind each loop's ``wait_for_labels``."""

    def labels_short(self, seen: int) -> int:
        """Answers still missing before the agent may go on at ``seen`` (env steps or completions).

        ``ceil(min_answered_share * due) - labels_used``, where ``due`` is the schedule's count at
        ``seen``, capped by the queries posted and not answered yet (a round never waits for queries it
        has not asked). 0 for a synchronous labeler, which answers every round at once.
        """
        if not self.is_async or self.config.min_answered_share <= 0:
            return 0
        self._collect()  # answers given since the last look count (outstanding() no longer lists them)
        want = math.ceil(self.config.min_answered_share * self.schedule.due(seen) - 1e-9)
        return max(0, min(want - self.labels_used, self.queries.outstanding()))

    def _wait_until_answered(self, seen: int, poll_seconds: float, report_seconds: float,
                             on_wait: Callable[[dict], None] | None, status: Callable[[], dict]) -> bool:
        """Blocks until :meth:`labels_short` is 0, collecting answers every ``poll_seconds``.

        Every ``report_seconds`` (and once at the start) calls ``on_wait(status() | {"short", "waited_seconds"})``.

        Returns:
            whether it had to wait (something was missing).
        """
        t0, last_report = time.monotonic(), -math.inf
        short = self.labels_short(seen)
        if short == 0:
            return False
        while short > 0:
            now = time.monotonic()
            if on_wait is not None and now - last_report >= report_seconds:
                on_wait(status() | {"short": short, "waited_seconds": now - t0})
                last_report = now
            time.sleep(poll_seconds)
            short = self.labels_short(seen)
        return True
