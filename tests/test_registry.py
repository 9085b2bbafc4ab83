"""The gymnasium ids registered by ``import envs`` (real MuJoCo and ALE, no mocks).

``prefrl/<Task>Paper-v5``: the MuJoCo paper variant; ``prefrl/<Game>DQN-v5``: one
preprocessed Atari game, the single-env twin of the benchmark's vector env.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import envs

pytest.importorskip("mujoco")
pytest.importorskip("ale_py")

from envs.atari import ATARI_GAMES, SCORE_MASK_ROWS, make_atari_vec_env  # noqa: E402
from envs.mujoco import MUJOCO_TASKS  # noqa: E402

MUJOCO_IDS = tuple(envs.MUJOCO_PAPER_IDS)
ATARI_IDS = tuple(envs.ATARI_DQN_IDS)

# Warnings that check_env gives on these envs for known, accepted reasons.
_EXPECTED_WARNINGS = (
    # We check the full stack that gym.make returns, on purpose: the paper
    # variant and the Atari preprocessing are wrappers, env.unwrapped is the
    # plain gymnasium/ALE env.
    "is different from the unwrapped version",
    # gymnasium's own MuJoCo v5 spaces: unbounded observations, and
    # InvertedPendulum-v5's action space [-3, 3].
    "minimum value is -infinity",
    "maximum value is infinity",
    "symmetric and normalized space",
)


def _rollout(env: gym.Env, seed: int, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded reset and ``n_steps`` seeded random actions; returns obs and rewards."""
    obs = [env.reset(seed=seed)[0]]
    rewards = []
    env.action_space.seed(seed)
    for _ in range(n_steps):
        o, r, terminated, truncated, _ = env.step(env.action_space.sample())
        assert env.observation_space.contains(o)
        assert np.isfinite(r)
        obs.append(o)
        rewards.append(r)
        if terminated or truncated:
            break
    return np.stack(obs), np.asarray(rewards)


def test_import_registers_ids_cheaply() -> None:
    code = (
        "import sys, gymnasium, envs; "
        "heavy = [m for m in ('mujoco', 'ale_py', 'cv2', 'stable_baselines3', 'torch', "
        "'transformers') if m in sys.modules]; "
        "assert not heavy, heavy; "
        "ids = [i for i in gymnasium.registry if i.startswith('prefrl/')]; "
        "print(len(ids)); assert len(ids) == 15, ids"
    )
    subprocess.run(
        [sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1]
    )


def test_ids_cover_all_tasks_and_games() -> None:
    assert tuple(envs.MUJOCO_PAPER_IDS.values()) == MUJOCO_TASKS
    assert tuple(envs.ATARI_DQN_IDS.values()) == ATARI_GAMES
    assert "prefrl/HalfCheetahPaper-v5" in MUJOCO_IDS
    assert "prefrl/SeaquestDQN-v5" in ATARI_IDS
    for env_id, task in envs.MUJOCO_PAPER_IDS.items():
        spec = gym.spec(env_id)
        assert spec.namespace == "prefrl" and spec.version == 5
        assert spec.max_episode_steps == gym.spec(task).max_episode_steps
    assert gym.spec("prefrl/ReacherPaper-v5").max_episode_steps == 50
    # The literal __all__ lists exactly what the package provides.
    assert set(envs.__all__) == set(envs._LAZY) | {
        "ATARI_DQN_IDS",
        "MUJOCO_PAPER_IDS",
        "TEXTGEN_ID",
    }


@pytest.mark.parametrize("env_id", MUJOCO_IDS + ATARI_IDS)
def test_make_check_env_and_determinism(env_id: str) -> None:
    from gymnasium.utils.env_checker import check_env

    env = gym.make(env_id)
    assert env.spec is not None and env.spec.id == env_id
    gc.collect()  # an earlier test's unclosed file warns when collected: let that happen before the capture
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # The render check is done in test_render_modes: check_env would also
        # open a "human" window, which needs a display.
        check_env(env, skip_render_check=True)
    unexpected = [
        str(w.message)
        for w in caught
        if not any(expected in str(w.message) for expected in _EXPECTED_WARNINGS)
    ]
    assert not unexpected, unexpected

    # Reset with the same seed twice, then the same seeded actions: identical
    # observations and rewards (the second run also replays the first reset).
    n_steps = 10 if env_id in ATARI_IDS else 30
    obs_a, rew_a = _rollout(env, 7, n_steps)
    obs_b, rew_b = _rollout(env, 7, n_steps)
    env.close()
    assert len(rew_a) == n_steps
    np.testing.assert_array_equal(obs_a, obs_b)
    np.testing.assert_array_equal(rew_a, rew_b)
    if env_id in MUJOCO_IDS:
        assert obs_a.dtype == np.float64
    else:
        assert obs_a.shape[1:] == (84, 84, 4) and obs_a.dtype == np.uint8


def test_hopper_paper_id_differs_from_gymnasium() -> None:
    """No termination when Hopper falls, truncation at 1000, no control cost."""
    std = gym.make("Hopper-v5")
    paper = gym.make("prefrl/HopperPaper-v5")
    std.reset(seed=0)
    paper.reset(seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, size=(1000, 3))
    std_done = False
    fallen_steps = 0
    for t, action in enumerate(actions):
        _, r_pap, terminated, truncated, info = paper.step(action)
        assert not terminated
        assert truncated == (t == 999)
        assert info["reward_ctrl"] == 0.0
        assert r_pap == pytest.approx(info["reward_forward"] + info["reward_survive"])
        fallen_steps += info["reward_survive"] == 0.0
        if not std_done:
            _, r_std, term_std, _, i_std = std.step(action)
            if not term_std:  # same dynamics: the rewards differ by the control cost
                assert i_std["reward_ctrl"] < 0
                assert r_pap == pytest.approx(r_std - i_std["reward_ctrl"], abs=1e-12)
            std_done = term_std
    assert std_done, "sanity: random Hopper falls, and gymnasium's Hopper-v5 terminates"
    assert fallen_steps > 0, "after the fall the paper variant pays no healthy bonus"
    assert "sim_state" in info
    std.close()
    paper.close()


@pytest.mark.parametrize("game", ATARI_GAMES)
def test_atari_spaces_and_first_frames_match_vector_env(game: str) -> None:
    env = gym.make(f"prefrl/{game}DQN-v5", noop_max=0)
    venv = make_atari_vec_env(game, 1, 0, noop_max=0)
    assert env.observation_space == venv.observation_space
    assert env.observation_space.shape == (84, 84, 4)
    assert env.observation_space.dtype == np.uint8
    assert env.action_space == venv.action_space
    assert env.unwrapped.get_action_meanings() == venv.get_action_meanings()
    # Without random no-ops both start from the same frame (stack zero-padded).
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs, venv.reset()[0])
    assert not obs[..., :3].any()  # zero padding; Q*bert's first frame is black too
    for action in (0, 1, venv.action_space.n - 1):
        obs, reward, *_ = env.step(action)
        vobs, vreward, _, _ = venv.step(np.array([action]))
        np.testing.assert_array_equal(obs, vobs[0])
        assert reward == vreward[0]
    env.close()
    venv.close()


def test_breakout_whole_game_matches_vector_env() -> None:
    """Same actions, no no-ops: identical frames and rewards for a whole game,
    through the FIRE after each life loss, ending at the same step."""
    env = gym.make("prefrl/BreakoutDQN-v5", noop_max=0)
    venv = make_atari_vec_env("Breakout", 1, 0, noop_max=0, episodic_life=False)
    env.reset(seed=0)
    venv.reset()
    rng = np.random.default_rng(0)
    lives = set()
    for _ in range(2000):
        action = int(rng.integers(0, 4))
        obs, reward, terminated, truncated, info = env.step(action)
        vobs, vreward, vdone, vinfo = venv.step(np.array([action]))
        assert reward == vreward[0]
        assert not truncated
        assert terminated == vinfo[0]["game_over"] == vdone[0]
        lives.add(info["lives"])
        if terminated:
            np.testing.assert_array_equal(obs, vinfo[0]["terminal_observation"])
            break
        np.testing.assert_array_equal(obs, vobs[0])
    assert terminated, "a random Breakout game ends within 2000 steps"
    assert lives == {0, 1, 2, 3, 4, 5}
    env.close()
    venv.close()


def test_breakout_fire_after_life_loss() -> None:
    """A NOOP-only policy cannot pause Breakout: FIRE relaunches the ball."""
    env = gym.make("prefrl/BreakoutDQN-v5")
    env.reset(seed=0)
    for _ in range(2000):
        _, _, terminated, truncated, info = env.step(0)
        if terminated or truncated:
            break
    assert terminated and info["lives"] == 0
    env.close()


def test_make_options_and_spec_recreation() -> None:
    env = gym.make("prefrl/PongDQN-v5", mask_score=True, frame_stack=2)
    obs, _ = env.reset(seed=1)
    assert obs.shape == (84, 84, 2) == env.observation_space.shape
    (start, stop), = SCORE_MASK_ROWS["Pong"]
    assert not obs[start:stop].any() and obs[stop:].any()
    env.close()

    env = gym.make("prefrl/HopperPaper-v5", max_episode_steps=5)
    env.reset(seed=0)
    truncs = [env.step(env.action_space.sample())[3] for _ in range(5)]
    assert truncs == [False] * 4 + [True]
    env.close()

    for env_id in ("prefrl/InvertedPendulumPaper-v5", "prefrl/QbertDQN-v5"):
        env = gym.make(env_id)
        again = gym.make(env.spec)  # env.spec rebuilds the same stack
        assert str(again) == str(env)
        np.testing.assert_array_equal(env.reset(seed=2)[0], again.reset(seed=2)[0])
        env.close()
        again.close()


@pytest.mark.parametrize("env_id", ["prefrl/Walker2dPaper-v5", "prefrl/SpaceInvadersDQN-v5"])
def test_render_modes(env_id: str) -> None:
    """check_env's render check for every mode but "human" (needs a display)."""
    from gymnasium.utils.passive_env_checker import env_render_passive_checker

    kwargs = {}
    if env_id in MUJOCO_IDS:
        from envs.mujoco import gl_backend

        if gl_backend() is None:
            pytest.skip("no headless GL backend for MuJoCo")
        kwargs = {"width": 64, "height": 48}
    modes = [m for m in gym.make(env_id).metadata["render_modes"] if m != "human"]
    assert "rgb_array" in modes
    for mode in modes:
        env = gym.make(env_id, render_mode=mode, **kwargs)
        env.reset(seed=0)
        env_render_passive_checker(env)
        if mode == "rgb_array":
            frame = env.render()
            assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.std() > 0
        env.close()
