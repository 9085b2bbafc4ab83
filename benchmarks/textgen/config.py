"""The text benchmark's flags and frozen config, ``--quick``, ``--resume`` checks and ``--prompt-file`` checks."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal, NoReturn

from benchmarks.kit.config import RUN_FILE, LabelerConfig, QueryMethod, with_unset
from benchmarks.kit.flags import failure, flat_fields, json_flags, parse

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
    group_size: int = 0
    """Completions per prompt in each rollout (0 = --rank-k). With pairs, G > 2 makes every pair of a prompt's G
    completions a query candidate (C(G, 2) per prompt), so the query method can pick two that differ: for tasks
    where the start policy rarely scores (most pairs tie). The zero-shot candidate pool keeps its size in
    completions (--pool-factor x initial labels x 2)."""
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
    query: QueryMethod = "disagreement"
    """Query selection: disagreement, entropy, gap (the ensemble's mean return gap plus its spread: finds the rare
    pairs that differ once the model has seen a few, for tasks where most pairs tie) or random."""
    pool_factor: int = 2
    """Candidate queries per wanted label for the initial batch, from the zero-shot model."""
    pool_temperatures: tuple[float, ...] = (1.0,)
    """Sampling temperatures of the zero-shot candidates the initial labels are picked from, taken in turn, one
    per rollout (PPO always samples at 1). Several spread the candidates where the start policy rarely scores;
    on the keyword task (python -m tools.text_hits, seed 0) SmolLM2 says "great" in 3.1% of completions at 0.7
    and 4.3% at 0.3 against 1.6% at 1, at most twice the groups of 4 that differ (8/64 against 4/64)."""
    initial_share: float = 0.25
    """Share of --labels asked before PPO starts, on zero-shot completions (Christiano et al.: 25%); with
    --pool-factor it sets how many zero-shot completions the first round is picked from."""
    explore_bonus: float = 0.0
    """RUNE (Liang et al. 2022): the learned arm's PPO reward adds beta_t times the reward ensemble's spread (its
    heads' std, scaled as the reward is), beta_t = beta0 (1 - --explore-decay)^completions; 0 = off."""
    explore_decay: float = 0.001
    """RUNE's rho: decay of --explore-bonus per completion generated (0.001: 28% left after 1,280)."""
    pool_rollouts: int = 32
    """After the initial batch, candidates are the unlabeled groups of the last N rollouts (and, with
    --reward-norm recent, the learned reward is normalised over their completions)."""
    eval_prompts: int = 64
    """Evaluation prompts (reset seeds disjoint from training) every arm is scored on."""
    lr: float = 1e-4
    """PPO learning rate (top --train-layers blocks + value head)."""
    train_layers: int = 4
    """Transformer blocks trained from the top (0 = all)."""
    init_kl_coef: float = 0.05
    """Starting KL coefficient beta."""
    target_kl: float = 4.0
    """Per-sequence KL target in nats (> 0): the adaptive controller steers to it; with a fixed beta it is only
    the reference the training KL is read against (docs/text.md)."""
    kl_control: Literal["fixed", "adaptive"] = field(
        default="fixed", metadata={"aliases": {"--fixed-kl": "fixed", "--adaptive-kl": "adaptive"}})
    """fixed: beta stays at --init-kl-coef (imdb seeds 0-2: largest training KL 4.6-10.2 nats, within 2x
    --target-kl in 5 of 6 arms); adaptive: the log-space controller of Ziegler et al. steers beta to --target-kl
    (its KL peaked at 11.7-17.9 nats on the same seeds: the policy jumps within one or two updates, faster than a
    controller reacting after an update)."""
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
    reward_norm: Literal["initial", "recent"] = "initial"
    """Completions the learned reward's mean and std are taken over after each fit: initial (the zero-shot
    model's, so the reward keeps one scale all run, as the true score does) or recent (the last --pool-rollouts
    rollouts', the default before 2026-12-06: the scale follows the policy's spread; imdb seeds 0-2, learned
    arm's largest training KL 6.5 / 10.2 / 4.6 nats with recent, 7.2 / 6.5 / 5.6 with initial)."""
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


PROG = "python -m benchmarks.textgen"
DESCRIPTION = ("Token-level PPO on TextGen-v0: zero-shot vs PPO on the true score vs PPO on a reward learned from "
               "synthetic preferences. Writes curves.csv, curves.png, summary.json, samples.md.")


ARMS = ("true", "learned")  # the PPO arms, in the order they run
TB_TAGS = {"true_score": "rollout/true_score", "kl": "ppo/kl", "beta": "ppo/beta", "labels": "pref/labels",
           "rm_accuracy": "pref/rm_accuracy", "reward_correlation": "pref/reward_correlation"}
"""TensorBoard tag of each curve column (``--tensorboard``); the learned arm adds ``pref/fit_seconds``."""
QUICK = dict(iterations=3, batch_size=4, max_new_tokens=8, labels=6, eval_prompts=4, round_completions=4,
             initial_fit_steps=5, refit_steps=2)


def parse_config(argv: list[str] | None,
                 error: Callable[[str], NoReturn] | None = None) -> tuple[TextBenchConfig, Path, "RunOptions"]:
    """The run's frozen config, its output directory and how it is carried out, from the command line.

    ``--quick`` and the resolved device each give a new config (explicit flags win over ``--quick``).

    Args:
        argv: the flags (default: ``sys.argv[1:]``).
        error: called with a one-line message on bad input; default: exit with status 2 and that line.
            The Python API (``prefrl.api.train``) passes one that raises ``ValueError``.
    """
    cmd = parse(TextCommand, argv, prog=PROG, description=DESCRIPTION, error=error)
    from benchmarks.kit.lifecycle import exit_with
    from benchmarks.kit.validate import labeler_problem

    cfg, lab = cmd.bench, cmd.labeling
    problem = labeler_problem(lab, 1 if lab.labeler != "web" else len(cfg.seeds))
    fail = failure("prefrl", error)
    if lab.labeler is None:
        names = "\n".join(f"  --labeler {k}: {v}" for k, v in LABELERS.items())
        if error is not None:
            error(f"choose a labeler: one of {', '.join(LABELERS)}")
        exit_with(2, f"prefrl: choose a labeler (--synthetic-oracle is short for --labeler synthetic-oracle); "
                     f"available:\n{names}")
    if problem:
        fail(problem)
    if cmd.quick:
        k = max(cmd.bench.group_size or cmd.bench.rank_k, 2)  # --quick's 4 completions a round as whole groups
        quick = dict(QUICK, batch_size=k * max(2, -(-QUICK["batch_size"] // k)))
        cmd, _ = with_unset(cmd, quick, flat_fields(TextCommand()))
        cfg = cmd.bench
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
    if cfg.group_size and (cfg.group_size < cfg.rank_k or (cfg.group_size > cfg.rank_k and cfg.rank_k != 2)):
        fail(f"--group-size {cfg.group_size}: give 0 (= --rank-k), or with pairs (--rank-k 2) any size >= 2; "
             f"with --rank-k {cfg.rank_k} the group is the ranked query")
    G = cfg.group_size or cfg.rank_k
    if cfg.batch_size < G or cfg.batch_size % G:
        fail(f"--batch-size must be a multiple of --{'group-size' if cfg.group_size else 'rank-k'}={G} (that many "
             f"completions per prompt), got {cfg.batch_size}")
    if cfg.labels < 1:
        fail(f"--labels must be >= 1, got {cfg.labels}")
    groups = cfg.iterations * cfg.batch_size // G * (G * (G - 1) // 2 if G > cfg.rank_k else 1)
    if not (math.isfinite(cfg.initial_share) and 0 < cfg.initial_share <= 1):
        fail(f"--initial-share must be in (0, 1] (share of --labels asked before PPO), got {cfg.initial_share}")
    if not (math.isfinite(cfg.explore_bonus) and cfg.explore_bonus >= 0 and 0 <= cfg.explore_decay < 1):
        fail(f"--explore-bonus must be >= 0 (0 = off) and --explore-decay in [0, 1), got {cfg.explore_bonus} and "
             f"{cfg.explore_decay}")
    later = cfg.labels - max(round(cfg.initial_share * cfg.labels), 1)  # the first share comes from zero-shot samples
    if later > groups:
        fail(f"--labels {cfg.labels}: the {later} labels due during training exceed the {groups} queries the "
             f"run generates (--iterations x prompts per rollout x candidates per prompt): lower --labels or raise "
             f"--iterations")
    if not 0.0 <= cfg.noise <= 1.0:
        fail(f"--noise must be in [0, 1], got {cfg.noise}")
    if cfg.sft_steps < 0:
        fail(f"--sft-steps must be >= 0, got {cfg.sft_steps}")
    if not cfg.pool_temperatures or not all(math.isfinite(t) and t > 0 for t in cfg.pool_temperatures):
        fail(f"--pool-temperatures must be one or more numbers > 0, got {' '.join(map(str, cfg.pool_temperatures))}")
    from benchmarks.checks import finite_problem, out_problem, seeds_problem

    problem = seeds_problem(cfg.seeds) or finite_problem(lr=cfg.lr, init_kl_coef=cfg.init_kl_coef,
                                                         target_kl=cfg.target_kl, ptx_coef=cfg.ptx_coef,
                                                         reward_std=cfg.reward_std)
    if problem:
        fail(problem)
    if cfg.target_kl <= 0:
        fail(f"--target-kl must be > 0 (nats per completion), got {cfg.target_kl}; beta stays at --init-kl-coef "
             "with --kl-control fixed (the default)")
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

    old = sorted(p.name for p in (out / "checkpoints").glob("seed*") if p.is_dir())
    if old:  # checkpoints/seed<k>/ (pre.pt, <arm>.pt): the layout before the kit's per-arm checkpoints
        return (f"--resume: the checkpoints in {out}/checkpoints ({', '.join(old)}) were written by an earlier prefrl "
                f"(one folder per seed, 2026-12-07 and before) and cannot be continued by this one; its labels stay in "
                f"{out}: start a new --out (or resume with the checkout that started it)")
    saved = {"min_kl_coef": 0.0, "group_size": 0, "reward_norm": "recent", "pool_temperatures": [1.0],
             "initial_share": 0.25, "explore_bonus": 0.0, "explore_decay": 0.001,
             # runs before these flags
             **json.loads(path.read_text())["config"]}
    if "kl_control" not in saved:  # runs before --kl-control: adaptive unless --fixed-kl was given
        saved["kl_control"] = "fixed" if saved.pop("fixed_kl", False) else "adaptive"
    differ = flags_differ(saved, _run_config(cfg))
    if differ:
        return f"--resume: the flags differ from the run in {out}: {'; '.join(differ)}; give the same flags"
    return None




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
