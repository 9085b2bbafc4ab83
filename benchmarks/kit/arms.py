"""One arm of a benchmark: builds its env, reward loop and agent from the frozen config, trains, evaluates.

:func:`run_arm` runs in a worker process (``benchmarks.kit.run`` starts one per (seed, arm)); it
returns the arm's curve and figures and writes its checkpoint, its saved agent and (learned arm)
its reward model to ``cfg.out``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.kit.checkpoint import Checkpoint, EpisodeLog, keep_labels_aside
from benchmarks.kit.config import RunConfig
from benchmarks.kit.evaluate import evaluate_final_policy
from benchmarks.kit.family import Family
from benchmarks.kit.report import UPPER


def trainer_overrides(family: Family, cfg: RunConfig) -> dict:
    """The TrainerConfig fields of a learned arm: the family's, then the flags set (0 turns a piece off)."""
    out = dict(family.trainer_overrides)
    if cfg.ssl_weight is not None:
        out["ssl_weight"] = cfg.ssl_weight
    if cfg.ssl_pretrain_steps is not None:
        out["ssl_pretrain_steps"] = cfg.ssl_pretrain_steps
    if cfg.ssl_objective is not None:
        out["ssl_objective"] = cfg.ssl_objective
    if cfg.pseudo_threshold is not None:
        out["pseudo_threshold"] = cfg.pseudo_threshold or None
    if cfg.crop is not None:
        out["crop_min_length"] = cfg.crop
    if cfg.stop_tolerance is not None:
        out["stop_tolerance"] = cfg.stop_tolerance
    return out


def run_arm(family_module: str, cfg: RunConfig, seed: int, arm: str, threads: int, queue) -> dict:
    """Trains one agent (learned or true reward) and returns its curve and figures."""
    import importlib

    import torch
    from stable_baselines3.common.callbacks import BaseCallback

    from agents import make_agent
    from prefrl import LearnedRewardVecEnv, LoopConfig, PreferenceLoop, PreferenceStore, SyntheticOracle
    from prefrl import TrainerConfig

    # One torch thread per run on the CPU, whatever --workers says: some torch kernels round differently
    # with more threads (LAPACK's QR behind SB3's orthogonal init, the gradient-norm reduction of its
    # clipping), so the same seed would give another agent, other labels and other figures with
    # --workers 1 (2 threads per run here) than with --workers 2. The envs may still use `threads`.
    torch.set_num_threads(1 if cfg.device == "cpu" else threads)
    ckpt = Checkpoint(cfg.out, arm, seed)
    done = ckpt.finished() if cfg.resume else None
    if done is not None:  # finished before the interruption
        queue.put((arm, seed, cfg.steps, "finished before the interruption; kept"))
        return done
    resume_from = ckpt.latest() if cfg.resume else None
    store_path = cfg.out / f"labels-seed{seed}.sqlite"
    if cfg.resume and resume_from is None and arm == "learned":
        keep_labels_aside(store_path)  # killed before its first checkpoint: the arm starts again, its labels kept
    family: Family = importlib.import_module(family_module).FAMILY
    venv = family.make_venv(cfg, cfg.n_envs, seed, threads)
    loop, pre, learned_env = None, {}, None
    if arm == "learned":
        torch.manual_seed(seed)
        L = cfg.segment_length or family.segment_length
        overrides = dict(family.loop_overrides)
        if cfg.anchor_fraction is not None:
            overrides["anchor_fraction"] = cfg.anchor_fraction
        if cfg.reward_std is not None:
            overrides["target_std"] = cfg.reward_std
        web = cfg.labeler == "web"
        if web:
            overrides["keep_render_state"] = family.keep_render_state
            overrides["min_answered_share"] = cfg.labeling.min_answered_share
        # refit beside the agent's update when the rewards are deferred (so the run stays the serial one) and
        # this run's CPU share has a core for it: not with one core per run (the default on 2 cores, 2 arms)
        overrides["overlap_fit"] = family.defer_rewards and threads >= 2 and not web  # serial with dropout: see LoopConfig
        lcfg = LoopConfig(total_labels=cfg.labels, total_steps=cfg.steps, segment_length=L, query=cfg.query,
                          seed=seed, **overrides)
        tcfg = TrainerConfig(device=cfg.device, seed=seed, label_noise=cfg.noise if cfg.noise < 1 else 0.99,
                             **trainer_overrides(family, cfg))
        store = PreferenceStore(store_path, seed=seed)
        labeler = SyntheticOracle(noise=cfg.noise, seed=seed)
        if web:  # queries wait in the store's own file; a person answers them in the page served below
            from prefrl import LabelQueue, QueueLabeler

            labeler = QueueLabeler(LabelQueue(store, timeout_s=cfg.labeling.label_timeout,
                                              on_timeout=cfg.labeling.on_timeout,
                                              repeat_share=cfg.labeling.repeat_share), family.make_render(cfg))
        loop = PreferenceLoop(family.make_ensemble(venv, cfg), labeler,
                              cfg.n_envs, lcfg, tcfg, store,
                              family.obs_transform(cfg) if family.obs_transform else None)
        venv = learned_env = LearnedRewardVecEnv(venv, loop, family.episode_end_key,
                                                 defer_rewards=family.defer_rewards)
        if resume_from is None:
            t = time.perf_counter()
            venv.collect_random(min(family.random_steps, max(2 * L, cfg.steps // cfg.n_envs)), seed=seed)
            pre = loop.pretrain()
            pre["seconds"] = time.perf_counter() - t
            queue.put((arm, seed, 0, "pretrained" if pre.get("labels") else
                       f"posted the {loop.schedule.initial_labels} initial queries; the agent trains on the "
                       "untrained reward model until their answers arrive"))
    if arm == UPPER:
        from agents.wrappers import NormalisedTrueReward

        std = cfg.reward_std if cfg.reward_std is not None else family.loop_overrides.get("target_std", 1.0)
        venv = NormalisedTrueReward(venv, target_std=std)
    env = family.wrap_agent_env(venv, "learned" if arm == UPPER else arm, cfg)
    tb = dict(tensorboard_log=str(cfg.tensorboard)) if cfg.tensorboard is not None else {}
    agent = make_agent(cfg.agent, env, family.name, seed=seed, device=cfg.device, **tb)
    rows: list[dict] = []
    episodes = EpisodeLog()
    before = {"wall": 0.0, "cpu": 0.0, "label_wait": 0.0}  # time spent before a resume
    resumed_from = None
    if resume_from is not None:
        agent, progress = ckpt.restore(type(agent), env, loop, cfg.device)
        if cfg.tensorboard is not None:
            agent.tensorboard_log = str(cfg.tensorboard)
        rows, episodes = progress["rows"], EpisodeLog.from_state(progress["episodes"])
        pre, before = progress["pre"], {"wall": progress["wall"], "cpu": progress["cpu"],
                                        "label_wait": progress.get("label_wait", 0.0)}
        resumed_from = agent.num_timesteps
        redone = max(0, ckpt.reached(default=resumed_from) - resumed_from)
        queue.put((arm, seed, resumed_from, f"resumed from its checkpoint at step {resumed_from} "
                                            f"({redone} steps done before the crash are redone)"))
    log_every = max(cfg.steps // 50, 1)
    last_ckpt = [time.monotonic()]
    at_step = [agent.num_timesteps]
    waiting = {"short": 0, "seconds": 0.0}  # --min-answered-share: answers the agent waits for now, time spent waiting
    server = (start_label_server(cfg, loop, seed, rows, at_step, queue, waiting)
              if loop is not None and loop.is_async else None)

    def checkpoint(model) -> None:
        ckpt.write(model, loop, {"rows": rows, "episodes": episodes.state(), "pre": pre,
                                 "wall": before["wall"] + time.perf_counter() - t0,
                                 "cpu": before["cpu"] + time.process_time() - c0,
                                 "label_wait": before["label_wait"] + waiting["seconds"]})
        last_ckpt[0] = time.monotonic()

    class Curve(BaseCallback):
        last_log = 0
        last_sent = 0

        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                if "episode" in info:
                    episodes.add(float(info["episode"]["r"]))
            return True

        def _on_training_start(self) -> None:
            if learned_env is not None and learned_env.defer_rewards:
                learned_env.start_rollout()

        def _on_training_end(self) -> None:
            if loop is not None:  # the last background fit (overlap_fit) finishes and is logged
                for k, v in (loop.finished_fit() or {}).items():
                    self.logger.record(f"pref/{k}", v)

        def _on_rollout_end(self) -> None:
            at_step[0] = self.num_timesteps
            fitted = False
            if learned_env is not None and learned_env.defer_rewards:  # the rollout's rewards, before any refit
                learned_env.pay_rollout(self.model.rollout_buffer, self.locals["values"], self.locals["dones"])
            if loop is not None:
                # overlap_fit: the fit started at the last rollout end has finished (pay_rollout waited for it);
                # checkpoint now, before update() starts the next one in the background
                for k, v in (loop.finished_fit() or {}).items():
                    self.logger.record(f"pref/{k}", v)
                    fitted = True
                if fitted:
                    checkpoint(self.model)
                    fitted = False
                for k, v in (loop.update(self.num_timesteps) or {}).items():
                    self.logger.record(f"pref/{k}", v)  # reaches TensorBoard with --tensorboard
                    fitted = True
                for k, v in (wait_for_labels(self.num_timesteps) or {}).items():
                    self.logger.record(f"pref/{k}", v)
                    fitted = True
            recent = episodes.recent
            if recent:
                self.logger.record("rollout/true_return", float(np.mean(recent)))  # the env's reward, both arms
            if self.num_timesteps - self.last_log >= log_every:
                self.last_log = self.num_timesteps
                recent = episodes.recent
                m = loop.metrics if loop is not None else {}
                rows.append({
                    "env_step": self.num_timesteps, "run": arm, "seed": seed,
                    "true_return": float(np.mean(recent)) if recent else float("nan"),
                    "episodes": episodes.count,
                    "labels": m.get("labels", float("nan")),
                    "rm_accuracy": m.get("rm/val_accuracy", float("nan")),
                    "reward_correlation": m.get("corr/pearson", float("nan")),
                    "wall_seconds": time.perf_counter() - t0,
                })
            queue.put((arm, seed, self.num_timesteps - self.last_sent, None))
            self.last_sent = self.num_timesteps
            if fitted or time.monotonic() - last_ckpt[0] >= 60 * cfg.checkpoint_minutes:
                checkpoint(self.model)
            else:  # how far the arm got: after a crash, the steps past the checkpoint are redone
                ckpt.set_reached(self.num_timesteps)

    def wait_for_labels(step: int) -> dict | None:
        """--min-answered-share: holds the agent until enough of the labels due are answered, saying so."""
        waiting["short"] = loop.labels_short(step)
        if not waiting["short"]:
            return None
        t = time.monotonic()

        def say(status: dict) -> None:
            waiting["short"] = status["short"]
            queue.put((arm, seed, 0, f"waiting for labels: {status['short']} more answers needed before the agent "
                                     f"goes on ({status['labels_used']} answered of {status['labels_used'] + status['labels_due']} "
                                     f"due by step {step}, --min-answered-share {cfg.labeling.min_answered_share}); "
                                     f"waited {status['waited_seconds']:.0f} s"))

        checkpoint(curve.model)  # nothing answered before the wait is lost if the run is stopped while it waits
        metrics = loop.wait_for_labels(step, on_wait=say)
        waiting["short"], waiting["seconds"] = 0, waiting["seconds"] + time.monotonic() - t
        return metrics

    t0, c0 = time.perf_counter(), time.process_time()
    curve = Curve()
    curve.last_sent = curve.last_log = agent.num_timesteps
    if resumed_from is None and loop is not None:
        checkpoint(agent)  # the labels of the initial policy and the fit on them are not asked for twice
    try:
        agent.learn(max(cfg.steps - agent.num_timesteps, 1), callback=curve, tb_log_name=f"{arm}-seed{seed}",
                    reset_num_timesteps=resumed_from is None)
    finally:
        if server is not None:
            server.stop()
            stats = loop.labeler.queue.stats()
            queue.put((arm, seed, 0, f"labeling page closed: {stats['labels_given']} labels given, "
                                     f"{stats['pending']} queries left unanswered in the store"))
    wall, cpu = before["wall"] + time.perf_counter() - t0, before["cpu"] + time.process_time() - c0
    label_wait = before["label_wait"] + waiting["seconds"]
    steps = agent.num_timesteps  # SB3 finishes its last rollout, so this can exceed cfg.steps
    final = episodes.recent
    queue.put((arm, seed, 0, f"trained; evaluating on {cfg.eval_episodes} fresh episodes"))
    t = time.perf_counter()
    evaluation = evaluate_final_policy(family, cfg, seed, agent, threads)
    result = {
        "arm": arm, "seed": seed, "rows": rows, "wall_seconds": wall,
        "env_steps": steps,
        "steps_per_second": steps / max(wall - label_wait, 1e-9),  # time spent waiting for people is not the loop's
        "cpu_seconds": cpu,
        "steps_per_cpu_second": steps / cpu,
        "final_true_return_last10": float(np.mean(final)) if final else float("nan"),
        "episodes": episodes.count,
        **evaluation,
        "eval_seconds": time.perf_counter() - t,
    }
    failed = save_run(cfg.out, arm, seed, agent, loop)
    if failed:
        result["save_failures"] = failed
    if loop is not None and family.record_agent is not None:
        family.record_agent(agent, cfg, seed, cfg.out / f"learned-agent-seed{seed}.gif")
    if loop is not None:
        # The final model on the steps since its last fit (never query candidates). When the
        # last fit came at the very end there are none: report the last round's measurement,
        # taken the same way just before that fit.
        corr = loop.fresh_correlation() or {k: v for k, v in loop.metrics.items() if k.startswith("corr/")}
        result.update({
            "labels_used": loop.labels_used,  # queries answered, "can't tell" included
            "labels_asked": cfg.labels,
            "labels_stored": len(loop.store),  # the labels a fit learns from
            "label_tie_share": float((loop.store.tensors()["mu"] == 0.5).float().mean()) if len(loop.store) else float("nan"),
            "rm_accuracy": loop.metrics.get("rm/val_accuracy", float("nan")),
            "reward_correlation": corr.get("corr/pearson", float("nan")),
            "reward_correlation_spearman": corr.get("corr/spearman", float("nan")),
            **{k.replace("corr/", "reward_correlation_"): v for k, v in loop.step_diagnostics().items()},
            "fit_seconds": loop.fit_seconds,
            "fit_overlapped": loop.fit_in_background,
            "fit_overlap_cpu_seconds": loop.fit_overlap_cpu_seconds,
            "pretrain_seconds": pre.get("seconds", 0.0),
            "pretrain_accuracy": pre.get("rm/val_accuracy", float("nan")),
        })
        # learning from unlabeled steps (only when on, so that runs without it keep their summary as it was)
        result.update({name: loop.metrics[k] for k, name in (
            ("rm/ssl_loss", "ssl_loss"), ("rm/pseudo_share", "pseudo_label_share"),
            ("rm/pseudo_accuracy", "pseudo_label_accuracy")) if k in loop.metrics})
        if loop.is_async:
            result["label_wait_seconds"] = label_wait
            result["team"] = loop.labeler.queue.team()  # per annotator: answers, speed, agreement
        if "rm/ssl_pretrain_loss" in pre:
            result["ssl_pretrain_loss"] = pre["rm/ssl_pretrain_loss"]
        loop.store.close()
    if resumed_from is not None:
        result["resumed_from_step"], result["steps_redone"] = resumed_from, redone
    venv.close()
    ckpt.finish(result)
    return result


def label_progress(cfg: RunConfig, status: dict, env_step: int, waiting_for: int) -> dict:
    """What the labeling page shows of a run: the task and what "better" means for it, steps, labels asked,
    answered and due, and how many answers the agent waits for; never the true return, which would steer labels.

    Args:
        cfg: the run's config.
        status: the loop's ``label_status`` at ``env_step``.
        env_step: the learned arm's steps so far.
        waiting_for: answers the agent waits for now (``--min-answered-share``), 0 when it trains on.
    """
    from envs.instructions import labeling_instructions

    return {"labels_due": status["labels_due"], "labels_budget": status["labels_total"],
            "labels_counted": status["labels_used"], "env_step": env_step, "steps": cfg.steps,
            "task": cfg.env, "instructions": labeling_instructions(cfg.env), "waiting_for_labels": waiting_for}


def start_label_server(cfg: RunConfig, loop, seed: int, rows: list[dict], at_step: list[int], queue,
                       waiting: dict | None = None):
    """Serves the learned arm's label queue (``--labeler web``) and sends its URL to the console at once.

    The page's progress shows the task and what "better" means for it, the run's steps, the labels given,
    asked and due by now and not answered (``labels_due``), the queue's length and, while the agent waits for
    answers (``--min-answered-share``), how many it waits for (``waiting_for_labels``). It never shows the
    true return: a labeler who saw it would judge by it instead of by the clips.
    """
    from prefrl.web import serve

    def progress() -> dict:
        return label_progress(cfg, loop.label_status(at_step[0]), at_step[0], (waiting or {}).get("short", 0))

    server = serve(loop.labeler.queue, host=cfg.labeling.web_host, port=cfg.labeling.web_port, progress=progress,
                   print_url=False)
    queue.put(("learned", seed, 0, f"label at {server.url}\n"
                                   "    open it in a browser, type your name, then pick the clip in which the agent "
                                   "does better at the task (keys 1/2, = equal, space can't tell); the agent trains "
                                   f"meanwhile; {loop.label_status(at_step[0])['waiting']} queries are waiting"))
    return server


def save_run(out: Path, arm: str, seed: int, agent, loop=None) -> list[str]:
    """Saves what an arm trained: for the learned arm the reward model ``reward-model-seed{seed}.pt``
    (``prefrl.save_reward``), ``agent-{arm}-seed{seed}.zip`` (SB3's ``save``) and the agent's
    observation normalisation ``vecnormalize-{arm}-seed{seed}.pkl`` when it has one.

    A file that cannot be written does not cost the run: each save is tried on its own, and what
    failed is printed and returned (``["agent-learned-seed0.zip: TypeError: ..."]``), so the
    evaluation, the figures and the other files still come out.
    """
    from prefrl import save_reward

    saves = []
    if loop is not None:
        saves.append((f"reward-model-seed{seed}.pt", lambda: save_reward(loop, out, seed=seed)))
    saves.append((f"agent-{arm}-seed{seed}.zip", lambda: agent.save(out / f"agent-{arm}-seed{seed}.zip")))
    vecnorm = agent.get_vec_normalize_env()
    if vecnorm is not None:
        name = f"vecnormalize-{arm}-seed{seed}.pkl"
        saves.append((name, lambda: vecnorm.save(out / name)))
    failed = []
    for name, save in saves:
        try:
            save()
        except Exception as err:  # noqa: BLE001 -- any failure to write one file must not lose the run
            failed.append(f"{name}: {type(err).__name__}: {err}")
            print(f"prefrl: could not save {failed[-1]} (the run goes on)", file=sys.stderr, flush=True)
    return failed
