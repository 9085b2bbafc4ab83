"""``TextGen-v0``: token-level text generation as a gymnasium environment.

The MDP: an episode starts from a task prompt (for the default
``"imdb-positive"`` task, the first 16-32 tokens of a real IMDB review); each
action appends one token id to the context; the episode *terminates* when the
action is an end-of-sequence token and is *truncated* after
``max_new_tokens`` generated tokens. The reward is 0 on every step but the
last, where it is the task's true score of the decoded completion (VADER
compound sentiment for ``"imdb-positive"``), also given as
``info["true_score"]`` next to ``info["completion"]``.

Observation (``gymnasium.spaces.Dict``)::

    "input_ids":     Box(0, vocab_size - 1, (max_len,), int64)
                     prompt + completion so far, right-padded with pad_token_id
    "length":        Discrete(max_len + 1)  number of real tokens in input_ids
    "prompt_length": Discrete(max_len + 1)  how many of them are the prompt

A fixed-shape padded array (rather than a ``Sequence`` space) keeps the
observation batchable by vector envs and replay buffers; ``length`` marks
where the padding starts (the pad id may equal the EOS id, as in SmolLM2)
and ``prompt_length`` where the completion starts, e.g. to mask a policy
loss. ``max_len`` defaults to the longest prompt plus ``max_new_tokens``, so
generation never runs out of room.

Action: ``Discrete(vocab_size)``, the next token id, ``vocab_size =
len(tokenizer)``. A policy whose logits are wider (padded vocabularies) must
slice them to ``vocab_size``.

Example::

    import gymnasium, envs
    env = gymnasium.make("TextGen-v0", max_new_tokens=24)   # SmolLM2 tokenizer
    obs, info = env.reset(seed=0)
    ...
    obs, reward, terminated, truncated, info = env.step(token_id)

``gymnasium.make("envs:TextGen-v0", ...)`` works without importing
:mod:`envs` first. Construction loads only a tokenizer, never model weights
(see :func:`envs.text_models.load_causal_lm` for the policy model).
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.text_tasks import TextTask, make_text_task

__all__ = ["TextGenEnv"]


class TextGenEnv(gym.Env[dict[str, Any], int]):
    """Token-level text generation scored by a task's true scorer.

    Args:
        task: A ``TEXT_TASKS`` name (``"imdb-positive"``, ``"length"``,
            ``"keyword"``) or a :class:`~envs.text_tasks.TextTask`.
        tokenizer: A Hugging Face-style tokenizer (``encode``, ``decode``,
            ``len()``, ``eos_token_id``, ``pad_token_id``). Mutually exclusive
            with ``model_name_or_path``.
        model_name_or_path: Where to load the tokenizer from (see
            :func:`envs.text_models.load_tokenizer`); default, when neither is
            given, ``"SmolLM2-135M-Instruct"``.
        max_new_tokens: Generated tokens after which an episode truncates.
        prompt_tokens: Prompts are cut to their first N tokens: an int N, a
            ``(low, high)`` range sampled uniformly per episode (inclusive),
            or ``None`` for whole prompts. Default ``(16, 32)``.
        max_len: Length of ``input_ids``; default the longest prompt
            (``prompt_tokens`` high end, or 64 when ``None``) plus
            ``max_new_tokens``. Must hold the longest prompt plus
            ``max_new_tokens``.
        task_kwargs: Constructor arguments of a named task.
        stop_token_ids: Token ids that terminate an episode; default
            ``[tokenizer.eos_token_id]``.
        render_mode: ``None`` or ``"ansi"`` (``render()`` returns the decoded
            prompt + completion, special tokens included).

    Raises:
        ValueError: Unknown task, bad sizes, or no EOS token.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        task: str | TextTask = "imdb-positive",
        *,
        tokenizer: Any = None,
        model_name_or_path: str | None = None,
        max_new_tokens: int = 32,
        prompt_tokens: int | tuple[int, int] | None = (16, 32),
        max_len: int | None = None,
        task_kwargs: Mapping[str, Any] | None = None,
        stop_token_ids: Iterable[int] | None = None,
        render_mode: str | None = None,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.render_mode = render_mode
        self.task = make_text_task(task, **dict(task_kwargs or {}))

        if tokenizer is not None and model_name_or_path is not None:
            raise ValueError("give either tokenizer or model_name_or_path, not both")
        if tokenizer is None:
            from envs.text_models import DEFAULT_MODEL, load_tokenizer

            tokenizer = load_tokenizer(model_name_or_path or DEFAULT_MODEL)
        self.tokenizer = tokenizer
        self.vocab_size = int(len(tokenizer))

        if int(max_new_tokens) < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens!r}")
        self.max_new_tokens = int(max_new_tokens)
        self.prompt_tokens = self._check_prompt_tokens(prompt_tokens)
        longest_prompt = 64 if self.prompt_tokens is None else self.prompt_tokens[1]
        self.max_len = int(max_len) if max_len is not None else longest_prompt + self.max_new_tokens
        if longest_prompt + self.max_new_tokens > self.max_len:
            raise ValueError(
                f"prompts of up to {longest_prompt} tokens plus max_new_tokens="
                f"{self.max_new_tokens} do not fit in max_len={self.max_len}"
            )

        if stop_token_ids is None:
            eos = getattr(tokenizer, "eos_token_id", None)
            stop_token_ids = [] if eos is None else [eos]
        self.stop_token_ids = frozenset(int(t) for t in stop_token_ids)
        if not self.stop_token_ids:
            raise ValueError("the tokenizer has no eos_token_id: pass stop_token_ids")
        bad = [t for t in self.stop_token_ids if not 0 <= t < self.vocab_size]
        if bad:
            raise ValueError(
                f"stop_token_ids {bad} are outside the vocabulary [0, {self.vocab_size})"
            )
        pad = getattr(tokenizer, "pad_token_id", None)
        self.pad_token_id = int(pad) if pad is not None else min(self.stop_token_ids)

        self.action_space = spaces.Discrete(self.vocab_size)
        self.observation_space = spaces.Dict(
            {
                "input_ids": spaces.Box(0, self.vocab_size - 1, (self.max_len,), np.int64),
                "length": spaces.Discrete(self.max_len + 1),
                "prompt_length": spaces.Discrete(self.max_len + 1),
            }
        )

        self._ids = np.full(self.max_len, self.pad_token_id, dtype=np.int64)
        self._length = 0
        self._prompt_length = 0
        self._prompt_text = ""
        self._started = False
        self._done = False

    # ------------------------------------------------------------------ API

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Starts an episode from a sampled (or given) prompt.

        Args:
            seed: Seeds ``self.np_random``, which draws the prompt index and
                then, for a ``(low, high)`` ``prompt_tokens``, its length.
            options: ``{"prompt": str}`` uses that prompt as is (no
                ``prompt_tokens`` cut, no random draw).

        Returns:
            ``(observation, info)`` with ``info = {"prompt": str,
            "prompt_length": int}``.

        Raises:
            ValueError: The prompt encodes to no token, or does not leave room
                for ``max_new_tokens`` within ``max_len``.
        """
        super().reset(seed=seed)
        options = options or {}
        if "prompt" in options:
            ids = self._encode(str(options["prompt"]))
        else:
            text = self.task.sample_prompt(self.np_random)
            if self.prompt_tokens is None:
                ids = self._encode(text)
            else:
                low, high = self.prompt_tokens
                n = int(self.np_random.integers(low, high + 1))
                # A token is rarely > 8 characters: tokenising a prefix of the
                # review is enough for its first n tokens and much cheaper.
                ids = self._encode(text[: max(256, 16 * n)])[:n]
        if not ids:
            raise ValueError("the prompt encodes to zero tokens")
        if len(ids) + self.max_new_tokens > self.max_len:
            raise ValueError(
                f"prompt of {len(ids)} tokens is longer than the context allows: "
                f"max_len={self.max_len} must hold it plus max_new_tokens={self.max_new_tokens}"
            )
        self._ids.fill(self.pad_token_id)
        self._ids[: len(ids)] = ids
        self._length = self._prompt_length = len(ids)
        self._prompt_text = self.tokenizer.decode(ids, skip_special_tokens=True)
        self._started, self._done = True, False
        return self._obs(), {"prompt": self._prompt_text, "prompt_length": self._prompt_length}

    def step(self, action: Any) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        """Appends one token.

        Args:
            action: A token id in ``[0, vocab_size)`` (int, numpy integer or
                a one-element integer array).

        Returns:
            ``(observation, reward, terminated, truncated, info)``. ``info``
            always has ``"num_generated"``; at the end of an episode also
            ``"completion"`` (decoded, special tokens removed), ``"prompt"``
            and ``"true_score"`` (equal to ``reward``).

        Raises:
            ValueError: The action is not a token id of the vocabulary.
            TypeError: The action is not an integer.
            RuntimeError: Called before ``reset()`` or after the episode ended.
        """
        if not self._started:
            raise RuntimeError("step() called before reset()")
        if self._done:
            raise RuntimeError(
                "step() called after the episode ended (terminated or truncated); call reset()"
            )
        token = self._check_action(action)
        self._ids[self._length] = token
        self._length += 1
        generated = self._length - self._prompt_length
        terminated = token in self.stop_token_ids
        truncated = not terminated and generated >= self.max_new_tokens
        info: dict[str, Any] = {"num_generated": generated}
        reward = 0.0
        if terminated or truncated:
            self._done = True
            completion = self.completion_text
            reward = float(self.task.score(completion, self._prompt_text))
            info.update(completion=completion, prompt=self._prompt_text, true_score=reward)
        return self._obs(), reward, terminated, truncated, info

    def render(self) -> str | None:
        """Decoded prompt + completion so far (``render_mode="ansi"`` only).

        Returns:
            The text with special tokens (e.g. a final EOS) kept, or ``None``
            when ``render_mode`` is not ``"ansi"``.
        """
        if self.render_mode != "ansi":
            return None
        return self.tokenizer.decode(self._ids[: self._length].tolist(), skip_special_tokens=False)

    # ------------------------------------------------------------- helpers

    @property
    def prompt_text(self) -> str:
        """Decoded prompt of the current episode."""
        return self._prompt_text

    @property
    def completion_ids(self) -> np.ndarray:
        """Generated token ids so far, ``[num_generated]`` int64 (a copy)."""
        return self._ids[self._prompt_length : self._length].copy()

    @property
    def completion_text(self) -> str:
        """Decoded completion so far, special tokens (EOS) removed."""
        return self.tokenizer.decode(self.completion_ids.tolist(), skip_special_tokens=True)

    def _obs(self) -> dict[str, Any]:
        return {
            "input_ids": self._ids.copy(),
            "length": np.int64(self._length),
            "prompt_length": np.int64(self._prompt_length),
        }

    def _encode(self, text: str) -> list[int]:
        return [int(t) for t in self.tokenizer.encode(text)]

    def _check_action(self, action: Any) -> int:
        if isinstance(action, np.ndarray) and action.size == 1:
            action = action.reshape(())
        if isinstance(action, (bool, np.bool_)) or (
            isinstance(action, np.ndarray) and not np.issubdtype(action.dtype, np.integer)
        ):
            raise TypeError(f"action must be an integer token id, got {action!r}")
        try:
            token = operator.index(action)
        except TypeError as err:
            raise TypeError(f"action must be an integer token id, got {action!r}") from err
        if not 0 <= token < self.vocab_size:
            raise ValueError(
                f"action {token} is outside the vocabulary: token ids are in [0, {self.vocab_size})"
            )
        return token

    @staticmethod
    def _check_prompt_tokens(value: int | tuple[int, int] | None) -> tuple[int, int] | None:
        if value is None:
            return None
        if isinstance(value, (int, np.integer)):
            low = high = int(value)
        else:
            low, high = (int(v) for v in value)
        if not 1 <= low <= high:
            raise ValueError(f"prompt_tokens must be >= 1 (and low <= high), got {value!r}")
        return low, high
