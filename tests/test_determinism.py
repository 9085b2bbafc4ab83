"""The same command with the same seed gives identical labels and an identical summary.json (CPU),
whether its runs share the cores as parallel workers (1 torch thread each) or run one after the other."""

import hashlib
import sqlite3

import pytest

from benchmarks import atari, mujoco


def _labels_digest(path) -> str:
    """Hash of every stored label: mu, split and the clips' observations, actions and true rewards."""
    h = hashlib.sha256()
    with sqlite3.connect(path) as db:
        for row in db.execute("SELECT mu, is_val, obs, act, true_reward FROM labels ORDER BY id"):
            for x in row:
                h.update(x if isinstance(x, bytes) else repr(x).encode())
    return h.hexdigest()


def _run(module, argv):
    return module.main(argv)


@pytest.mark.slow
@pytest.mark.parametrize("module, flags", [
    (mujoco, ["--env", "Reacher-v5", "--steps", "2048", "--labels", "24", "--n-envs", "2"]),
    (atari, ["--game", "Breakout", "--steps", "1024", "--labels", "8", "--n-envs", "4"]),
])
def test_same_seed_same_labels_and_summary(tmp_path, module, flags):
    outs = []
    for workers in ("1", "2"):
        out = tmp_path / f"workers{workers}"
        _run(module, ["--synthetic-oracle", *flags, "--seeds", "1", "--workers", workers, "--eval-episodes", "2",
                      "--out", str(out)])
        outs.append(out)
    a, b = outs
    assert _labels_digest(a / "labels-seed1.sqlite") == _labels_digest(b / "labels-seed1.sqlite")
    assert (a / "summary.json").read_bytes() == (b / "summary.json").read_bytes()
