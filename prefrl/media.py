"""What a person sees of a query's side: an animated GIF of a clip, or a text (and the GIF's frames as one
strip, for a player that pauses and steps); kept apart from the queue that stores them."""

from __future__ import annotations

import io
import math

import numpy as np
import torch

__all__ = ["MEDIA_KINDS", "frames_to_gif", "gif_media", "gif_to_strip", "text_media"]

MEDIA_KINDS = ("gif", "text")


def frames_to_gif(frames: np.ndarray | torch.Tensor, fps: float = 15.0) -> bytes:
    """An animated, endlessly looping GIF of a clip.

    Args:
        frames: uint8 [L, H, W, 3] RGB (or [L, H, W] grayscale) frames.
        fps: frames per second when played (GIF delays are whole centiseconds,
            so e.g. 30 fps plays at 1/0.03 s).

    Returns:
        The GIF file's bytes.

    Raises:
        ValueError: frames of another shape or dtype, or fps <= 0.
    """
    from PIL import Image  # Pillow comes with matplotlib, a core dependency

    a = frames.cpu().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    if a.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 RGB, got dtype {a.dtype}; convert with (x * 255).clip(0, 255).astype('uint8')")
    if a.ndim == 3:
        a = np.repeat(a[..., None], 3, axis=-1)
    if a.ndim != 4 or a.shape[-1] != 3 or a.shape[0] < 1:
        raise ValueError(f"frames must be [L >= 1, H, W, 3] (or [L, H, W] grayscale), got {a.shape}")
    if not fps > 0 or math.isinf(fps):
        raise ValueError(f"fps must be a positive number, got {fps}")
    images = [Image.fromarray(f) for f in a]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:],
                   duration=max(20, int(round(1000 / fps))), loop=0, disposal=1, optimize=False)
    return buf.getvalue()


def gif_to_strip(gif: bytes) -> tuple[bytes, int, int]:
    """A GIF's frames side by side in one PNG, for a page that plays, pauses, slows and steps clips in sync.

    Args:
        gif: the bytes of an animated GIF (e.g. from :func:`frames_to_gif`).

    Returns:
        ``(png, n_frames, delay_ms)``: the PNG is ``n_frames`` frames wide, frame t at x = t * width, each
        shown for ``delay_ms`` (a frame the GIF held longer, e.g. repeated frames it merged, is repeated).

    Raises:
        ValueError: the bytes are not a GIF.
    """
    from PIL import Image, ImageSequence, UnidentifiedImageError

    try:
        im = Image.open(io.BytesIO(gif))
    except UnidentifiedImageError as err:
        raise ValueError("not a GIF") from err
    shown = [(f.convert("RGB"), int(f.info.get("duration") or 100)) for f in ImageSequence.Iterator(im)]
    delay = max(20, min(d for _, d in shown))
    # GIF writers merge repeated frames into one longer one: repeat them back, so every frame lasts `delay`
    frames = [f for f, d in shown for _ in range(max(1, round(d / delay)))]
    w, h = frames[0].size
    strip = Image.new("RGB", (w * len(frames), h))
    for t, f in enumerate(frames):
        strip.paste(f, (t * w, 0))
    buf = io.BytesIO()
    strip.save(buf, format="PNG")
    return buf.getvalue(), len(frames), delay


def gif_media(frames: np.ndarray | torch.Tensor, fps: float = 15.0) -> dict:
    """``{"kind": "gif", "data": bytes}`` for one side of a query (see :func:`frames_to_gif`)."""
    return {"kind": "gif", "data": frames_to_gif(frames, fps)}


def text_media(text: str) -> dict:
    """``{"kind": "text", "data": text}`` for one side of a text query (e.g. a completion)."""
    if not isinstance(text, str):
        raise ValueError(f"text media must be a str, got {type(text).__name__}")
    return {"kind": "text", "data": text}


def _check_media(item, where: str) -> tuple[str, bytes]:
    if not isinstance(item, dict) or "kind" not in item or "data" not in item:
        raise ValueError(f"{where} must be a dict {{'kind': 'gif' | 'text', 'data': ...}}, got {item!r:.80}")
    kind, data = item["kind"], item["data"]
    if kind == "gif":
        if not isinstance(data, (bytes, bytearray, memoryview)) or bytes(data[:6]) not in (b"GIF87a", b"GIF89a"):
            raise ValueError(f"{where}: a 'gif' item's data must be GIF bytes (make them with frames_to_gif)")
        return kind, bytes(data)
    if kind == "text":
        if not isinstance(data, str):
            raise ValueError(f"{where}: a 'text' item's data must be a str, got {type(data).__name__}")
        return kind, data.encode("utf-8")
    raise ValueError(f"{where}: media kind must be one of {MEDIA_KINDS}, got {kind!r}")
