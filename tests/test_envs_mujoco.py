"""Tests for envs.mujoco on the real MuJoCo simulator (no mocks)."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mujoco")

from envs.mujoco import (  # noqa: E402
    MUJOCO_TASKS,
    PAPER_VARIANT_CHANGES,
    PAPER_VARIANT_KWARGS,
    RenderingUnavailableError,
    make_mujoco_env,
    make_mujoco_vec_env,
    render_states,
    sim_state_dims,
)

# Tasks whose standard version terminates early (falls) under random actions.
TERMINATING = ("Hopper-v5", "Walker2d-v5", "InvertedPendulum-v5", "InvertedDoublePendulum-v5")
# Tasks with a control (and for Ant contact) cost in the standard reward.
COSTED = ("HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Swimmer-v5", "Ant-v5", "Reacher-v5")


def _random_actions(env, n: int, seed: int) -> np.ndarray:
    space = env.action_space
    rng = np.random.default_rng(seed)
    return rng.uniform(space.low, space.high, size=(n, *space.shape)).astype(space.dtype)


def test_import_envs_is_lazy() -> None:
    code = (
        "import sys, envs; "
        "heavy = [m for m in ('mujoco', 'ale_py', 'stable_baselines3', 'torch', "
        "'transformers') if m in sys.modules]; "
        "print(heavy); assert not heavy, heavy; "
        "envs.make_mujoco_env; assert 'mujoco' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


def test_tables_cover_all_tasks() -> None:
    assert len(MUJOCO_TASKS) == 8
    assert set(PAPER_VARIANT_KWARGS) == set(MUJOCO_TASKS)
    assert set(PAPER_VARIANT_CHANGES) == set(MUJOCO_TASKS)


@pytest.mark.parametrize("env_id", MUJOCO_TASKS)
@pytest.mark.parametrize("paper_variant", [False, True])
def test_constructs_and_steps(env_id: str, paper_variant: bool) -> None:
    env = make_mujoco_env(env_id, paper_variant=paper_variant)
    nq, nv = sim_state_dims(env_id)
    obs, info = env.reset(seed=0)
    assert obs.shape == env.observation_space.shape
    assert info["sim_state"].shape == (nq + nv,)
    for action in _random_actions(env, 5, seed=0):
        obs, reward, terminated, truncated, info = env.step(action)
        assert np.all(np.isfinite(obs)) and np.isfinite(reward)
        state = info["sim_state"]
        assert state.dtype == np.float64 and state.shape == (nq + nv,)
        if terminated:
            break
    env.close()


@pytest.mark.parametrize("env_id", MUJOCO_TASKS)
def test_sim_state_reproduces_observation(env_id: str) -> None:
    nq, _ = sim_state_dims(env_id)
    env = make_mujoco_env(env_id)
    env.reset(seed=1)
    for action in _random_actions(env, 3, seed=1):
        obs, *_, info = env.step(action)
    other = make_mujoco_env(env_id)
    other.reset(seed=99)
    sim = other.unwrapped
    sim.set_state(info["sim_state"][:nq], info["sim_state"][nq:])
    np.testing.assert_array_equal(sim.data.qpos, env.unwrapped.data.qpos)
    np.testing.assert_array_equal(sim.data.qvel, env.unwrapped.data.qvel)
    restored = sim._get_obs()
    if env_id == "Ant-v5":
        # The contact forces (cfrc_ext) at the end of Ant's observation are
        # only computed inside mj_step, not by mj_forward: compare the rest.
        restored, obs = restored[:27], obs[:27]
    # Body positions in an observation (Reacher's fingertip) come from the
    # start of the last substep, so they lag qpos by ~1e-6.
    np.testing.assert_allclose(restored, obs, rtol=0, atol=1e-4)
    env.close()
    other.close()


@pytest.mark.parametrize("env_id", MUJOCO_TASKS)
def test_check_env_passes(env_id: str) -> None:
    from gymnasium.utils.env_checker import check_env

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(make_mujoco_env(env_id).unwrapped, skip_render_check=True)
        check_env(make_mujoco_env(env_id, paper_variant=True), skip_render_check=True)


def test_hopper_paper_variant_runs_full_length() -> None:
    std = make_mujoco_env("Hopper-v5")
    paper = make_mujoco_env("Hopper-v5", paper_variant=True)
    actions = _random_actions(std, 1000, seed=0)
    std.reset(seed=0)
    std_len = 0
    for action in actions:
        std_len += 1
        if any(std.step(action)[2:4]):
            break
    assert std_len < 1000, "sanity: random Hopper should fall in the standard env"

    paper.reset(seed=0)
    for t, action in enumerate(actions):
        _, reward, terminated, truncated, info = paper.step(action)
        assert not terminated
        assert truncated == (t == 999)
    # Fallen => no healthy bonus, so reward = forward reward only.
    assert info["reward_survive"] == 0.0
    assert reward == pytest.approx(info["reward_forward"])


@pytest.mark.parametrize("env_id", TERMINATING)
def test_paper_variant_never_terminates(env_id: str) -> None:
    horizon = 150
    env = make_mujoco_env(env_id, paper_variant=True, max_episode_steps=horizon)
    env.reset(seed=3)
    for t, action in enumerate(_random_actions(env, horizon, seed=3)):
        _, _, terminated, truncated, _ = env.step(action)
        assert not terminated
        assert truncated == (t == horizon - 1)


@pytest.mark.parametrize("env_id", ["InvertedPendulum-v5", "InvertedDoublePendulum-v5"])
def test_pendulum_alive_reward_drops_to_zero_when_fallen(env_id: str) -> None:
    env = make_mujoco_env(env_id, paper_variant=True, max_episode_steps=100)
    env.reset(seed=0)
    fallen = 0
    for action in _random_actions(env, 100, seed=0):
        _, _, terminated, _, info = env.step(action)
        assert not terminated
        if info["would_terminate"]:
            fallen += 1
            assert info["reward_survive"] == 0
    assert fallen > 0, "random actions should topple the pendulum within 100 steps"


@pytest.mark.parametrize("env_id", COSTED)
def test_paper_variant_reward_has_no_control_cost(env_id: str) -> None:
    std = make_mujoco_env(env_id)
    paper = make_mujoco_env(env_id, paper_variant=True)
    std.reset(seed=5)
    paper.reset(seed=5)
    saw_cost = False
    for action in _random_actions(std, 30, seed=5):
        _, r_std, term_std, _, i_std = std.step(action)
        _, r_pap, _, _, i_pap = paper.step(action)
        if term_std:
            break  # dynamics identical until the standard env would stop
        costs = i_std["reward_ctrl"] + i_std.get("reward_contact", 0.0)
        saw_cost |= costs < 0
        assert r_pap == pytest.approx(r_std - costs, rel=1e-9, abs=1e-9)
        assert i_pap["reward_ctrl"] == 0.0
        assert i_pap.get("reward_contact", 0.0) == 0.0
    assert saw_cost


@pytest.mark.parametrize("bad", ["Foo-v0", "CartPole-v1", "Hopper-v4", "ALE/Pong-v5"])
def test_unknown_id_raises(bad: str) -> None:
    with pytest.raises(ValueError) as err:
        make_mujoco_env(bad)
    assert bad in str(err.value) and "HalfCheetah-v5" in str(err.value)
    with pytest.raises(ValueError):
        make_mujoco_vec_env(bad, 1, 0)


def test_same_seed_same_observations() -> None:
    def rollout(seed: int) -> np.ndarray:
        env = make_mujoco_env("Walker2d-v5")
        obs = [env.reset(seed=seed)[0]]
        for action in _random_actions(env, 20, seed=0):
            obs.append(env.step(action)[0])
        return np.stack(obs)

    np.testing.assert_array_equal(rollout(7), rollout(7))
    assert not np.array_equal(rollout(7), rollout(8))


def test_vec_env_seeded_and_monitored() -> None:
    def rollout(seed: int) -> tuple[np.ndarray, list]:
        venv = make_mujoco_vec_env("Hopper-v5", 2, seed)
        obs = [venv.reset()]
        episodes = []
        rng = np.random.default_rng(0)
        for _ in range(150):
            actions = rng.uniform(-1, 1, size=(2, 3)).astype(np.float32)
            o, _, dones, infos = venv.step(actions)
            obs.append(o)
            for done, info in zip(dones, infos):
                assert info["sim_state"].shape == (12,)
                if done:
                    assert "terminal_observation" in info
                    episodes.append(info["episode"])
        venv.close()
        return np.stack(obs), episodes

    obs_a, eps_a = rollout(11)
    obs_b, eps_b = rollout(11)
    assert obs_a.shape == (151, 2, 11)
    np.testing.assert_array_equal(obs_a, obs_b)
    assert eps_a, "random Hopper episodes end within 150 steps"
    assert [e["r"] for e in eps_a] == [e["r"] for e in eps_b]
    assert not np.array_equal(obs_a, rollout(12)[0])


def test_render_states_shape_and_content() -> None:
    env = make_mujoco_env("HalfCheetah-v5")
    env.reset(seed=0)
    states = []
    for action in _random_actions(env, 12, seed=0):
        states.append(env.step(action)[-1]["sim_state"])
    states = np.stack(states)[::4]  # 3 states, far enough apart to differ
    try:
        frames = render_states("HalfCheetah-v5", states, width=64, height=48)
    except RenderingUnavailableError as err:
        pytest.skip(f"no headless GL backend: {err}")
    assert frames.shape == (3, 48, 64, 3) and frames.dtype == np.uint8
    assert all(frame.std() > 1.0 for frame in frames)
    assert not np.array_equal(frames[0], frames[-1])
    again = render_states("HalfCheetah-v5", states[0], width=64, height=48)
    np.testing.assert_array_equal(again, frames[0])
    with pytest.raises(ValueError):
        render_states("HalfCheetah-v5", states[:, :5])


def test_gymnasium_asset_deprecation_is_not_printed_and_other_mujoco_warnings_reach_python(capfd):
    from envs import mujoco as envs_mujoco

    env = make_mujoco_env("HalfCheetah-v5", paper_variant=True)
    env.reset(seed=0)
    env.close()
    assert "settotalmass" not in capfd.readouterr().err
    with pytest.warns(RuntimeWarning, match="MuJoCo: Nan, Inf or huge value in QACC"):
        envs_mujoco._mujoco_warning("Nan, Inf or huge value in QACC at DOF 0.")


def test_rendered_clips_follow_a_runner_that_leaves_the_start() -> None:
    """HalfCheetah's camera has no tracking config: without following, a cheetah 30 m on is out of the picture."""
    env = make_mujoco_env("HalfCheetah-v5")
    _, info = env.reset(seed=0)
    here = info["sim_state"]
    far = here.copy()
    far[0] += 30.0  # the same pose, 30 m down the track
    try:
        frames = render_states("HalfCheetah-v5", np.stack([here, far]), width=96, height=96)
    except RenderingUnavailableError as err:
        pytest.skip(f"no headless GL backend: {err}")

    def body_pixels(frame):  # the cheetah's tan/orange body; the floor is black and pale green
        r, g, b = (frame[..., c].astype(int) for c in range(3))
        return int(((r > 150) & (r > g + 30) & (g > b + 20)).sum())

    assert body_pixels(frames[0]) > 20
    assert body_pixels(frames[1]) > 0.5 * body_pixels(frames[0])
