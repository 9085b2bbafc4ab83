"""``python -m benchmarks.textgen --synthetic-oracle``

RLHF on ``TextGen-v0``, InstructGPT style, in three arms with the same seed,
prompts and PPO budget:

* **zero-shot**: the pretrained LM (default SmolLM2-135M-Instruct) as is;
* **true**: token-level PPO on the task's true score (VADER sentiment of
  the continuation of a real IMDB review, for the default task);
* **learned**: the same PPO on a reward model (frozen all-MiniLM-L6-v2
  encoder + 3 MLP heads) fit to synthetic preferences between two
  completions of the same prompt (10% random answers), queried by ensemble
  disagreement: 25% of the labels from the zero-shot model before training,
  the rest on the T0/(T+T0) schedule over the run's episodes.

Both PPO arms keep a per-token KL penalty to the frozen zero-shot model with
an adaptive coefficient. Every arm is evaluated on the same evaluation prompts
(mean true score, KL to the reference). Writes ``curves.csv``,
``curves.png``, ``summary.json``, ``samples.md`` and the labels
(``labels-seed*.sqlite``) to ``--out``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import os
import resource
import shutil
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from benchmarks.kit.config import LabelerConfig, defaults_of, with_unset
from benchmarks.kit.flags import add_flags, from_namespace, json_flags
from benchmarks.kit.report import figure, label_shortfall, print_rows, save_figure, write_csv, write_json

OUTPUTS = ("curves.csv", "curves.png", "summary.json", "samples.md")
LABELERS = {"synthetic-oracle": "labels pairs by the task's true score, answering at random with probability --noise",
            "web": "you rank the completions of each prompt in a local web page (URL printed at the start) while "
                   "the policy trains"}


@dataclass(frozen=True)
class TextBenchConfig:
    """Everything a text benchmark run computes from (``--help`` shows the flags, generated from these fields)."""

    task: str = "imdb-positive"
    """TextGen task: the prompt source and the true scorer."""
    model: str = "SmolLM2-135M-Instruct"
    """Policy LM: a name, a local transformers directory, a .gguf file, or "tiny" (random 2-layer model, tests)."""
    iterations: int = 80
    """PPO updates per arm (each on one rollout batch)."""
    batch_size: int = 16
    """Completions per rollout: batch_size / rank_k prompts, rank_k completions each (compared with each other)."""
    rank_k: int = 2
    """Completions per query: 2 = a pair; K > 2 = the oracle ranks K completions of a prompt (InstructGPT),
    giving C(K, 2) pairwise labels; --labels then counts rankings."""
    max_new_tokens: int = 20
    """Tokens generated per completion (fewer if the model ends with EOS)."""
    prompt_tokens: tuple[int, int] = (8, 16)
    """Prompt length range in tokens (first tokens of a review); with --prompt-file, MAX bounds each line."""
    prompt_file: Path | None = field(default=None, metadata={"metavar": "FILE"})
    """Prompts from this UTF-8 file, one per line, each used whole instead of the task's IMDB reviews (the task
    still scores the completions; SFT and PPO-ptx text stay the reviews). Every line must be non-empty and fit
    --prompt-tokens MAX tokens."""
    labels: int = 500
    """Label budget of the learned arm."""
    reward_model: Literal["finetune", "frozen"] = "finetune"
    """Learned reward model: finetune (MiniLM fine-tuned on the comparisons, 3 heads) or frozen (MLP heads on
    frozen MiniLM embeddings)."""
    round_completions: int = 128
    """Labels are gathered and the reward model refit every N completions (8 rollouts at the defaults)."""
    initial_fit_steps: int = 120
    """Reward-model gradient steps on the labels of the zero-shot model."""
    refit_steps: int = 30
    """Gradient steps of each later refit (warm start)."""
    noise: float = 0.1
    """Probability that the synthetic oracle answers at random."""
    query: Literal["disagreement", "entropy", "random"] = "disagreement"
    """Query selection: disagreement, entropy or random."""
    pool_factor: int = 2
    """Candidate queries per wanted label for the initial batch, from the zero-shot model."""
    pool_rollouts: int = 32
    """After the initial batch, candidates are the unlabeled groups of the last N rollouts, and the learned
    reward is normalised over their completions."""
    eval_prompts: int = 64
    """Evaluation prompts (reset seeds disjoint from training) every arm is scored on."""
    lr: float = 1e-4
    """PPO learning rate (top --train-layers blocks + value head)."""
    train_layers: int = 4
    """Transformer blocks trained from the top (0 = all)."""
    init_kl_coef: float = 0.05
    """Starting KL coefficient beta."""
    target_kl: float = 4.0
    """Per-sequence KL target of the adaptive controller, in nats (> 0)."""
    fixed_kl: bool = False
    """Keep the KL coefficient at --init-kl-coef for the whole run (no adaptive controller; --target-kl unused)."""
    min_kl_coef: float = 0.0
    """Lowest KL coefficient the adaptive controller may set (0 = none): keeps beta from winding down while the
    policy has not moved yet, so it is there when the KL passes the target."""
    sft_steps: int = 0
    """Supervised fine-tuning steps on the task's review text before PPO (InstructGPT step 1; 0 = off). When on,
    the SFT model is a third evaluated arm, both PPO arms start from it and it is their KL reference. Off by
    default: 150 steps take ~7 min on 2 cores and lower the held-out loss by ~5%."""
    ptx_coef: float = 0.0
    """PPO-ptx gamma: weight of the LM loss on real review text (0 = off)."""
    reward_std: float = 0.5
    """Std the learned reward is normalised to (zero mean), about the spread of zero-shot VADER scores."""
    seeds: tuple[int, ...] = (0,)
    """Seeds; each runs every arm."""
    device: str = "auto"
    """auto (CUDA when present), cpu or cuda."""


@dataclass(frozen=True)
class TextCommand:
    """The command line of ``python -m benchmarks.textgen``: what the run computes (``bench``), who labels, and
    how the run is carried out (not compared on ``--resume``)."""

    labeling: LabelerConfig = field(default_factory=LabelerConfig, metadata={"nested": True})
    """who labels"""
    bench: TextBenchConfig = field(default_factory=TextBenchConfig, metadata={"nested": True})
    """what the run computes"""
    out: Path | None = field(default=None, metadata={"default_text": "runs/textgen-<task>"})
    """output directory, must not hold another run"""
    quick: bool = False
    """~1-minute smoke run (3 iterations of 4 completions, 6 labels, 8 tokens)"""
    resume: bool = False
    """continue the interrupted run in --out from its last checkpoints (give the run's own flags); finished seeds
    and arms are kept, labels already in the store are never asked again"""
    tensorboard: Path | None = field(default=None, metadata={"metavar": "DIR"})
    """also log every PPO update to TensorBoard in DIR/<arm>-seed<k>: true score, KL, beta and, for the learned
    arm, labels, RM accuracy, reward correlation, fit time (pip install tensorboard)"""
    checkpoint_minutes: float = 10.0
    """also checkpoint an arm after any iteration this long after its last checkpoint (the learned arm also
    checkpoints after each label round)"""


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m benchmarks.textgen``, generated from :class:`TextCommand`."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.textgen",
        description="Token-level PPO on TextGen-v0: zero-shot vs PPO on the true score vs PPO on a reward "
                    "learned from synthetic preferences. Writes curves.csv, curves.png, summary.json, samples.md.",
    )
    add_flags(p, TextCommand)
    return p


ARMS = ("true", "learned")  # the PPO arms, in the order they run
TB_TAGS = {"true_score": "rollout/true_score", "kl": "ppo/kl", "beta": "ppo/beta", "labels": "pref/labels",
           "rm_accuracy": "pref/rm_accuracy", "reward_correlation": "pref/reward_correlation"}
"""TensorBoard tag of each curve column (``--tensorboard``); the learned arm adds ``pref/fit_seconds``."""
QUICK = dict(iterations=3, batch_size=4, max_new_tokens=8, labels=6, eval_prompts=4, round_completions=4,
             initial_fit_steps=5, refit_steps=2)


def parse_config(argv: list[str] | None) -> tuple[TextBenchConfig, Path, "RunOptions"]:
    """The run's frozen config, its output directory and how it is carried out, from the command line.

    ``--quick`` and the resolved device each give a new config (explicit flags win over ``--quick``);
    bad input exits with status 2 and one line.
    """
    parser = build_parser()
    cmd = from_namespace(TextCommand, parser.parse_args(argv))
    from benchmarks.kit.validate import labeler_problem

    cfg, lab = cmd.bench, cmd.labeling
    problem = labeler_problem(lab, 1 if lab.labeler != "web" else len(cfg.seeds))
    if lab.labeler is None:
        names = "\n".join(f"  --labeler {k}: {v}" for k, v in LABELERS.items())
        parser.exit(2, f"prefrl: choose a labeler (--synthetic-oracle is short for --labeler synthetic-oracle); "
                       f"available:\n{names}\n")
    if problem:
        parser.exit(2, f"prefrl: error: {problem}\n")
    if cmd.quick:
        k = max(cmd.bench.rank_k, 2)  # --quick's 4 completions a round as whole queries of --rank-k, at least 2
        quick = dict(QUICK, batch_size=k * max(2, -(-QUICK["batch_size"] // k)))
        cmd, _ = with_unset(cmd, quick, defaults_of(parser.get_default, cmd))
        cfg = cmd.bench
    fail = lambda msg: parser.exit(2, f"prefrl: error: {msg}\n")  # noqa: E731
    from envs.text_tasks import TEXT_TASKS

    if cfg.task not in TEXT_TASKS:
        fail(f"unknown task {cfg.task!r}; choose one of {', '.join(sorted(TEXT_TASKS))}")
    for name in ("iterations", "max_new_tokens", "eval_prompts", "pool_rollouts", "round_completions",
                 "initial_fit_steps", "refit_steps", "pool_factor"):
        if getattr(cfg, name) < 1:
            fail(f"--{name.replace('_', '-')} must be >= 1, got {getattr(cfg, name)}")
    if not 1 <= cfg.prompt_tokens[0] <= cfg.prompt_tokens[1]:
        fail(f"--prompt-tokens must be two lengths 1 <= MIN <= MAX, got {cfg.prompt_tokens[0]} {cfg.prompt_tokens[1]}")
    if cfg.rank_k < 2:
        fail(f"--rank-k must be >= 2 (completions compared per query), got {cfg.rank_k}")
    if cfg.batch_size < cfg.rank_k or cfg.batch_size % cfg.rank_k:
        fail(f"--batch-size must be a multiple of --rank-k={cfg.rank_k} (that many completions per prompt), "
             f"got {cfg.batch_size}")
    if cfg.labels < 1:
        fail(f"--labels must be >= 1, got {cfg.labels}")
    groups = cfg.iterations * cfg.batch_size // cfg.rank_k
    later = cfg.labels - max(round(0.25 * cfg.labels), 1)  # the first 25% come from the zero-shot pool
    if later > groups:
        fail(f"--labels {cfg.labels}: the {later} labels due during training exceed the {groups} queries the "
             f"run generates (--iterations x --batch-size / --rank-k): lower --labels or raise --iterations")
    if not 0.0 <= cfg.noise <= 1.0:
        fail(f"--noise must be in [0, 1], got {cfg.noise}")
    if cfg.sft_steps < 0:
        fail(f"--sft-steps must be >= 0, got {cfg.sft_steps}")
    from benchmarks.checks import finite_problem, out_problem, seeds_problem

    problem = seeds_problem(cfg.seeds) or finite_problem(lr=cfg.lr, init_kl_coef=cfg.init_kl_coef,
                                                         target_kl=cfg.target_kl, ptx_coef=cfg.ptx_coef,
                                                         reward_std=cfg.reward_std)
    if problem:
        fail(problem)
    if cfg.target_kl <= 0:
        fail(f"--target-kl must be > 0 (nats per completion), got {cfg.target_kl}; for a fixed KL coefficient "
             "give --fixed-kl (beta stays at --init-kl-coef)")
    if cfg.lr <= 0 or cfg.train_layers < 0 or cfg.init_kl_coef < 0 or cfg.ptx_coef < 0:
        fail("--lr must be > 0 and --train-layers, --init-kl-coef, --ptx-coef >= 0")
    if not (math.isfinite(cfg.min_kl_coef) and cfg.min_kl_coef >= 0):
        fail(f"--min-kl-coef must be a finite number >= 0 (0 = no floor), got {cfg.min_kl_coef}")
    if cfg.prompt_file is not None:
        problem = prompt_file_problem(cfg.prompt_file)
        if problem:
            fail(problem)
    from envs.text_models import model_source_problem

    problem = None if cfg.model == "tiny" else model_source_problem(cfg.model)
    if problem:
        fail(f"cannot load --model: {problem}")
    if cfg.reward_std <= 0:
        fail(f"--reward-std must be a positive number, got {cfg.reward_std}")
    try:
        from agents.factory import resolve_device

        cfg = dataclasses.replace(cfg, device=resolve_device(cfg.device))
    except ValueError as err:
        fail(str(err))
    if cmd.resume and cmd.out is None:
        fail("--resume needs --out: the directory of the run to continue")
    if not (math.isfinite(cmd.checkpoint_minutes) and cmd.checkpoint_minutes > 0):
        fail(f"--checkpoint-minutes must be a positive number, got {cmd.checkpoint_minutes}")
    if cmd.tensorboard is not None:
        import importlib.util

        if importlib.util.find_spec("tensorboard") is None:
            fail("--tensorboard needs the tensorboard package: pip install tensorboard (or pip install 'prefrl[tensorboard]')")
        problem = out_problem(cmd.tensorboard)
        if problem:
            fail(problem.replace("--out", "--tensorboard", 1))
    out = cmd.out or Path(f"runs/textgen-{cfg.task}")
    taken = [f for f in (*OUTPUTS, *(f"labels-seed{s}.sqlite" for s in cfg.seeds), RUN_FILE) if (out / f).exists()]
    if taken and not cmd.resume:
        fail(f"--out {out} already holds another run's {', '.join(taken)}; nothing was overwritten: give a new --out"
             + (" (or add --resume to continue it)" if RUN_FILE in taken else ""))
    problem = out_problem(out)
    if problem:
        fail(problem)
    if cmd.resume:
        problem = resume_problem(out, cfg)
        if problem:
            fail(problem)
    return cfg, out, RunOptions(resume=cmd.resume, checkpoint_seconds=60.0 * cmd.checkpoint_minutes,
                                tensorboard=cmd.tensorboard, labeler=lab.labeler, web_host=lab.web_host,
                                web_port=lab.web_port, label_timeout=lab.label_timeout, on_timeout=lab.on_timeout,
                                min_answered_share=lab.min_answered_share, repeat_share=lab.repeat_share)


# ---------------------------------------------------------------- resume

RUN_FILE = "run.json"
"""The config of a run, written when it starts; ``--resume`` refuses a config that differs from it."""


@dataclass(frozen=True)
class RunOptions:
    """How a run is carried out (not what it computes: left out of run.json and the comparison)."""

    resume: bool = False
    """Continue the run in --out from its checkpoints."""
    checkpoint_seconds: float = 600.0
    """An arm is checkpointed after any iteration this long after its last checkpoint."""
    tensorboard: Path | None = None
    """Directory for TensorBoard event files (one subdirectory per arm and seed), or None."""
    labeler: str = "synthetic-oracle"
    """``synthetic-oracle`` or ``web`` (people answer in the page; the run goes on meanwhile)."""
    web_host: str = "127.0.0.1"
    web_port: int = 0
    label_timeout: float = 300.0
    on_timeout: str = "requeue"
    min_answered_share: float = 0.5
    """--labeler web: share of the queries due that must be answered before the policy goes on."""
    repeat_share: float = 0.0
    """--labeler web: share of answered queries asked once more, to measure agreement."""


def _run_config(cfg: TextBenchConfig) -> dict:
    return json_flags(cfg, {"device"})


def resume_problem(out: Path, cfg: TextBenchConfig) -> str | None:
    """Why ``--resume`` cannot continue the run in ``out`` with this config, or None."""
    path = out / RUN_FILE
    if not path.exists():
        return f"--resume: {out} holds no run to continue ({RUN_FILE} is missing); start it without --resume"
    from benchmarks.checks import flags_differ

    saved = {"fixed_kl": False, "min_kl_coef": 0.0,  # runs before these flags: adaptive, no floor
             **json.loads(path.read_text())["config"]}
    differ = flags_differ(saved, _run_config(cfg))
    if differ:
        return f"--resume: the flags differ from the run in {out}: {'; '.join(differ)}; give the same flags"
    return None


class SeedCheckpoint:
    """Checkpoints of one seed's run, in ``<out>/checkpoints/seed<k>/``, each file replaced atomically.

    ``pre.pt``: zero-shot evaluation, rollout speeds, SFT metrics and model (the trained
    tensors only) and the torch RNG state after them. ``<arm>.pt``: an arm in progress
    (``LMPPO.state_dict``, ``TextPreferenceLoop.state_dict``, curve rows, counters, RNG
    states, next iteration). ``<arm>.result.pt``: a finished arm. ``<arm>.reached``: the
    last iteration an arm completed (to count the iterations a resume redoes).
    """

    def __init__(self, out: Path, seed: int):
        self.root = out / "checkpoints" / f"seed{seed}"

    def path(self, name: str) -> Path:
        return self.root / name

    def load(self, name: str):
        import torch

        p = self.path(name)
        return torch.load(p, weights_only=False) if p.exists() else None

    def save(self, name: str, obj) -> None:
        import torch

        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{name}.tmp-{os.getpid()}"
        torch.save(obj, tmp)
        os.replace(tmp, self.path(name))  # a kill leaves the old file or the new one, never half of one

    def reached(self, arm: str) -> int:
        p = self.path(f"{arm}.reached")
        return int(p.read_text()) if p.exists() else 0

    def set_reached(self, arm: str, it: int) -> None:
        tmp = self.root / f".{arm}.reached.tmp-{os.getpid()}"
        tmp.write_text(str(it))
        os.replace(tmp, self.path(f"{arm}.reached"))


# ---------------------------------------------------------------- pieces


MAX_PROMPT_CHARS = 4000
"""Longest --prompt-file line read, in characters: far more than --prompt-tokens allows, so a longer line means
the file is not one prompt per line."""


def read_prompt_file(path: Path) -> list[str]:
    """The prompts of a --prompt-file: its lines, without their line ends (a last empty line is ignored)."""
    return path.read_text(encoding="utf-8").splitlines()


def prompt_file_problem(path: Path) -> str | None:
    """What is wrong with a --prompt-file, from its text alone (the token lengths are checked once the
    tokenizer is loaded, by :func:`prompt_token_problem`), or None."""
    try:
        lines = read_prompt_file(path)
    except FileNotFoundError:
        return f"--prompt-file {path} does not exist; give a UTF-8 text file with one prompt per line"
    except IsADirectoryError:
        return f"--prompt-file {path} is a directory; give a UTF-8 text file with one prompt per line"
    except UnicodeDecodeError as err:
        return f"--prompt-file {path} is not UTF-8 text (byte {err.start}); save it as UTF-8, one prompt per line"
    except OSError as err:
        return f"--prompt-file {path} cannot be read ({err.strerror or err})"
    if not lines:
        return f"--prompt-file {path} is empty; give one prompt per line"
    for i, line in enumerate(lines, 1):
        if not line.strip():
            return f"--prompt-file {path}: line {i} is empty; remove it (one prompt per line, none blank)"
        if len(line) > MAX_PROMPT_CHARS:
            return (f"--prompt-file {path}: line {i} has {len(line):,} characters, over {MAX_PROMPT_CHARS:,}; "
                    "a prompt must fit --prompt-tokens MAX tokens: shorten it, or is the file not one prompt per line?")
    return None


def prompt_token_problem(cfg: "TextBenchConfig", tokenizer) -> str | None:
    """The first --prompt-file line longer than --prompt-tokens MAX tokens (prompts from a file are used whole)."""
    limit = cfg.prompt_tokens[1]
    for i, line in enumerate(read_prompt_file(cfg.prompt_file), 1):
        n = len(tokenizer.encode(line, add_special_tokens=False))
        if n > limit:
            return (f"--prompt-file {cfg.prompt_file}: line {i} is {n} tokens, over --prompt-tokens MAX={limit}; "
                    f"raise it (--prompt-tokens {cfg.prompt_tokens[0]} {n}) or shorten the line")
    return None


def load_policy(name: str):
    from envs.text_models import load_causal_lm, tiny_causal_lm

    if name == "tiny":
        return tiny_causal_lm()
    return load_causal_lm(name)


def make_envs(cfg: TextBenchConfig, tokenizer, n: int):
    """``n`` TextGen envs of the task; with --prompt-file its lines are the prompts, used whole."""
    from envs.textgen import TextGenEnv

    if cfg.prompt_file is None:
        return [TextGenEnv(cfg.task, tokenizer=tokenizer, max_new_tokens=cfg.max_new_tokens,
                           prompt_tokens=cfg.prompt_tokens) for _ in range(n)]
    prompts = read_prompt_file(cfg.prompt_file)
    return [TextGenEnv(cfg.task, tokenizer=tokenizer, max_new_tokens=cfg.max_new_tokens, task_kwargs={"prompts": prompts},
                       prompt_tokens=cfg.prompt_tokens[1])  # every line fits MAX tokens (checked): used whole
            for _ in range(n)]


def make_ppo(cfg: TextBenchConfig, base_model, tokenizer, seed: int):
    from agents.lm_ppo import LMPPO, LMPPOConfig

    pcfg = LMPPOConfig(lr=cfg.lr, train_layers=cfg.train_layers or None, init_kl_coef=cfg.init_kl_coef,
                       target_kl=None if cfg.fixed_kl else cfg.target_kl,
                       kl_coef_floor=cfg.min_kl_coef, ptx_coef=cfg.ptx_coef, seed=seed,
                       minibatch_size=min(8, cfg.batch_size))
    return LMPPO(copy.deepcopy(base_model), tokenizer, pcfg, device=cfg.device, ref_model=base_model)


def make_loop(cfg: TextBenchConfig, seed: int, out: Path, tokenizer, opts: "RunOptions | None" = None):
    """The learned arm's core loop: text RM, SQLite store of texts, synthetic oracle, schedule."""
    import torch

    from prefrl import SyntheticOracle, TextLoopConfig, TextPreferenceLoop
    from prefrl.text_reward import make_text_reward_model, text_width

    torch.manual_seed(seed)
    width = text_width(tokenizer, max(cfg.prompt_tokens[1], cfg.max_new_tokens))
    loop_cfg = TextLoopConfig(labels=cfg.labels, total_completions=cfg.iterations * cfg.batch_size, rank_k=cfg.rank_k,
                              query=cfg.query, pool_rollouts=cfg.pool_rollouts,
                              round_completions=cfg.round_completions, initial_steps=cfg.initial_fit_steps,
                              refit_steps=cfg.refit_steps, reward_std=cfg.reward_std, seed=seed)
    rm = make_text_reward_model(cfg.reward_model, width).to(cfg.device)
    labeler = SyntheticOracle(noise=cfg.noise, seed=seed)
    if opts is not None and opts.labeler == "web":  # queries wait in the store's file; people answer in the page
        from prefrl import LabelQueue, PreferenceStore, QueueLabeler
        from prefrl.text_reward import completion_media

        store = PreferenceStore(out / f"labels-seed{seed}.sqlite", seed=seed)
        queue = LabelQueue(store, timeout_s=opts.label_timeout, on_timeout=opts.on_timeout,
                           repeat_share=opts.repeat_share)
        loop_cfg = dataclasses.replace(loop_cfg, min_answered_share=opts.min_answered_share)
        return TextPreferenceLoop(rm, QueueLabeler(queue, completion_media), loop_cfg, store=store)
    return TextPreferenceLoop.with_store_file(out / f"labels-seed{seed}.sqlite", rm, labeler, loop_cfg)


def train_seeds(seed: int, it: int, batch: int, k: int = 2) -> list[int]:
    """Reset seeds of one rollout: k envs per prompt (compared completions share a prompt), disjoint from eval."""
    return [1_000_000 * (seed + 1) + it * batch + i // k for i in range(batch)]


def eval_seeds(n: int) -> list[int]:
    return [10_000 + i for i in range(n)]


def evaluate(ppo, envs, cfg: TextBenchConfig) -> dict:
    """Mean true score and KL to the reference on the evaluation prompts (the same for every arm).

    Evaluation episodes use reset seeds disjoint from training; the prompts are
    drawn from the same 25k reviews, so a prompt can recur by chance.
    """
    seeds = eval_seeds(cfg.eval_prompts)
    scores, kls, samples = [], [], []
    B = len(envs)
    for s in range(0, len(seeds), B):
        chunk = seeds[s : s + B]
        ro = ppo.rollout(envs[: len(chunk)], chunk)
        sc = ppo.score_rollout(ro)
        kl = ((sc["logp"] - sc["ref_logp"]) * ro.response_mask).sum(1)
        scores += ro.true_scores.tolist()
        kls += kl.tolist()
        samples += list(zip(ro.prompts, ro.completions, ro.true_scores.tolist()))
    return {"score": sum(scores) / len(scores), "kl": sum(kls) / len(kls), "samples": samples}


def run_sft(cfg: TextBenchConfig, base_model, tokenizer, envs, seed: int):
    """Fine-tunes a copy of the model on the task's review text; returns it and its metrics + evaluation."""
    from agents.lm_sft import SFTConfig, sft_texts, supervised_finetune

    scfg = SFTConfig(steps=cfg.sft_steps, train_layers=cfg.train_layers or None, seed=seed)
    train, held_out = sft_texts(cfg.task, scfg.steps * scfg.batch_size, scfg.eval_texts, seed=seed)
    model = copy.deepcopy(base_model)
    metrics = supervised_finetune(model, tokenizer, train, held_out, scfg, device=cfg.device)
    for p in model.parameters():
        p.requires_grad_(False)
    ev = evaluate(make_ppo(cfg, model, tokenizer, seed), envs, cfg)
    return model, {**{k: v for k, v in metrics.items() if k != "sft/curve"}, **ev}


# ---------------------------------------------------------------- arms


def _pre_phase(cfg: TextBenchConfig, seed: int, base_model, tokenizer, envs, bar, ck: SeedCheckpoint, opts):
    """Zero-shot evaluation, rollout speeds and the SFT step; kept in ``pre.pt`` and reloaded by a resume."""
    import torch

    pre = ck.load("pre.pt") if opts.resume else None
    if pre is not None:
        if pre["sft_params"] is not None:
            base_model = copy.deepcopy(base_model)
            params = dict(base_model.named_parameters())
            with torch.no_grad():
                for n, t in pre["sft_params"].items():
                    params[n].copy_(t)
        torch.set_rng_state(pre["rng"])
        bar.update(1)
        return base_model, pre["result"]
    result: dict = {}
    zero = make_ppo(cfg, base_model, tokenizer, seed)
    result["zero_shot"] = evaluate(zero, envs, cfg)
    bar.update(1)
    sft_params = None
    if cfg.sft_steps:  # InstructGPT step 1: PPO starts from the SFT model and is held near it
        before = {n: p.detach().clone() for n, p in base_model.named_parameters()}
        base_model, result["sft"] = run_sft(cfg, base_model, tokenizer, envs, seed)
        sft_params = {n: p.detach().cpu().clone() for n, p in base_model.named_parameters()
                      if not torch.equal(p, before[n])}
        bar.write(f"  seed {seed} SFT: held-out loss {result['sft']['sft/eval_loss_before']:.3f} -> "
                  f"{result['sft']['sft/eval_loss_after']:.3f}, score {result['sft']['score']:+.3f}")
    # Rollout speed of our KV-cached loop vs transformers' generate, same batch and length.
    ro = zero.rollout(envs, train_seeds(seed, -1, cfg.batch_size))
    gen_s, gen_tok = zero.generate_baseline(ro)
    ro2 = zero.rollout(envs, train_seeds(seed, -1, cfg.batch_size))
    result["rollout_tokens_per_second"] = ro2.gen_tokens / ro2.gen_seconds
    result["generate_tokens_per_second"] = gen_tok / gen_s
    ck.save("pre.pt", {"result": result, "sft_params": sft_params, "rng": torch.get_rng_state()})
    return base_model, result


def run_seed(cfg: TextBenchConfig, seed: int, out: Path, base_model, tokenizer, bar,
             opts: RunOptions = RunOptions()) -> dict:
    import torch

    from agents.lm_ppo import ptx_batch_from_texts
    from prefrl import pearson

    torch.manual_seed(seed)
    ck = SeedCheckpoint(out, seed)
    envs = make_envs(cfg, tokenizer, cfg.batch_size)
    rows: list[dict] = []
    base_model, pre = _pre_phase(cfg, seed, base_model, tokenizer, envs, bar, ck, opts)
    result: dict = {"seed": seed, **pre, "resumed": []}

    ptx_texts = None
    if cfg.ptx_coef > 0:
        from envs.text_tasks import make_text_task

        task = make_text_task(cfg.task)
        ptx_texts = [task.prompt(i) for i in range(min(task.num_prompts(), 4096))]

    for arm in ARMS:
        done = ck.load(f"{arm}.result.pt") if opts.resume else None
        if done is not None:  # finished before the interruption: kept as it was
            result[arm] = done["result"]
            rows += done["rows"]
            torch.set_rng_state(done["rng"])
            bar.update(cfg.iterations + 1)
            bar.write(f"  seed {seed} {arm}: finished before the interruption; kept")
            continue
        state = ck.load(f"{arm}.pt") if opts.resume else None
        store_path = out / f"labels-seed{seed}.sqlite"
        if opts.resume and state is None and arm == "learned" and store_path.exists():
            # Died before its first checkpoint: its labels are kept aside, the arm starts again.
            aside = store_path.with_name(f"labels-seed{seed}.before-resume-{int(time.time())}.sqlite")
            store_path.rename(aside)
            bar.write(f"  seed {seed} learned: no checkpoint yet; its earlier labels are kept in {aside.name}")
        ppo = make_ppo(cfg, base_model, tokenizer, seed)
        lr = make_loop(cfg, seed, out, tokenizer, opts) if arm == "learned" else None
        server = None
        waiting = [0]  # --min-answered-share: answers the policy waits for now (shown on the page)
        if lr is not None and lr.is_async:
            from envs.text_tasks import make_text_task
            from prefrl.web import serve

            lr_task = make_text_task(cfg.task)

            server = serve(lr.labeler.queue, host=opts.web_host, port=opts.web_port, print_url=False,
                           progress=lambda: {"labels_due": max(0, lr.schedule.due(episodes_seen[0]) - lr.labels_used),
                                             "labels_budget": cfg.labels, "labels_counted": lr.labels_used,
                                             "task": cfg.task, "waiting_for_labels": waiting[0],
                                             "instructions": lr_task.instructions})  # never the true score
            bar.write(f"  seed {seed} learned: label at {server.url}\n    open it in a browser, type your name, "
                      "and rank the completions of each prompt by how well they do the task; the policy trains "
                      "meanwhile")
            sys.stdout.flush()
        episodes_seen, arm_rows_ref = [0], [[]]
        arm_rows: list[dict] = []
        episodes, fresh, start = 0, [], 0
        times = {"gen_time": 0.0, "gen_tokens": 0.0, "train_time": 0.0, "train_tokens": 0.0, "elapsed": 0.0}
        ptx_gen = torch.Generator().manual_seed(seed)  # the same pretraining batches in both arms
        if state is not None:
            ppo.load_state_dict(state["ppo"])
            if lr is not None:
                lr.load_state_dict(state["loop"])
            arm_rows, episodes, fresh, start = state["rows"], state["episodes"], state["fresh"], state["next"]
            times = dict(state["times"])
            ptx_gen.set_state(state["ptx_rng"])
            torch.set_rng_state(state["rng"])
            redone = max(0, ck.reached(arm) - start)
            result["resumed"].append({"arm": arm, "from_iteration": start, "iterations_redone": redone})
            bar.update(start)
            bar.write(f"  seed {seed} {arm}: resumed from its checkpoint at iteration {start} "
                      f"({redone} iteration(s) redone)")
        t_arm = time.perf_counter() - times["elapsed"]
        reset_peak_rss()

        def checkpoint(next_it: int) -> None:
            times["elapsed"] = time.perf_counter() - t_arm
            ck.save(f"{arm}.pt", {"ppo": ppo.state_dict(), "loop": lr.state_dict() if lr is not None else None,
                                  "rows": arm_rows, "episodes": episodes, "fresh": fresh, "next": next_it,
                                  "times": times, "ptx_rng": ptx_gen.get_state(), "rng": torch.get_rng_state()})

        if lr is not None and state is None:
            n0 = lr.schedule.initial_labels
            for k in range(math.ceil(cfg.pool_factor * n0 / (cfg.batch_size // cfg.rank_k))):
                ro = ppo.rollout(envs, train_seeds(seed, 10_000 + k, cfg.batch_size, cfg.rank_k))
                lr.add_rollout(ro.prompts, ro.completions, ro.true_scores)  # candidates from the zero-shot model
            lr.label_due(0)
            bar.write(f"  seed {seed} learned: {lr.labels_used} initial labels, RM held-out accuracy "
                      f"{lr.metrics['rm/val_accuracy']:.3f} ({lr.metrics['rm/fit_seconds']:.0f} s)")
            checkpoint(0)
        last_ckpt = time.perf_counter()
        writer = None
        if opts.tensorboard is not None:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step: after a resume, the iterations past the checkpoint are logged again, not twice
            writer = SummaryWriter(str(opts.tensorboard / f"{arm}-seed{seed}"), purge_step=start + 1 if start else None)
        for it in range(start, cfg.iterations):
            ro = ppo.rollout(envs, train_seeds(seed, it, cfg.batch_size, cfg.rank_k))
            times["gen_time"] += ro.gen_seconds
            times["gen_tokens"] += ro.gen_tokens
            episodes += len(ro.prompts)
            episodes_seen[0], arm_rows_ref[0] = episodes, arm_rows
            row = {"iteration": it + 1, "episodes": episodes, "run": arm, "seed": seed,
                   "true_score": float(ro.true_scores.mean()), "labels": "", "rm_accuracy": "",
                   "reward_correlation": ""}
            labeled = 0
            if lr is not None:
                segs = lr.add_rollout(ro.prompts, ro.completions, ro.true_scores)
                score, raw = lr.reward(segs)
                fresh.append((raw, ro.true_scores))  # scored before any of these pairs is labeled
                fresh = fresh[-10:]
                row["reward_correlation"] = pearson(torch.cat([f[0] for f in fresh]), torch.cat([f[1] for f in fresh]))
                labeled = lr.label_due(episodes)
                if lr.labels_short(episodes):
                    waiting[0] = lr.labels_short(episodes)
                    checkpoint(it)  # nothing answered is lost if the run is stopped while it waits

                    def say(st: dict) -> None:
                        waiting[0] = st["short"]
                        bar.write(f"  seed {seed} learned: waiting for labels: {st['short']} more answers needed "
                                  f"before the policy goes on ({st['labels_used']} answered, --min-answered-share "
                                  f"{opts.min_answered_share}); waited {st['waited_seconds']:.0f} s")

                    labeled += lr.wait_for_labels(episodes, on_wait=say)
                    waiting[0] = 0
                row["labels"] = lr.labels_used
                row["rm_accuracy"] = lr.metrics["rm/val_accuracy"]
            else:
                score = ro.true_scores
            ptx = None
            if ptx_texts is not None:
                pick = torch.randint(len(ptx_texts), (cfg.batch_size,), generator=ptx_gen).tolist()
                ptx = ptx_batch_from_texts(tokenizer, [ptx_texts[i] for i in pick])
            m = ppo.update(ro, score, ptx)
            times["train_time"] += m["ppo/seconds"]
            times["train_tokens"] += float(ro.response_mask.sum()) * ppo.config.ppo_epochs
            row.update(kl=m["kl/mean"], beta=m["kl/beta"], wall_seconds=time.perf_counter() - t_arm)
            arm_rows.append(row)
            if writer is not None:
                for key, tag in TB_TAGS.items():
                    if row[key] != "":
                        writer.add_scalar(tag, float(row[key]), it + 1)
                if lr is not None:
                    writer.add_scalar("pref/fit_seconds", lr.metrics["rm/fit_seconds"], it + 1)
            ck.set_reached(arm, it + 1)
            if labeled or time.perf_counter() - last_ckpt >= opts.checkpoint_seconds:
                checkpoint(it + 1)
                last_ckpt = time.perf_counter()
            bar.set_postfix_str(f"{arm} score {row['true_score']:+.2f} kl {m['kl/mean']:.1f}")
            bar.update(1)
        if writer is not None:
            writer.close()
        if server is not None:
            server.stop()
            bar.write(f"  seed {seed} learned: labeling page closed; {lr.labels_used} queries answered")
        ev = evaluate(ppo, envs, cfg)
        result[arm] = {
            **ev,
            "rollout_tokens_per_second": times["gen_tokens"] / max(times["gen_time"], 1e-9),
            "train_tokens_per_second": times["train_tokens"] / max(times["train_time"], 1e-9),
            "wall_seconds": time.perf_counter() - t_arm,
            "peak_rss_mb": arm_peak_rss_mb(),
        }
        if lr is not None:
            result[arm].update(labels_used=lr.labels_used, labels_asked=cfg.labels, labels_stored=lr.store.total_added,
                               pairs_labeled=lr.pairs_labeled, label_ties=lr.ties,
                               rm_accuracy=lr.metrics["rm/val_accuracy"],
                               reward_correlation=arm_rows[-1]["reward_correlation"],
                               fit_seconds=lr.metrics["rm/fit_seconds"])
            if lr.is_async:
                result[arm]["team"] = lr.labeler.queue.team()  # per annotator: answers, speed, agreement
            lr.store.close()
        ck.save(f"{arm}.result.pt", {"result": result[arm], "rows": arm_rows, "rng": torch.get_rng_state()})
        ck.path(f"{arm}.pt").unlink(missing_ok=True)
        rows += arm_rows
        bar.update(1)
        ppo = lr = None  # free the arm's model before the next one is built
    result["rows"] = rows
    return result


def reset_peak_rss() -> None:
    """Restarts the kernel's peak-RSS count of this process (Linux >= 4.0), so each arm reports its own peak."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass  # elsewhere the peak stays the process's so far


def arm_peak_rss_mb() -> float:
    """Peak resident memory since :func:`reset_peak_rss` (``VmHWM``), else the process's peak so far."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_memory_mb(device: str) -> dict:
    import torch

    mem = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device.startswith("cuda"):
        mem["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return mem


def summarize(cfg: TextBenchConfig, results: list[dict], wall: float) -> dict:
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    z = mean([r["zero_shot"]["score"] for r in results])
    t = mean([r["true"]["score"] for r in results])
    lrn = mean([r["learned"]["score"] for r in results])
    gain_t, gain_l = t - z, lrn - z
    sft = {}
    if all("sft" in r for r in results):
        sft = {"score_sft": mean([r["sft"]["score"] for r in results]), "kl_sft": mean([r["sft"]["kl"] for r in results]),
               "sft_eval_loss_before": mean([r["sft"]["sft/eval_loss_before"] for r in results]),
               "sft_eval_loss_after": mean([r["sft"]["sft/eval_loss_after"] for r in results]),
               "sft_seconds": mean([r["sft"]["sft/seconds"] for r in results])}
    return {
        **sft,
        "task": cfg.task, "model": cfg.model, "config": asdict(cfg),
        "score_zero_shot": z, "score_true": t, "score_learned": lrn,
        "gain_true": gain_t, "gain_learned": gain_l,
        "gain_ratio": gain_l / gain_t if gain_t > 0 else float("nan"),
        "kl_true": mean([r["true"]["kl"] for r in results]),
        "kl_learned": mean([r["learned"]["kl"] for r in results]),
        "labels_used": mean([r["learned"]["labels_used"] for r in results]),
        "labels_asked": cfg.labels,
        "warnings": label_shortfall([{"seed": r["seed"], **r["learned"]} for r in results]),
        "pairs_labeled": mean([r["learned"]["pairs_labeled"] for r in results]),
        "label_ties": mean([r["learned"]["label_ties"] for r in results]),
        "rm_accuracy": mean([r["learned"]["rm_accuracy"] for r in results]),
        "reward_correlation": mean([r["learned"]["reward_correlation"] for r in results]),
        "rollout_tokens_per_second": mean([r["rollout_tokens_per_second"] for r in results]),
        "generate_tokens_per_second": mean([r["generate_tokens_per_second"] for r in results]),
        "rollout_vs_generate": mean([r["rollout_tokens_per_second"] / r["generate_tokens_per_second"]
                                     for r in results]),
        "train_tokens_per_second": mean([r[a]["train_tokens_per_second"] for r in results for a in ("true", "learned")]),
        "fit_seconds": mean([r["learned"]["fit_seconds"] for r in results]),
        **peak_memory_mb(cfg.device),
        "wall_seconds": wall,
        "score_is": "mean true score of one completion per evaluation prompt",
        "resumed": [{"seed": r["seed"], **x} for r in results for x in r.get("resumed", [])],
        "per_seed": [{k: ({kk: vv for kk, vv in v.items() if kk != "samples"} if isinstance(v, dict) else v)
                      for k, v in r.items() if k not in ("rows", "resumed")} for r in results],
    }


CURVE_COLUMNS = ("iteration", "episodes", "run", "seed", "true_score", "kl", "beta", "labels", "rm_accuracy",
                 "reward_correlation", "wall_seconds")


def write_outputs(out: Path, cfg: TextBenchConfig, results: list[dict], summary: dict) -> None:
    """Writes curves.csv, summary.json, samples.md and curves.png to ``out``."""
    rows = [row for r in results for row in r["rows"]]
    write_csv(out / "curves.csv", rows, CURVE_COLUMNS)
    write_json(out / "summary.json", summary)
    lines = [f"# Sample completions ({cfg.task}, {cfg.model}, seed {results[0]['seed']})", "",
             "Evaluation prompts; one sampled completion per arm; true score in brackets.", ""]
    r0 = results[0]
    for i in range(min(6, len(r0["zero_shot"]["samples"]))):
        prompt = r0["zero_shot"]["samples"][i][0]
        lines += [f"## Prompt {i + 1}", "", f"> {prompt}", ""]
        for arm in ("zero_shot", "sft", "true", "learned") if "sft" in r0 else ("zero_shot", "true", "learned"):
            _, comp, score = r0[arm]["samples"][i]
            text = " ".join(comp.split()) or "(empty)"  # one line per completion
            lines.append(f"- **{arm.replace('_', '-')}** [{score:+.2f}]: {text}")
        lines.append("")
    (out / "samples.md").write_text("\n".join(lines))
    plot(out / "curves.png", rows, summary)


def plot(path: Path, rows: list[dict], summary: dict) -> None:
    """Writes ``curves.png``: training score per arm and seed (and its moving mean), KL, the reward model."""
    fig, (ax1, ax2) = figure()
    seeds = sorted({r["seed"] for r in rows})
    for arm, color in (("learned", "tab:blue"), ("true", "tab:orange")):
        for n, seed in enumerate(seeds):
            pts = [(r["episodes"], r["true_score"], r["kl"]) for r in rows if r["run"] == arm and r["seed"] == seed]
            if not pts:
                continue
            x, y, kl = zip(*pts)
            k = 5  # moving average over 5 rollouts
            smooth = [sum(y[max(0, i - k + 1) : i + 1]) / len(y[max(0, i - k + 1) : i + 1]) for i in range(len(y))]
            first = n == 0
            ax1.plot(x, y, color=color, alpha=0.2)
            ax1.plot(x, smooth, color=color, label=f"PPO on {arm} reward" + (" (each seed)" if len(seeds) > 1 else "")
                     if first else None)
            ax2.plot(x, kl, color=color, ls=":", label=f"KL to reference ({arm})" if first else None)
    ax1.axhline(summary["score_zero_shot"], color="gray", ls="--", label="zero-shot (evaluation prompts)")
    ax1.set_xlabel("episodes (completions)")
    ax1.set_ylabel("true score of training completions (5-rollout mean)")
    ax1.set_title(f"{summary['task']}: {summary['model']}, {summary['labels_used']:.0f} labels")
    ax1.legend()
    learned = [r for r in rows if r["run"] == "learned"]
    if learned:
        x = [r["episodes"] for r in learned]
        ax2.plot(x, [r["rm_accuracy"] for r in learned], ".", color="tab:green", label="RM held-out accuracy")
        ax2.plot(x, [r["reward_correlation"] for r in learned], ".", color="tab:red",
                 label="learned/true correlation (fresh, last 10 rollouts)")
    ax2.set_xlabel("episodes (completions)")
    ax2.set_title("reward model and KL (nats/sequence)")
    ax2.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    save_figure(path, fig)


def print_table(s: dict) -> None:
    """Prints the summary table of a text run."""
    lines = [
        ("true score, zero-shot", f"{s['score_zero_shot']:+.3f}"),
        *([("true score, SFT (held-out loss)", f"{s['score_sft']:+.3f}  ({s['sft_eval_loss_before']:.3f} -> "
                                                 f"{s['sft_eval_loss_after']:.3f})")] if "score_sft" in s else []),
        ("true score, PPO on true score", f"{s['score_true']:+.3f}  (KL {s['kl_true']:.2f})"),
        ("true score, PPO on learned reward", f"{s['score_learned']:+.3f}  (KL {s['kl_learned']:.2f})"),
        ("gain learned / gain true", f"{s['gain_ratio']:.2f}"),
        ("labels used (pairwise labels, ties)", f"{s['labels_used']:.0f} ({s['pairs_labeled']:.0f}, "
                                                f"{s['label_ties']:.0f})"),
        ("RM held-out accuracy", f"{s['rm_accuracy']:.3f}"),
        ("learned/true reward correlation", f"{s['reward_correlation']:.3f}"),
        ("rollout tokens/s (vs generate)", f"{s['rollout_tokens_per_second']:.0f} "
                                           f"({s['rollout_vs_generate']:.2f}x of {s['generate_tokens_per_second']:.0f})"),
        ("training tokens/s", f"{s['train_tokens_per_second']:.0f}"),
        ("peak memory", f"{s['peak_rss_mb']:.0f} MB RSS" + (f", {s['peak_cuda_mb']:.0f} MB CUDA" if 'peak_cuda_mb' in s else "")),
        *[(f"{arm} arm: time, peak memory", f"{r[arm]['wall_seconds'] / 60:.1f} min, {r[arm]['peak_rss_mb']:.0f} MB RSS "
           f"(seed {r['seed']})") for r in s["per_seed"] for arm in ARMS if "peak_rss_mb" in r[arm]],
        ("wall time", f"{s['wall_seconds'] / 60:.1f} min"),
        *[(f"resumed (seed {x['seed']})", f"the {x['arm']} arm from iteration {x['from_iteration']}, "
           f"{x['iterations_redone']} redone") for x in s.get("resumed", [])],
    ]
    print_rows(f"{s['task']} ({s['model']}, {s['config']['iterations']} PPO updates x {s['config']['batch_size']} "
               f"completions, seeds {list(s['config']['seeds'])}, {s['config']['device']})", lines)
    for w in s.get("warnings", []):
        print(f"warning: {w}")


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    cfg, out, opts = parse_config(argv)
    from tqdm import tqdm

    try:
        base_model, tokenizer = load_policy(cfg.model)
    except (FileNotFoundError, OSError, ValueError) as err:
        print(f"prefrl: error: cannot load --model {cfg.model!r}: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    problem = None if cfg.prompt_file is None else prompt_token_problem(cfg, tokenizer)
    if problem:
        print(f"prefrl: error: {problem}", file=sys.stderr)
        try:
            out.rmdir()  # only the empty directory the --out check made; a run's files stay
        except OSError:
            pass
        raise SystemExit(2)
    out.mkdir(parents=True, exist_ok=True)
    if not opts.resume:
        (out / RUN_FILE).write_text(json.dumps({"config": _run_config(cfg)}, indent=2) + "\n")
    t0 = time.perf_counter()
    total = len(cfg.seeds) * (3 + 2 * cfg.iterations)
    results = []
    bar = tqdm(total=total, desc="textgen", unit="step", dynamic_ncols=True)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)  # `kill` stops the run as Ctrl-C does
    try:
        for seed in cfg.seeds:
            results.append(run_seed(cfg, seed, out, base_model, tokenizer, bar, opts))
    except KeyboardInterrupt:
        bar.close()
        print(f"\nprefrl: interrupted; the labels gathered so far are kept in {out}/labels-seed*.sqlite; "
              f"add --resume (same flags) to continue from the last checkpoints", file=sys.stderr)
        raise SystemExit(130) from None
    except BaseException:
        bar.close()
        from benchmarks.checks import remove_empty_stores

        removed = remove_empty_stores(out, [f"labels-seed{s}.sqlite" for s in cfg.seeds])
        if removed:  # so that the same --out can be used again
            print(f"prefrl: removed the empty label store(s) {', '.join(removed)} of this failed run", file=sys.stderr)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    bar.close()
    summary = summarize(cfg, results, time.perf_counter() - t0)
    write_outputs(out, cfg, results, summary)
    shutil.rmtree(out / "checkpoints", ignore_errors=True)  # the outputs are complete: nothing left to resume
    print_table(summary)
    print(f"\nwrote {', '.join(OUTPUTS)} to {out}")
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
