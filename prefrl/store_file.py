"""The store's file on disk: one writing process at a time (an advisory ``flock``), and arrays as compressed blobs.

:mod:`prefrl.store` holds the store itself and re-exports these names.
"""

from __future__ import annotations

import io
import os
import threading
import zlib
from pathlib import Path

import numpy as np
import torch

__all__ = ["StoreInUse", "blob_to_array", "store_in_use"]

_NPY_MAGIC = b"\x93NUMPY"


class StoreInUse(RuntimeError):
    """Another process (a run, ``prefrl label``) has the store's file open for writing."""


_HELD: dict[str, list[int]] = {}  # file -> [fd holding its flock, open stores of this process on it]
_HELD_LOCK = threading.Lock()


def _lock_file(path: Path) -> int | None:
    """An exclusive, non-blocking ``flock`` on ``path`` (created if missing); the fd that holds it.

    Returns None where there is no ``flock`` (Windows). Raises :class:`StoreInUse` when another
    process holds it. The lock is advisory and separate from SQLite's own (POSIX) locks.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return None
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreInUse(f"the preference store {path} is open in another process (a run, `prefrl label`): "
                         "two processes would write one label file. Stop that process first (its labels are kept "
                         "in the file), then start again; nothing was changed") from None
    return fd


def _acquire(path: Path) -> str | None:
    """Takes (or shares, within this process) the file's lock; the key to :func:`_release` it with."""
    key = os.path.realpath(path)
    with _HELD_LOCK:
        if key in _HELD:  # this process has it open already (a notebook reopening an interrupted run's store)
            _HELD[key][1] += 1
            return key
        fd = _lock_file(path)
        if fd is None:
            return None
        _HELD[key] = [fd, 1]
        return key


def _release(key: str) -> None:
    with _HELD_LOCK:
        held = _HELD.get(key)
        if held is None:
            return
        held[1] -= 1
        if held[1] == 0:
            os.close(held[0])  # releases the flock
            del _HELD[key]


def store_in_use(path: str | Path) -> str | None:
    """Why the store at ``path`` cannot be opened now (another process holds it), or None (also when absent)."""
    path = Path(path)
    if not path.is_file() or os.path.realpath(path) in _HELD:  # absent, or held by this very process
        return None
    try:
        fd = _lock_file(path)
    except StoreInUse as err:
        return str(err)
    except OSError:
        return None  # unreadable files get their own error when opened
    if fd is not None:
        os.close(fd)
    return None


def _to_blob(x: torch.Tensor) -> bytes:
    """An array as zlib-compressed ``.npy`` bytes (lossless; Atari frames and padded texts shrink ~10x)."""
    buf = io.BytesIO()
    np.save(buf, x.numpy(), allow_pickle=False)
    return zlib.compress(buf.getvalue(), 3)


def blob_to_array(b: bytes) -> np.ndarray:
    """A stored blob -> its array: zlib-compressed ``.npy`` or, in stores written before 0.1.1, plain ``.npy``.

    Raises:
        ValueError: the bytes are neither (the store is damaged).
    """
    try:
        raw = b if bytes(b[:6]) == _NPY_MAGIC else zlib.decompress(b)
        return np.load(io.BytesIO(raw), allow_pickle=False)
    except (ValueError, OSError, EOFError, zlib.error) as err:
        raise ValueError(f"not a stored array ({err})") from err


def _from_blob(b: bytes) -> torch.Tensor:
    return torch.from_numpy(blob_to_array(b))
