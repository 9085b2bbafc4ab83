"""What the Atari reward model sees, and the predictors that read it.

:func:`reward_model_view` turns the agent's observation (uint8
``[n, 84, 84, 4]`` frame stacks) into the reward model's input: optionally
average-pooled to 42x42, with the score area blacked out (Christiano et al.'s
protocol: the predictor sees pixels, never the score). :data:`RM_VARIANTS`
names the predictors the Atari benchmark can use; each is a 3-member
:class:`prefrl.ModuleEnsemble` of :class:`prefrl.members.FrameCNN` built by
:func:`make_frame_ensemble`. The measured effect of each variant is in the
README ("Atari: levers").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

__all__ = ["RewardModelSpec", "RM_VARIANTS", "RewardViewConfig", "reward_model_view", "make_frame_ensemble"]


@dataclass(frozen=True)
class RewardModelSpec:
    """One reward-predictor variant for Atari frames.

    Attributes:
        size: side of the frames it sees (84 = as the agent sees them, 42 = pooled 2x2).
        batchnorm: batch norm after each conv (the paper's predictor).
        dropout: dropout after each conv (paper: 0.5).
        shift: random-shift augmentation in pixels during fits (0 = none).
        frame_diff: newest frame + consecutive-frame differences as channels.
        about: one line for ``--help``.
        head: "fc" (the paper's) or "sum" (a sum of local rewards; see FrameCNN).
    """

    size: int
    batchnorm: bool
    dropout: float
    shift: int
    frame_diff: bool
    about: str
    head: str = "fc"

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of what the predictor reads."""
        return (self.size, self.size, 4)


RM_VARIANTS: dict[str, RewardModelSpec] = {
    "cnn42": RewardModelSpec(42, False, 0.0, 0, False, "42x42 pooled frames, 4 convs, no batch norm/dropout"),
    "paper84": RewardModelSpec(84, True, 0.5, 0, False, "the paper's predictor: 84x84, batch norm, dropout 0.5"),
    "cnn84": RewardModelSpec(84, False, 0.0, 0, False, "84x84 frames, 4 convs, no batch norm/dropout"),
    "cnn42-shift": RewardModelSpec(42, False, 0.0, 2, False, "cnn42 + random shifts of up to 2 pixels"),
    "cnn42-diff": RewardModelSpec(42, False, 0.0, 0, True, "cnn42 on newest frame + frame differences"),
    "cnn84-diff": RewardModelSpec(84, False, 0.0, 0, True, "cnn84 on newest frame + frame differences"),
    "cnn42-sum": RewardModelSpec(42, False, 0.0, 0, False, "cnn42 with a sum of local rewards as its head", "sum"),
    "cnn42-sum-shift": RewardModelSpec(42, False, 0.0, 2, False, "cnn42-sum + random shifts of up to 2 pixels",
                                       "sum"),
}
"""Predictor variants by name (``--rm`` of ``benchmarks.atari``)."""


@dataclass(frozen=True)
class RewardViewConfig:
    """Which predictor learns the reward of an Atari run, and what it sees of the frames.

    The benchmark's ``--rm`` and ``--show-score`` flags are generated from these fields.
    """

    rm: str = field(default="cnn42", metadata={"choices": {k: v.about for k, v in RM_VARIANTS.items()}})
    """reward predictor"""
    show_score: bool = False
    """let the reward model see the score area (the paper blacked it out)"""

    def obs_transform(self, game: str) -> Callable[[np.ndarray], np.ndarray]:
        """The loop's obs_transform for ``game``: frames at the predictor's size, score masked unless shown."""
        return reward_model_view(game, mask_score=not self.show_score, size=RM_VARIANTS[self.rm].size)

    def ensemble(self, n_members: int = 3):
        """The predictor: a ``ModuleEnsemble`` of ``n_members`` FrameCNNs (:func:`make_frame_ensemble`)."""
        return make_frame_ensemble(self.rm, n_members)


def reward_model_view(game: str, mask_score: bool, size: int) -> Callable[[np.ndarray], np.ndarray]:
    """The loop's obs_transform: [n, 84, 84, 4] uint8 -> [n, size, size, 4] uint8, score area blacked out.

    Pooling (size 42) is cv2's area resize (the 2x2 mean, rounded: 0.2 ms per
    8 frames, ~14x faster than numpy); the score rows are blacked out after
    pooling, every pooled row that touches a score row included.

    Args:
        game: any spelling :func:`envs.atari.atari_game_name` accepts.
        mask_score: black out :data:`envs.atari.SCORE_MASK_ROWS` (the paper's protocol).
        size: 84 (as is) or 42 (2x2 average pooled).

    The returned function carries a ``build_spec`` (this call's name and
    arguments), so that :func:`prefrl.save_reward` can store it and
    :func:`prefrl.load_reward` rebuild it.
    """
    import cv2

    from envs.atari import score_mask

    if size not in (42, 84):
        raise ValueError(f"reward-model frames are 84 (as is) or 42 (pooled) pixels, got {size}")
    rows = score_mask(game).any(axis=1) if mask_score else np.zeros(84, bool)  # [84] True on score rows
    if size == 42:
        rows = rows.reshape(42, 2).any(axis=1)

    def view(obs: np.ndarray) -> np.ndarray:
        if size == 84:
            out = np.array(obs, dtype=np.uint8, copy=True)
        else:
            n, h, w, c = obs.shape
            out = np.stack([cv2.resize(f, (w // 2, h // 2), interpolation=cv2.INTER_AREA) for f in obs])
            out = out.reshape(n, h // 2, w // 2, c)
        out[:, rows] = 0
        return out

    view.build_spec = {"factory": "envs.atari_reward:reward_model_view",  # how prefrl.save_reward rebuilds it
                       "kwargs": {"game": game, "mask_score": bool(mask_score), "size": int(size)}}
    return view


def make_frame_ensemble(variant: str, n_members: int = 3):
    """A ``ModuleEnsemble`` of ``n_members`` FrameCNNs of the named variant (see :data:`RM_VARIANTS`).

    The ensemble carries a ``build_spec`` (this call's name and arguments) for
    :func:`prefrl.save_reward` / :func:`prefrl.load_reward`.
    """
    from prefrl import ModuleEnsemble
    from prefrl.members import FrameCNN

    if variant not in RM_VARIANTS:
        raise ValueError(f"unknown reward-model variant {variant!r}; choose one of {', '.join(RM_VARIANTS)}")
    s = RM_VARIANTS[variant]
    ensemble = ModuleEnsemble(
        lambda: FrameCNN(s.frame_shape, batchnorm=s.batchnorm, dropout=s.dropout, shift=s.shift,
                         frame_diff=s.frame_diff, head=s.head),
        s.frame_shape, (), n_members=n_members)
    ensemble.build_spec = {"factory": "envs.atari_reward:make_frame_ensemble",  # how prefrl.save_reward rebuilds it
                           "kwargs": {"variant": variant, "n_members": int(n_members)}}
    return ensemble


def frames_renderer(scale: int | None = None, fps: float = 15.0):
    """What a person sees of Atari segments: a function ``segments -> list of gif_media``.

    A person sees what the reward model sees (as in the paper's protocol): the
    newest frame of each step's stack in the loop's view (42x42 or 84x84
    grayscale, the score area blacked out unless the run shows it), scaled up
    with nearest-neighbour pixels. One agent step is 4 emulator frames, so 15
    steps per second is real time.

    Args:
        scale: the upscaling factor (default: to ~168 pixels: 4 for 42x42, 2 for 84x84).
        fps: frames per second of the GIF.

    Returns:
        ``render(segments) -> [{"kind": "gif", "data": bytes}] * N``, from ``segments.obs``
        uint8 [N, L, H, W, C].
    """
    from prefrl.media import gif_media

    def render(segments) -> list[dict]:
        obs = segments.obs.cpu().numpy() if hasattr(segments.obs, "cpu") else np.asarray(segments.obs)
        if obs.ndim != 5:
            raise ValueError(f"Atari segments must hold frame stacks [N, L, H, W, C], got {obs.shape}")
        frames = obs[..., -1].astype(np.uint8)  # [N, L, H, W], the newest frame of each stack
        k = scale or max(1, 168 // frames.shape[-1])
        frames = frames.repeat(k, axis=2).repeat(k, axis=3)
        return [gif_media(f, fps=fps) for f in frames]

    return render

