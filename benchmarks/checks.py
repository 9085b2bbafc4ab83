"""Checks every benchmark CLI runs on its flags before any arm starts (one clear line each)."""

from __future__ import annotations

import math
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path

MAX_SEED = 2**31 - 1
"""Largest seed accepted: seeds are derived into numpy/gymnasium/torch seeds, which take 0 .. 2^32 - 1."""

MAX_STEPS = 2**53
"""Largest step budget accepted: the label schedule computes with steps in float64, exact up to 2^53. Below it,
the harness refuses a budget from a time estimate (``steps_time_problem``); no memory grows with steps."""


def seeds_problem(seeds: Sequence[int]) -> str | None:
    """Why a list of seeds is unusable (negative, too large, repeated), or None."""
    bad = [s for s in seeds if not 0 <= s <= MAX_SEED]
    if bad:
        return f"--seeds {bad[0]}: a seed must be in 0..{MAX_SEED}"
    if len(set(seeds)) != len(seeds):
        return f"--seeds {' '.join(map(str, seeds))} repeats a seed; each seed's runs write their own labels file"
    return None


def finite_problem(**values: float) -> str | None:
    """Names the first value that is NaN or infinite (``--lr nan``), or None."""
    for name, v in values.items():
        if not math.isfinite(v):
            return f"--{name.replace('_', '-')} must be a finite number, got {v}"
    return None


def flags_differ(saved: dict, now: dict) -> list[str]:
    """``--flag old -> new`` for every flag whose value differs between a run's saved flags and these."""
    return [f"--{k.replace('_', '-')} {saved.get(k)!r} -> {now.get(k)!r}" for k in sorted(set(saved) | set(now))
            if saved.get(k) != now.get(k)]


def out_problem(out: Path) -> str | None:
    """Creates ``out`` if needed and proves it writable with a probe file; why it cannot be used, or None.

    Runs before any arm, so an unusable ``--out`` (a file, a path under a file,
    a read-only or immutable directory, /proc) fails in a second, not after the
    first arm spent its budget.
    """
    if out.exists() and not out.is_dir():
        return f"--out {out} is a file; give a directory"
    for parent in out.parents:
        if parent.exists() and not parent.is_dir():
            return f"--out {out} is under {parent}, which is a file; give a directory"
    probe = out / f".prefrl-write-test-{os.getpid()}"
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        return f"--out {out} cannot be written ({err.strerror or err}); give a writable directory"
    return None


def remove_empty_stores(out: Path, names: Sequence[str]) -> list[str]:
    """Deletes the label stores among ``names`` in ``out`` that hold no label and no query (left by a run that
    failed early).

    A store with labels, or with queries posted to people (``--labeler web``: a resume serves them again), is
    never touched. Returns the names removed.
    """
    removed = []
    for name in names:
        path = out / name
        if not path.is_file():
            continue
        try:
            db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
            try:
                n = db.execute("SELECT COUNT(*) FROM labels").fetchone()[0]
                if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'queries'").fetchone():
                    n += db.execute("SELECT COUNT(*) FROM queries").fetchone()[0]
            finally:
                db.close()
        except sqlite3.Error:
            continue  # not ours to judge: leave it
        if n == 0:
            path.unlink()
            removed.append(name)
    return removed
