"""prefrl.media: the clips a labeler sees, as looping GIFs and as strips of frames."""

import io

import numpy as np
import pytest

from prefrl.media import frames_to_gif, gif_media, gif_to_strip


def test_a_gif_becomes_a_strip_with_every_frame_shown_for_one_delay():
    frames = np.zeros((6, 4, 5, 3), np.uint8)
    for t, v in enumerate([10, 10, 10, 80, 150, 220]):  # the first three equal: the GIF writer merges them
        frames[t] = v
    png, n, delay = gif_to_strip(frames_to_gif(frames, fps=10))
    from PIL import Image

    strip = np.asarray(Image.open(io.BytesIO(png)))
    assert (n, delay) == (6, 100) and strip.shape == (4, 5 * 6, 3)
    assert [int(strip[0, 5 * t, 0]) for t in range(6)] == [10, 10, 10, 80, 150, 220]
    with pytest.raises(ValueError, match="not a GIF"):
        gif_to_strip(b"not a gif")


def test_frames_to_gif_loops_every_frame():
    from PIL import Image

    frames = np.zeros((6, 8, 10, 3), np.uint8)
    frames[np.arange(6), :, :, 0] = np.arange(6)[:, None, None] * 40
    gif = frames_to_gif(frames, fps=10)
    img = Image.open(io.BytesIO(gif))
    assert gif[:6] == b"GIF89a" and img.size == (10, 8) and img.n_frames == 6
    assert img.info.get("loop") == 0 and img.info.get("duration") == 100
    assert gif_media(frames[..., 0])["kind"] == "gif"  # grayscale is accepted
    with pytest.raises(ValueError, match="uint8"):
        frames_to_gif(frames.astype(np.float32))
    with pytest.raises(ValueError, match=r"\[L >= 1, H, W, 3\]"):
        frames_to_gif(frames[..., :2])
