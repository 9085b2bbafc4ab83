"""How good the loop's current reward model is on steps nobody labeled: :class:`LoopDiagnostics`."""

from __future__ import annotations

import torch

from prefrl.diagnostics import event_triggered_average, segment_return_correlation, window_correlation

__all__ = ["LoopDiagnostics"]


class LoopDiagnostics:
    """Fresh-segment and per-step correlations of the learned reward (mixed into :class:`prefrl.loop.PreferenceLoop`).

    The host provides ``wait_fit()``, ``recorder``, ``ensemble``, ``config``, ``_gen``, ``_steps_at_fit`` and
    ``_recent_raw()``.
    """

    def fresh_correlation(self) -> dict[str, float]:
        """Learned vs true return correlation on segments recorded since the last fit.

        Those steps were never query candidates, so no labeled segment overlaps
        them. Empty dict if fewer than ``segment_length`` steps are that new.
        """
        self.wait_fit()
        new = self.recorder.total - self._steps_at_fit
        if self._steps_at_fit < 0 or new < self.config.segment_length:
            return {}
        try:
            fresh = self.recorder.sample(self.config.correlation_segments, self.config.segment_length, self._gen,
                                         last=new)
        except ValueError:  # no window of L steps inside one episode among the new steps
            return {}
        return segment_return_correlation(self.ensemble, fresh)

    def step_diagnostics(self, last: int = 2048, span: int = 6) -> dict:
        """What the current model teaches, step by step, on the newest recorded steps.

        Scores the newest ``last`` vector steps of every env with the current
        model and compares with their true rewards: per-step and 5-step
        Pearson correlations, and the event-triggered average of the learned
        reward around steps that scored (see ``event_triggered_average``).
        Steps across episode ends are included (the rewards are per step).

        Returns:
            ``corr/step``, ``corr/5step`` and ``event_profile`` (2 * span + 1 floats, d = -span..span).
        """
        raw, a = self._recent_raw(last)
        learned = torch.from_numpy(raw)
        true = torch.from_numpy(a["true_reward"])
        return {"corr/step": window_correlation(learned, true, 1), "corr/5step": window_correlation(learned, true, 5),
                "event_profile": event_triggered_average(learned, true, span)}
