"""Save a trained reward model and load it back as a callable reward.

``save_reward(loop, path)`` writes one file per run,
``reward-model-seed{seed}.pt``, with everything that
``PreferenceLoop.reward(obs, act)`` depends on: the ensemble's weights and
buffers (the MLP's input standardisation, batch-norm statistics), how to
rebuild the ensemble, how to rebuild the loop's ``obs_transform``, and the
normalisation (``reward_mean``, ``reward_std``, ``target_std``).
``load_reward(path)`` returns a :class:`RewardFunction` that gives the same
rewards as the saved loop.

The file holds plain data only (tensors, numbers, strings, lists, tuples,
dicts), read back with ``torch.load(weights_only=True)``. The ensemble and the
observation transform are described by a *build spec*, a dict
``{"factory": "module:qualname", "kwargs": {...}}``: loading imports the
factory and calls it with the kwargs. ``MLPEnsemble`` needs nothing extra; any
other ensemble (or ``obs_transform``) must carry its spec in a ``build_spec``
attribute, as :func:`envs.atari_reward.make_frame_ensemble` and
:func:`envs.atari_reward.reward_model_view` do.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import re
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from prefrl.reward_model import MLPEnsemble, RewardEnsemble

__all__ = ["RewardFunction", "load_reward", "reward_file_name", "save_reward"]

FORMAT = "prefrl-reward-model"
VERSION = 1
TRUSTED_MODULES: tuple[str, ...] = ("prefrl", "envs")
"""Packages whose factories ``load_reward`` calls without being told to trust more."""
_FILE_RE = re.compile(r"^reward-model-seed(-?\d+)\.pt$")


def reward_file_name(seed: int) -> str:
    """The file name ``save_reward`` uses for a run's seed: ``reward-model-seed{seed}.pt``."""
    return f"reward-model-seed{seed}.pt"


def _factory_name(obj: Any) -> str:
    return f"{obj.__module__}:{obj.__qualname__}"


def ensemble_spec(ensemble: RewardEnsemble) -> dict:
    """How to rebuild ``ensemble`` (without its weights): ``{"factory": "module:qualname", "kwargs": {...}}``.

    Raises:
        ValueError: if the ensemble is not an ``MLPEnsemble`` and has no ``build_spec`` attribute.
    """
    spec = getattr(ensemble, "build_spec", None)
    if spec is not None:
        return _check_spec(spec, "ensemble.build_spec")
    if type(ensemble) is MLPEnsemble:
        hidden = tuple(int(w.shape[2]) for w in list(ensemble.weights)[:-1])
        return {"factory": _factory_name(MLPEnsemble), "kwargs": {
            "obs_shape": tuple(ensemble.obs_shape), "act_shape": tuple(ensemble.act_shape),
            "n_actions": ensemble.n_actions, "n_members": ensemble.n_members, "hidden": hidden,
            "dropout": float(ensemble.dropout), "use_action": bool(ensemble.use_action)}}
    raise ValueError(
        f"cannot save a {type(ensemble).__name__}: give it a build_spec attribute, "
        "{'factory': 'module:function', 'kwargs': {...}}, naming a function that rebuilds it "
        "(see envs.atari_reward.make_frame_ensemble)")


def _check_spec(spec: Any, what: str) -> dict:
    if not (isinstance(spec, dict) and isinstance(spec.get("factory"), str) and ":" in spec["factory"]
            and isinstance(spec.get("kwargs", {}), dict)):
        raise ValueError(f"{what} must be {{'factory': 'module:qualname', 'kwargs': {{...}}}}, got {spec!r}")
    return {"factory": spec["factory"], "kwargs": dict(spec.get("kwargs", {}))}


def _plain(x: Any) -> Any:
    """Numbers, strings, lists, tuples and dicts only (what ``weights_only`` loading accepts)."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_plain(v) for v in x)
    if isinstance(x, (np.generic, np.ndarray)):
        return x.tolist()
    if isinstance(x, torch.Tensor):
        return x.tolist()
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    return repr(x)


def save_reward(loop: Any, path: str | os.PathLike, *, seed: int | None = None,
                obs_transform_spec: dict | None = None) -> Path:
    """Writes the loop's reward model, normalisation and config to one file, atomically.

    Args:
        loop: a ``PreferenceLoop`` (or a :class:`RewardFunction` from
            ``load_reward``): what is read is ``ensemble``, ``reward_mean``,
            ``reward_std``, ``config.target_std`` (or ``target_std``) and
            ``obs_transform``.
        path: a directory (the file ``reward-model-seed{seed}.pt`` goes in it)
            or a file path ending in ``.pt``.
        seed: names the file and is stored; default the loop's ``config.seed``.
        obs_transform_spec: build spec of the loop's ``obs_transform``
            (``{"factory": "module:qualname", "kwargs": {...}}``); default the
            transform's own ``build_spec`` attribute.

    Returns:
        The path written.

    Raises:
        ValueError: if the ensemble or the obs_transform cannot be described
            by a build spec (see the module docstring).
    """
    wait = getattr(loop, "wait_fit", None)
    if wait is not None:  # a background refit (LoopConfig.overlap_fit) finishes first: weights and normalisation agree
        wait()
    config = getattr(loop, "config", None)
    if seed is None:
        seed = getattr(loop, "seed", None) if config is None else config.seed
    seed = int(seed or 0)
    target_std = float(config.target_std if config is not None else loop.target_std)
    transform = getattr(loop, "obs_transform", None)
    if transform is not None and obs_transform_spec is None:
        obs_transform_spec = getattr(transform, "build_spec", None)
        if obs_transform_spec is None:
            raise ValueError(
                "the loop has an obs_transform without a build_spec attribute: pass obs_transform_spec="
                "{'factory': 'module:function', 'kwargs': {...}} naming a function that returns it "
                "(see envs.atari_reward.reward_model_view)")
    ensemble: RewardEnsemble = loop.ensemble
    saved = loop.info if isinstance(loop, RewardFunction) else {}  # re-saving a loaded model keeps its record
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "seed": seed,
        "ensemble": ensemble_spec(ensemble),
        "ensemble_class": type(ensemble).__name__,
        "state_dict": {k: v.detach().cpu().clone() for k, v in ensemble.state_dict().items()},
        "obs_transform": None if obs_transform_spec is None else _check_spec(obs_transform_spec, "obs_transform_spec"),
        "obs_shape": tuple(ensemble.obs_shape),
        "act_shape": tuple(ensemble.act_shape),
        "reward_mean": float(loop.reward_mean),
        "reward_std": float(loop.reward_std),
        "target_std": target_std,
        "config": _plain(dataclasses.asdict(config)) if dataclasses.is_dataclass(config) else saved.get("config"),
        "trainer_config": _plain(dataclasses.asdict(loop.trainer_config))
        if dataclasses.is_dataclass(getattr(loop, "trainer_config", None)) else saved.get("trainer_config"),
        "labels_used": int(getattr(loop, "labels_used", saved.get("labels_used", 0))),
        "metrics": _plain(getattr(loop, "metrics", saved.get("metrics", {}))),
    }
    path = Path(path)
    if path.is_dir():
        path = path / reward_file_name(seed)
    elif path.suffix != ".pt":
        raise ValueError(f"{path}: give an existing directory or a file name ending in .pt")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


class RewardFunction:
    """A saved reward model as a function: ``reward(obs, act) -> [B]`` float32.

    Gives the same values as ``PreferenceLoop.reward(obs, act)`` of the loop
    that was saved: ensemble mean, minus ``reward_mean``, divided by
    ``reward_std``, times ``target_std``.

    Attributes:
        ensemble: the reward ensemble (in eval mode, on ``device``).
        obs_transform: what the model sees of an observation
            ([B, *obs_shape] -> [B, *rm_obs_shape]), or ``None``.
        reward_mean: mean of the raw ensemble-mean reward at the last calibration.
        reward_std: its std.
        target_std: std of the normalised reward.
        seed: the run's seed.
        info: everything else in the file (configs, labels used, last metrics, path).
    """

    def __init__(self, ensemble: RewardEnsemble, obs_transform: Callable[[np.ndarray], np.ndarray] | None,
                 reward_mean: float, reward_std: float, target_std: float, seed: int, device: str | torch.device,
                 info: dict | None = None):
        self.ensemble = ensemble
        self.obs_transform = obs_transform
        self.reward_mean, self.reward_std, self.target_std = reward_mean, reward_std, target_std
        self.seed = seed
        self.device = torch.device(device)
        self.info = info or {}

    def _view(self, obs) -> np.ndarray:
        return np.asarray(obs) if self.obs_transform is None else self.obs_transform(np.asarray(obs))

    @torch.inference_mode()
    def raw(self, obs, act, members: bool = False, transformed: bool = False) -> np.ndarray:
        """Unnormalised rewards.

        Args:
            obs: [B, *obs_shape] observations (as the agent sees them).
            act: [B, *act_shape] actions ([B] for discrete actions).
            members: return every member's reward instead of their mean.
            transformed: ``obs`` is already what the model sees (``obs_transform`` applied).

        Returns:
            [B] float32 ensemble mean (``PreferenceLoop.raw_reward``), or
            [E, B] float32 per member if ``members``.
        """
        view = obs if transformed else self._view(obs)
        if not members:
            return self.ensemble.mean_reward(view, act)  # what the loop's wrappers paid
        o = torch.as_tensor(view, device=self.device)
        a = torch.as_tensor(act, device=self.device)
        self.ensemble.eval()
        return self.ensemble(o, a).float().cpu().numpy()

    def __call__(self, obs, act, transformed: bool = False) -> np.ndarray:
        """Normalised learned reward: obs [B, *obs_shape], act [B, *act_shape] -> [B] float32."""
        raw = self.raw(obs, act, transformed=transformed)
        return ((raw - self.reward_mean) / self.reward_std * self.target_std).astype(np.float32)

    def __repr__(self) -> str:
        return (f"RewardFunction({type(self.ensemble).__name__}, E={self.ensemble.n_members}, seed={self.seed}, "
                f"mean={self.reward_mean:.4g}, std={self.reward_std:.4g}, target_std={self.target_std})")


def _seeds_in(directory: Path) -> list[int]:
    return sorted(int(m.group(1)) for p in directory.iterdir() if (m := _FILE_RE.match(p.name)))


def _resolve(path: Path, seed: int | None) -> Path:
    if path.is_dir():
        seeds = _seeds_in(path)
        if seed is not None:
            file = path / reward_file_name(seed)
            if not file.is_file():
                have = f"it has seeds {', '.join(map(str, seeds))}" if seeds else "it has no reward-model-seed*.pt"
                raise FileNotFoundError(f"{file} does not exist; {have}")
            return file
        if not seeds:
            raise FileNotFoundError(
                f"{path} holds no reward-model-seed*.pt: the benchmarks write one per seed when the learned-reward "
                "run finishes, and save_reward(loop, path) writes one from your own loop")
        if len(seeds) > 1:
            raise ValueError(f"{path} holds the reward models of seeds {', '.join(map(str, seeds))}: "
                             f"choose one with load_reward(path, seed=...)")
        return path / reward_file_name(seeds[0])
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist: give a run's output directory (with reward-model-seed*.pt) or one such file")
    return path


def _build(spec: dict, what: str, trusted: Sequence[str]):
    module, _, qualname = spec["factory"].partition(":")
    if not any(module == t or module.startswith(t + ".") for t in trusted):
        raise ValueError(
            f"the file's {what} is built by {spec['factory']}, outside the trusted packages "
            f"({', '.join(trusted)}); if you trust the file, pass trusted_modules=(..., {module.split('.')[0]!r})")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj(**spec["kwargs"])


def load_reward(path: str | os.PathLike, seed: int | None = None, device: str | torch.device = "cpu",
                trusted_modules: Sequence[str] = TRUSTED_MODULES) -> RewardFunction:
    """Loads a reward model saved by :func:`save_reward` (or by a benchmark run).

    Args:
        path: a run's output directory, or one ``reward-model-seed*.pt`` file.
        seed: which run of a directory; may be left out when it holds one.
        device: where the ensemble runs.
        trusted_modules: packages whose factories may be called to rebuild the
            ensemble and the obs_transform named in the file.

    Returns:
        A :class:`RewardFunction`: ``reward(obs, act)`` -> [B] float32, the
        saved loop's ``reward(obs, act)``.

    Raises:
        FileNotFoundError: no such file, or the directory has no (such) seed.
        ValueError: the directory holds several seeds and ``seed`` is None;
            the file is not a prefrl reward model; a factory is not trusted.
    """
    file = _resolve(Path(path), seed)
    try:
        data = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # not a torch file, truncated, or holds objects that are not plain data
        raise ValueError(f"{file} is not a reward model saved by prefrl.save_reward: {err}") from err
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{file} is not a reward model saved by prefrl.save_reward")
    if data["version"] > VERSION:
        raise ValueError(f"{file} has format version {data['version']}; this prefrl reads up to {VERSION}: upgrade it")
    ensemble = _build(data["ensemble"], "ensemble", trusted_modules)
    ensemble.load_state_dict(data["state_dict"])
    ensemble.to(device).eval()
    transform = None if data["obs_transform"] is None else _build(data["obs_transform"], "obs_transform",
                                                                   trusted_modules)
    info = {k: v for k, v in data.items() if k not in ("state_dict",)} | {"path": str(file)}
    return RewardFunction(ensemble, transform, data["reward_mean"], data["reward_std"], data["target_std"],
                          data["seed"], device, info)
