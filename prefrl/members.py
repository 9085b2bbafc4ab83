"""Member architectures for ``ModuleEnsemble`` beyond the default MLP."""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["FrameCNN"]


class FrameCNN(nn.Module):
    """Reward from stacked frames: Christiano et al.'s Atari reward predictor.

    Paper: 4 conv layers of 16 filters (7x7/3, 5x5/2, 3x3/1, 3x3/1), leaky
    ReLU (0.01), batch norm and dropout (0.5) after each conv, a 64-unit FC
    layer, a scalar output. On frames smaller than 76 pixels (e.g. 42x42
    frames pooled by the loop's ``obs_transform``, ~4x cheaper on a CPU) the
    first two convs become 5x5/2 and 3x3/2 so that four conv layers still fit
    (42 -> 19 -> 9 -> 7 -> 5). The action is not used: the paper's Atari
    predictor sees observations only.

    Args:
        frame_shape: (H, W, C) for channel-last uint8 frames (SB3's Atari
            layout) or (C, H, W) with ``channels_last=False``.
        channels_last: whether frames are (H, W, C).
        dropout: dropout probability after each conv layer.
        batchnorm: use batch norm after each conv layer.
        hidden: width of the fully connected layer.
    """

    def __init__(
        self,
        frame_shape: tuple[int, int, int] = (84, 84, 4),
        channels_last: bool = True,
        dropout: float = 0.5,
        batchnorm: bool = True,
        hidden: int = 64,
    ):
        super().__init__()
        self.channels_last = channels_last
        c, h = (frame_shape[2], frame_shape[0]) if channels_last else (frame_shape[0], frame_shape[1])
        specs = [(7, 3), (5, 2), (3, 1), (3, 1)] if h >= 76 else [(5, 2), (3, 2), (3, 1), (3, 1)]
        layers: list[nn.Module] = []
        for k, s in specs:
            layers += [nn.Conv2d(c, 16, k, s)]
            if batchnorm:
                layers += [nn.BatchNorm2d(16)]
            layers += [nn.LeakyReLU(0.01), nn.Dropout(dropout)]
            c = 16
        self.convs = nn.Sequential(*layers)
        with torch.no_grad():
            n_flat = self.convs(self._prepare(torch.zeros(1, *frame_shape))).numel()
        self.head = nn.Sequential(nn.Linear(n_flat, hidden), nn.LeakyReLU(0.01), nn.Linear(hidden, 1))

    def _prepare(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.float() / 255.0
        return x.permute(0, 3, 1, 2) if self.channels_last else x

    def forward(self, obs: torch.Tensor, act: torch.Tensor | None = None) -> torch.Tensor:
        """obs [B, H, W, C] (or [B, C, H, W]) uint8 -> [B] rewards."""
        x = self.convs(self._prepare(obs))
        return self.head(x.flatten(1)).squeeze(-1)
