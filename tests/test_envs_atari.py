"""Tests for envs.atari on the real Arcade Learning Environment (no mocks)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ale_py")

from envs.atari import (  # noqa: E402
    ATARI_GAMES,
    SCORE_MASK_ROWS,
    atari_game_name,
    canonical_game_id,
    frames_for_labeling,
    make_atari_vec_env,
    score_mask,
)


def _rollout(venv, n_steps: int, seed: int = 0) -> tuple[np.ndarray, list]:
    """Random-action rollout; returns obs [T + 1, N, 84, 84, K] and info lists."""
    rng = np.random.default_rng(seed)
    n_actions = int(venv.action_space.n)
    obs = [venv.reset()]
    infos = []
    for _ in range(n_steps):
        o, _, dones, info = venv.step(rng.integers(0, n_actions, venv.num_envs))
        obs.append(o)
        infos.append((dones, info))
    return np.stack(obs), infos


def test_game_name_normalization() -> None:
    for spelling in ("Pong", "pong", "ALE/Pong-v5", "PongNoFrameskip-v4", "Pong-v5"):
        assert atari_game_name(spelling) == "Pong"
    assert atari_game_name("space_invaders") == "SpaceInvaders"
    assert atari_game_name("ALE/BeamRider-v5") == "BeamRider"
    assert set(SCORE_MASK_ROWS) == set(ATARI_GAMES)
    assert canonical_game_id("pong") == "ALE/Pong-v5"
    mask = score_mask("ALE/Enduro-v5")
    assert mask.shape == (84, 84) and mask.dtype == bool
    assert mask[64:77].all() and not mask[:64].any() and not mask[77:].any()


@pytest.mark.parametrize("bad", ["Tetris", "ALE/Tetris-v5", "Hopper-v5", "HalfCheetah-v5", ""])
def test_unknown_game_raises(bad: str) -> None:
    with pytest.raises(ValueError) as err:
        make_atari_vec_env(bad, 1, 0)
    assert repr(bad) in str(err.value) and "Pong" in str(err.value)


@pytest.mark.parametrize("game", ["Pong", "ALE/Breakout-v5"])
def test_shapes_and_dtype(game: str) -> None:
    venv = make_atari_vec_env(game, 3, 0)
    assert venv.observation_space.shape == (84, 84, 4)
    obs, steps = _rollout(venv, 10)
    venv.close()
    assert obs.shape == (11, 3, 84, 84, 4) and obs.dtype == np.uint8
    assert obs[-1].max() > 0
    dones, infos = steps[-1]
    assert dones.shape == (3,) and dones.dtype == bool
    for info in infos:
        assert isinstance(info["game_reward"], float)
        assert isinstance(info["game_over"], bool)
        assert isinstance(info["lives"], int)
    frames = frames_for_labeling(obs[:, 0])
    assert frames.shape == (11, 84, 84) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames, obs[:, 0, :, :, -1])


def test_sb3_reference_backend_shapes() -> None:
    venv = make_atari_vec_env("Breakout", 2, 0, backend="sb3-dummy", mask_score=True)
    obs, steps = _rollout(venv, 10)
    venv.close()
    assert obs.shape == (11, 2, 84, 84, 4) and obs.dtype == np.uint8
    assert not obs[:, :, 0:6].any()
    assert {"game_reward", "game_over", "lives"} <= set(steps[-1][1][0])


@pytest.mark.parametrize("game", ATARI_GAMES)
def test_mask_score_blanks_only_the_score_rows(game: str) -> None:
    plain = make_atari_vec_env(game, 1, 3)
    masked = make_atari_vec_env(game, 1, 3, mask_score=True)
    obs_plain, _ = _rollout(plain, 120, seed=1)
    obs_masked, _ = _rollout(masked, 120, seed=1)
    plain.close()
    masked.close()
    blanked = np.zeros(84, dtype=bool)
    for start, stop in SCORE_MASK_ROWS[game]:
        blanked[start:stop] = True
    # Masked frames: exactly zero in the score rows ...
    assert not obs_masked[:, :, blanked].any()
    # ... while the same (seeded) unmasked game shows something there,
    assert obs_plain[:, :, blanked].any()
    # and everything else is untouched.
    np.testing.assert_array_equal(obs_masked[:, :, ~blanked], obs_plain[:, :, ~blanked])


@pytest.mark.slow
def test_seeded_determinism() -> None:
    def run(seed: int) -> np.ndarray:
        venv = make_atari_vec_env("Breakout", 2, seed)
        obs, _ = _rollout(venv, 60)
        venv.close()
        return obs

    a = run(5)
    np.testing.assert_array_equal(a, run(5))
    assert not np.array_equal(a, run(6))


@pytest.mark.slow
def test_life_loss_and_game_over_signals() -> None:
    venv = make_atari_vec_env("Breakout", 2, 0, episodic_life=True)
    obs, steps = _rollout(venv, 700)
    venv.close()
    life_losses = game_overs = 0
    for t, (dones, infos) in enumerate(steps):
        for i, (done, info) in enumerate(zip(dones, infos)):
            if done:
                last = info["terminal_observation"]
                assert last.shape == (84, 84, 4)
                # The stack continues the previous observation (oldest frame
                # dropped), i.e. it is the true last state, not the reset one.
                np.testing.assert_array_equal(last[..., :3], obs[t, i][..., 1:])
            if info["game_over"]:
                game_overs += 1
                assert done and info["lives"] == 0
                assert info["episode"]["l"] > 0
            elif done:
                life_losses += 1
                assert "episode" not in info
    assert game_overs >= 1 and life_losses >= 4 * game_overs

    venv = make_atari_vec_env("Breakout", 2, 0, episodic_life=False)
    _, steps = _rollout(venv, 300)
    venv.close()
    assert all(
        bool(done) == info["game_over"]
        for dones, infos in steps
        for done, info in zip(dones, infos)
    )


@pytest.mark.slow
@pytest.mark.parametrize("fire", [True, False])
def test_fire_on_life_loss_keeps_the_game_going(fire: bool) -> None:
    """A policy that never presses FIRE cannot pause Breakout after a life loss."""
    venv = make_atari_vec_env("Breakout", 2, 0, fire_on_life_loss=fire)
    venv.reset()
    game_overs, lives = 0, set()
    for _ in range(1500):
        _, _, _, infos = venv.step(np.zeros(2, dtype=np.int64))  # NOOP only
        game_overs += sum(info["game_over"] for info in infos)
        lives |= {info["lives"] for info in infos}
    venv.close()
    if fire:  # FIRE relaunches the ball after every miss: all 5 lives go, the game ends
        assert game_overs >= 2 and 1 in lives
    else:  # the ball is never relaunched after the first miss: stuck at 4 lives
        assert game_overs == 0 and lives == {4, 5}


def test_frames_for_labeling_rejects_bad_shape() -> None:
    with pytest.raises(ValueError):
        frames_for_labeling(np.zeros((84, 84, 4), dtype=np.uint8))
