"""Facts about the Atari games both Atari backends share: ROM names, score rows, frame size and skip.

Its own module so that ``envs.atari`` and ``envs.atari_native`` both import it and not each other.
"""

from __future__ import annotations

__all__ = ["ATARI_GAMES", "SCORE_MASK_ROWS"]

ATARI_GAMES: tuple[str, ...] = (
    "Pong",
    "Breakout",
    "BeamRider",
    "Enduro",
    "Qbert",
    "Seaquest",
    "SpaceInvaders",
)
"""Supported games (CamelCase names; ``"ALE/<name>-v5"`` ids also accepted)."""

_ROM_NAMES: dict[str, str] = {
    "Pong": "pong",
    "Breakout": "breakout",
    "BeamRider": "beam_rider",
    "Enduro": "enduro",
    "Qbert": "qbert",
    "Seaquest": "seaquest",
    "SpaceInvaders": "space_invaders",
}

SCORE_MASK_ROWS: dict[str, tuple[tuple[int, int], ...]] = {
    # Half-open [start, stop) row ranges of the 84x84 frame, set to 0 when
    # mask_score=True. Measured on real frames (84 rows = 210 screen rows / 2.5):
    # rows whose pixels change with the score in random play, plus inspection.
    "Pong": ((0, 9),),  # both scores; the white top wall starts at row 9-10
    "Breakout": ((0, 6),),  # score, lives, player number; wall starts at 6-7
    "BeamRider": ((0, 16),),  # score, "SECTOR nn", enemies-left counter
    "Enduro": ((64, 77),),  # dashboard: odometer, day, cars left to pass
    "Qbert": ((0, 6),),  # score (lives icons and Q*bert's jumps are below)
    "Seaquest": ((0, 8),),  # score (reserve subs at rows 8-11 stay visible)
    "SpaceInvaders": ((0, 9),),  # both scores; the bonus UFO flies in these rows too
}
"""Per-game score rows (84x84 frame coordinates) blanked by ``mask_score``."""

_FRAME_SIZE = 84
_FRAME_SKIP = 4
