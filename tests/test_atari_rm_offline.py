"""The offline reward-model tool's pair sampling: both clips of a pair from one policy, ids reported."""

import numpy as np
import torch

from tools.atari_rm_offline import _pairs


def test_pairs_take_both_clips_from_one_policy_and_report_it():
    T, n_envs, L = 300, 3, 5
    rows = np.arange(T, dtype=np.float32)
    obs = np.broadcast_to(rows[:, None, None], (T, n_envs, 1)).copy()  # each step's obs is its row index
    act = np.zeros((T, n_envs), dtype=np.int64)
    rew = np.zeros((T, n_envs), dtype=np.float32)
    done = np.zeros((T, n_envs), dtype=bool)
    pid = np.repeat(np.arange(3), T // 3)  # policies 0, 1, 2 acted 100 steps each
    first, second, which = _pairs(obs, act, rew, done, pid, [0, 2], 31, L, torch.Generator().manual_seed(0))
    assert which.shape == (31,) and torch.bincount(which).tolist() == [11, 10, 10]
    for seg in (first, second):
        src = torch.as_tensor(seg.obs)[..., 0].long()  # [N, L] row indices
        assert torch.equal(torch.as_tensor(pid)[src], which[:, None].expand(-1, L))
