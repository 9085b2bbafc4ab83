"""Member architectures for ``ModuleEnsemble`` beyond the default MLP."""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["FrameCNN", "conv_specs", "random_shift"]


def conv_specs(height: int) -> list[tuple[int, int]]:
    """(kernel, stride) of the 4 convs: the paper's for 84x84 frames, a smaller stem below 76 pixels."""
    return [(7, 3), (5, 2), (3, 1), (3, 1)] if height >= 76 else [(5, 2), (3, 2), (3, 1), (3, 1)]


def random_shift(x: torch.Tensor, shift: int) -> torch.Tensor:
    """Shifts each sample by up to ``shift`` pixels (RAD): [B, C, H, W] -> same shape.

    The batch is padded by ``shift`` pixels (edges replicated) and every
    sample cropped back at its own random offset (one offset for all its
    channels).
    """
    B, C, H, W = x.shape
    padded = torch.nn.functional.pad(x, (shift, shift, shift, shift), mode="replicate")
    dy = torch.randint(0, 2 * shift + 1, (B,), device=x.device)
    dx = torch.randint(0, 2 * shift + 1, (B,), device=x.device)
    rows = (dy[:, None] + torch.arange(H, device=x.device)[None, :])[:, None, :, None]  # [B, 1, H, 1]
    cols = (dx[:, None] + torch.arange(W, device=x.device)[None, :])[:, None, None, :]  # [B, 1, 1, W]
    b = torch.arange(B, device=x.device)[:, None, None, None]
    c = torch.arange(C, device=x.device)[None, :, None, None]
    return padded[b, c, rows, cols]


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
        shift: random-shift augmentation (RAD, Laskin et al. 2020): in training
            mode each frame stack is padded by ``shift`` pixels (edge
            replicated) and cropped back at a random offset; 0 = off. Inference
            is never augmented.
        head: ``"fc"`` (the paper: a fully connected layer over the whole
            feature map) or ``"sum"``: the same two layers applied at every
            position of the map (1x1 convs) and summed, i.e. the reward is a
            sum of local contributions, the same detector everywhere on the
            screen (an enemy explodes anywhere).
        frame_diff: feed the newest frame and the K-1 differences of
            consecutive frames instead of the K frames (reward events in Atari
            are changes: an enemy explodes, a brick vanishes).
    """

    def __init__(
        self,
        frame_shape: tuple[int, int, int] = (84, 84, 4),
        channels_last: bool = True,
        dropout: float = 0.5,
        batchnorm: bool = True,
        hidden: int = 64,
        shift: int = 0,
        head: str = "fc",
        frame_diff: bool = False,
    ):
        super().__init__()
        if shift < 0:
            raise ValueError(f"shift must be >= 0 pixels, got {shift}")
        self.channels_last = channels_last
        self.shift = shift
        self.frame_diff = frame_diff
        c, h = (frame_shape[2], frame_shape[0]) if channels_last else (frame_shape[0], frame_shape[1])
        specs = conv_specs(h)
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
        if head == "fc":
            self.head = nn.Sequential(nn.Flatten(1), nn.Linear(n_flat, hidden), nn.LeakyReLU(0.01), nn.Linear(hidden, 1))
        elif head == "sum":
            self.head = nn.Sequential(nn.Conv2d(c, hidden, 1), nn.LeakyReLU(0.01), nn.Conv2d(hidden, 1, 1),
                                      nn.Flatten(1), _SumLastDim())
        else:
            raise ValueError(f"head must be 'fc' or 'sum', got {head!r}")

    def _prepare(self, obs: torch.Tensor) -> torch.Tensor:
        """uint8 frames -> float [B, C, H, W] in [0, 1] (differences in [-1, 1])."""
        x = obs.float() / 255.0
        x = x.permute(0, 3, 1, 2) if self.channels_last else x
        if self.frame_diff:
            x = torch.cat([x[:, -1:], x[:, 1:] - x[:, :-1]], dim=1)
        return x

    @property
    def latent_dim(self) -> int:
        """D of :meth:`embed`: the hidden width of the head."""
        return self.head[1].out_features if isinstance(self.head[1], nn.Linear) else self.head[0].out_channels

    def embed(self, obs: torch.Tensor, act: torch.Tensor | None = None) -> torch.Tensor:
        """obs [B, H, W, C] (or [B, C, H, W]) uint8 -> [B, D]: what the reward's last layer reads.

        ``"fc"`` head: the hidden layer after its leaky ReLU; ``"sum"`` head: the per-position hidden
        layer, averaged over positions.
        """
        x = self._prepare(obs)
        if self.training and self.shift:
            x = random_shift(x, self.shift)
        x = self.convs(x)
        if isinstance(self.head[1], nn.Linear):  # fc: Flatten, Linear, LeakyReLU, Linear
            return self.head[:3](x)
        return self.head[:2](x).mean(dim=(2, 3))  # sum: Conv1x1, LeakyReLU, ... -> [B, D]

    def forward(self, obs: torch.Tensor, act: torch.Tensor | None = None) -> torch.Tensor:
        """obs [B, H, W, C] (or [B, C, H, W]) uint8 -> [B] rewards."""
        x = self._prepare(obs)
        if self.training and self.shift:
            x = random_shift(x, self.shift)
        x = self.convs(x)
        return self.head(x).squeeze(-1)


class _SumLastDim(nn.Module):
    """[B, N] -> [B, 1]: sums the per-position rewards."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(dim=-1, keepdim=True)
