import numpy as np
import pytest
import torch

from agents import make_agent, resolve_device
from agents.wrappers import EpisodeEndsAsTimeouts, SignRewardVecEnv
from envs.atari import make_atari_vec_env


def test_device_resolution():
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu7")


@pytest.mark.slow
def test_make_agent_defaults_and_errors():
    venv = make_atari_vec_env("Pong", 2, 0)
    a2c = make_agent("a2c", venv, "atari", device="cpu")
    assert a2c.n_steps == 5 and a2c.policy.__class__.__name__ == "ActorCriticCnnPolicy"
    ppo = make_agent("ppo", venv, "atari", device="cpu", n_steps=16)
    assert ppo.n_steps == 16 and ppo.n_epochs == 4
    with pytest.raises(ValueError, match="unknown agent"):
        make_agent("dqn", venv, "atari")
    with pytest.raises(ValueError, match="no defaults for family"):
        make_agent("ppo", venv, "robotics")
    venv.close()


@pytest.mark.slow
def test_reward_wrappers_on_real_atari():
    venv = EpisodeEndsAsTimeouts(SignRewardVecEnv(make_atari_vec_env("Breakout", 4, 0)))
    venv.reset()
    rewards, ends = [], 0
    for _ in range(600):
        _, r, dones, infos = venv.step(np.random.randint(0, 4, 4))
        rewards.append(r)
        for d, info in zip(dones, infos):
            if d:
                ends += 1
                assert info["TimeLimit.truncated"] is True and "terminal_observation" in info
    assert set(np.unique(np.concatenate(rewards))) <= {0.0, 1.0}
    assert ends > 0, "600 random steps of Breakout should lose a life"
    venv.close()


@pytest.mark.slow
def test_normalised_true_reward_standardises_the_recent_game_reward():
    """The upper-bound arm's reward: the raw game reward, zero-mean and unit-std over its window."""
    from agents.wrappers import NormalisedTrueReward

    venv = NormalisedTrueReward(make_atari_vec_env("Breakout", 4, 0), window=400, recalibrate_every=100)
    venv.reset()
    rng = np.random.default_rng(0)
    raw, out = [], []
    for t in range(400):
        _, r, _, infos = venv.step(rng.integers(0, 4, 4))
        raw.append([i["true_reward"] for i in infos])
        out.append(r)
    raw, out = np.array(raw), np.array(out)
    assert raw.max() > 0, "random Breakout hits a brick within 400 steps"
    np.testing.assert_allclose(out[:99], raw[:99], atol=1e-6)  # before the first recalibration (at step 100): mean 0, std 1
    mean, std = raw.mean(), raw.std()  # the last recalibration (step 400) saw exactly these steps
    assert venv.mean == pytest.approx(mean) and venv.std == pytest.approx(std)
    with pytest.raises(ValueError, match="window"):
        NormalisedTrueReward(make_atari_vec_env("Breakout", 1, 0), window=0)
    venv.close()


@pytest.mark.slow
def test_continuing_episodes_hides_every_end():
    """--episode-ends continue: life losses and game overs never reach the agent as dones."""
    from agents.wrappers import ContinuingEpisodes

    inner = make_atari_vec_env("Breakout", 2, 0)
    venv = ContinuingEpisodes(inner)
    venv.reset()
    rng = np.random.default_rng(0)
    life_losses = games = 0
    for _ in range(1500):
        _, _, dones, infos = venv.step(rng.integers(0, 4, 2))
        assert not dones.any()
        assert all("terminal_observation" not in i and "TimeLimit.truncated" not in i for i in infos)
        life_losses += sum(i["lives"] < 5 for i in infos)
        games += sum("episode" in i for i in infos)
    assert games >= 1 and life_losses > 0, "random Breakout loses lives and whole games in 1500 steps"
    venv.close()
