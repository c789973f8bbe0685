"""Equal-budget tuning: one Optuna study per variant, its trials run through the executors.

Where things live:

* **The study** of a variant (per task, in a multi-task pipeline) is an Optuna
  RDB study in SQLite, ``<cache>/tune/.work/<key>/study.db``. The key hashes
  the variant's resolved config, the search space, the metric, the pruner, the
  sampler seed and the upstream (data + tokenizer) keys; not the trial count,
  so raising ``tune.trials`` extends a finished study. The driver holds the
  key's lock for the whole search: one process drives a study at a time.
* **A trial** is one training through the existing stages (prepare → tokenize
  → embed hits, then the train stage, whose key covers the sampled config):
  :func:`run_trial`, run by a :class:`~textclf.pipeline.executors.Runner`
  in this process, a local process pool or Ray. It trains with the pipeline's
  first seed and reports each epoch's validation metric to the study; the
  pruner's decision is read from the shared storage (Optuna's ``Trial`` in the
  worker), and a pruned training stops there.
* **The driver** uses Optuna's ask-and-tell API and no scheduler of its own:
  each round it asks every unfinished study for a batch of trials (TPE,
  ``constant_liar`` for the trials still running; the sampler is seeded from
  the pipeline's first seed and the trial number, so a resumed study draws
  what an uninterrupted one would), runs the round through the executor,
  records each trial in MLflow, then tells the study. With ``--jobs`` at most
  the number of variants, a round is one trial per study and the search is
  the one a serial run makes.
* **Resume**: trials the study finished are never run again (an earlier
  process's trials are re-recorded in MLflow as ``cached``); a trial left
  RUNNING by a killed process is run again with its own number and
  parameters, and its training resumes from its checkpoint.

The value of a completed trial is the metric at the epoch its training kept
(early stopping restores it); a pruned trial's is the best it reached before
it was stopped. The best completed trial's config is the variant's tuned
config; its training is, unchanged, the final run of the first seed.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from textclf.core.cache import StageCache
from textclf.core.errors import ConfigError, TrainingError
from textclf.pipeline.config import Config
from textclf.pipeline.spec import Pipeline, Variant
from textclf.pipeline.stage import key_of
from textclf.pipeline.tune_spec import Dimension, TuneSpec, apply

log = logging.getLogger(__name__)

FINISHED = ("COMPLETE", "PRUNED", "FAIL")


def require_optuna():
    """Optuna, or a ConfigError naming the extra that installs it (raised before anything trains)."""
    try:
        import optuna
    except ImportError:
        raise ConfigError(
            "tune: this pipeline tunes its variants, which needs Optuna, an optional extra: pip install 'textclf[tune]' "
            "(in a checkout: pip install -e '.[tune]'). Or run without tuning: --set tune=null."
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


@dataclass
class TrialRecord:
    """One finished trial, as the study and the report know it."""

    number: int
    state: str  # complete | pruned | failed
    params: dict[str, Any]
    value: float | None  # complete: the metric at the kept epoch; pruned / failed: the best before it stopped
    history: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0
    epochs: int = 0
    train_key: str | None = None
    run_id: str | None = None  # the MLflow run that first recorded it
    cached: bool = False  # finished by an earlier textclf process
    error: str | None = None

    def attrs(self) -> dict[str, Any]:
        return {
            k: getattr(self, k)
            for k in ("state", "history", "train_seconds", "epochs", "train_key", "run_id", "error", "value")
        }


@dataclass
class Tuned:
    """A variant's finished search: its first ``trials`` finished trials and the best config."""

    variant: Variant
    spec: TuneSpec
    study_key: str
    storage: str
    space: dict[str, Dimension]
    seed: int
    trials: list[TrialRecord]
    best: TrialRecord
    config: Config  # the variant's config with the best trial's parameters
    run_id: str | None = None  # the variant's tuning run in MLflow


# --------------------------------------------------------------------------- Optuna objects


def _storage(url: str):
    from optuna.storages import RDBStorage

    # Workers write intermediate values while others read: wait for SQLite's lock rather than fail.
    return RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 300}})


def make_pruner(name: str, trials: int, first: int):
    """none | median | successive_halving; no trial is pruned before epoch ``first``.

    ``first`` is ``train.min_epochs`` (default: half of ``train.epochs``), the
    rule early stopping follows: validation plateaus that break later are
    common (LSTMs, RNNs on structure), and a pruner that stops them earlier
    than early stopping would stops slow starters, not worse configurations.
    On tune-compare, pruning from epoch 2 of 8 left the RNN's best
    configurations out (docs/benchmarks.md, "Equal-budget tuning").
    """
    import optuna

    first = max(1, first)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=max(1, trials // 4), n_warmup_steps=first)
    if name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=first, reduction_factor=3)
    return optuna.pruners.NopPruner()


def make_sampler(seed: int, number: int, trials: int):
    """TPE seeded by (pipeline seed, trial number): the same history gives the same draw, resumed or not."""
    import numpy as np
    import optuna

    trial_seed = int(np.random.SeedSequence([seed, number]).generate_state(1)[0])
    return optuna.samplers.TPESampler(
        seed=trial_seed, n_startup_trials=min(10, max(2, trials // 3)), multivariate=True, constant_liar=True
    )


# --------------------------------------------------------------------------- one trial (in a worker)


def run_trial(
    cfg: Config,
    cache_root: str,
    study: dict[str, Any] | None,
    metric: str,
    force: bool,
    quiet: bool,
    cwd: str,
    label: str,
) -> dict[str, Any]:
    """Train one trial's config through the cached stages, reporting each epoch to the study; say how it ended.

    ``study``: {url, name, trial_id, pruner, trials, epochs}, or None (no pruning). Returns
    ``{"state": complete | pruned | failed, "history", "info", "key", "cached", "error"}``.
    """
    from textclf.core.logs import progress_logger, setup_logging
    from textclf.pipeline.model_stages import train_stage
    from textclf.pipeline.variant import upstream

    if os.path.isdir(cwd) and os.getcwd() != cwd:  # a Ray worker: relative data paths resolve as in the driver
        os.chdir(cwd)
        setup_logging(quiet)
    optuna = require_optuna() if study else None
    trial, reported = None, set()
    if study:
        s = optuna.load_study(
            study_name=study["name"],
            storage=_storage(study["url"]),
            pruner=make_pruner(study["pruner"], study["trials"], study["first"]),
        )
        trial = optuna.trial.Trial(s, study["trial_id"])
        reported = set(_frozen(s, trial.number).intermediate_values)  # a trial run again after a kill reported these
    seen: list[dict[str, Any]] = []

    def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
        seen.append(metrics)
        if trial is None:
            return
        if epoch not in reported:
            trial.report(float(metrics[metric]), epoch)
        if trial.should_prune():
            raise optuna.TrialPruned()

    cache = StageCache(cache_root)
    up = upstream(cfg, cache)
    log_fn = None if quiet else progress_logger(label)
    try:
        trained = train_stage(
            up.plan.train,
            up.tok,
            up.emb,
            up.data.value.label_names,
            cache,
            force=force,
            on_epoch=on_epoch,
            log_fn=log_fn,
            source=up.source,
        )
    except Exception as exc:
        if optuna is not None and isinstance(exc, optuna.TrialPruned):
            # This configuration is not trained further: its checkpoint is not needed.
            shutil.rmtree(cache.scratch("train", key_of("train", up.plan.train, [up.tok, up.emb])), ignore_errors=True)
            if log_fn:
                log_fn(f"pruned after epoch {len(seen)}")
            return {"state": "pruned", "history": seen}
        if isinstance(exc, TrainingError):  # e.g. a diverged loss at a large learning rate: a bad configuration
            return {"state": "failed", "history": seen, "error": str(exc)}
        if isinstance(
            exc, ConfigError
        ):  # the sampled config refused (e.g. a model too large for the memory): this trial only
            return {"state": "failed", "history": seen, "error": str(exc)}
        raise
    if trained.cached and trial is not None:  # trained before: give the pruner its curve all the same
        for row in trained.value.history:
            if row["epoch"] not in reported:
                trial.report(float(row[metric]), int(row["epoch"]))
    return {
        "state": "complete",
        "history": trained.value.history,
        "info": trained.value.info,
        "key": trained.key,
        "cached": trained.cached,
    }


# --------------------------------------------------------------------------- one variant's study (in the driver)


class Search:
    """The driver's side of one variant's study: existing trials, asking, telling."""

    def __init__(
        self,
        variant: Variant,
        spec: TuneSpec,
        cache: StageCache,
        seed: int,
        *,
        force: bool,
        stack: contextlib.ExitStack,
        planned: tuple | None = None,
    ):
        from textclf.pipeline.variant import upstream

        optuna = require_optuna()
        self.variant, self.spec, self.seed = variant, spec, seed
        self.cfg = variant.for_seed(seed)
        self.space = spec.space_for(self.cfg)
        p, source = planned or (None, None)  # the driver's plan of this (variant, seed), when it has one
        up = upstream(self.cfg, cache, p=p, source=source)  # cache hits: computed before the search
        ident = {
            "config": self.cfg.to_dict(),
            "space": {k: d.to_dict() for k, d in self.space.items()},
            "metric": spec.metric,
            "pruner": spec.pruner,
            "prune_from": self.cfg.train.stop_after,
            "sampler": "tpe-multivariate",
            "seed": seed,
        }
        self.key = key_of("tune", ident, [up.tok, up.emb])
        stack.enter_context(cache.lock("tune", self.key))  # one driver per study
        work = cache.scratch("tune", self.key)
        if force and (work / "study.db").exists():
            (work / "study.db").unlink()
        self.url = f"sqlite:///{(work / 'study.db').resolve()}"
        self.pruner = make_pruner(spec.pruner, spec.trials, self.cfg.train.stop_after)
        self.study = optuna.create_study(
            study_name=self.key,
            storage=_storage(self.url),
            direction=spec.direction,
            load_if_exists=True,
            pruner=self.pruner,
            sampler=make_sampler(seed, 0, spec.trials),
        )
        self.records: dict[int, TrialRecord] = {}
        self.stale = []  # trials a killed process left RUNNING: run again first
        for t in self.study.get_trials(deepcopy=False):
            if t.state.name in FINISHED:
                self.records[t.number] = _from_frozen(t)
            elif t.state.name == "RUNNING":
                self.stale.append(optuna.trial.Trial(self.study, t._trial_id))

    def remaining(self) -> int:
        return max(0, self.spec.trials - len(self.records))

    def ask(self, n: int) -> list:
        """Up to ``n`` trials to run: first those a killed process left running, then new ones."""
        out, want = [], min(n, self.remaining())
        while len(out) < want and self.stale:
            out.append(self.stale.pop(0))
        while len(out) < want:
            self.study.sampler = make_sampler(self.seed, len(self.study.get_trials(deepcopy=False)), self.spec.trials)
            trial = self.study.ask()
            for dim in self.space.values():
                dim.suggest(trial)
            out.append(trial)
        return out

    def task(self, trial, cfg: Config, cache: StageCache, force: bool, quiet: bool) -> tuple:
        """The arguments of :func:`run_trial` for ``trial``, whose config is ``cfg`` (:func:`trial_config`)."""
        ref = {
            "url": self.url,
            "name": self.key,
            "trial_id": trial._trial_id,
            "pruner": self.spec.pruner,
            "trials": self.spec.trials,
            "first": self.cfg.train.stop_after,
        }
        return (
            cfg,
            str(cache.root.resolve()),
            ref,
            self.spec.metric,
            force,
            quiet,
            os.getcwd(),
            f"{self.variant.key} t{trial.number}",
        )

    def finish(self, trial, result: dict[str, Any], record_run: Callable[[TrialRecord], str | None]) -> TrialRecord:
        """Record the trial (MLflow first, then the study's user attributes), then tell the study."""
        import optuna

        metric, history = self.spec.metric, result.get("history") or []
        state = result["state"]
        better = max if self.spec.direction == "maximize" else min
        if state == "complete":
            info = result["info"]
            kept = next((r for r in history if r["epoch"] == info.get("best_epoch")), history[-1])
            value, seconds = float(kept[metric]), float(info["train_seconds"])
        else:
            reported = list(_frozen(self.study, trial.number).intermediate_values.values())
            value = better(reported) if reported else None
            seconds = float(sum(r.get("epoch_seconds", 0.0) for r in history))
        rec = TrialRecord(
            number=trial.number,
            state=state,
            params=dict(trial.params),
            value=value,
            history=history,
            train_seconds=seconds,
            epochs=len(history),
            train_key=result.get("key"),
            error=result.get("error"),
        )
        rec.run_id = record_run(rec)
        trial.set_user_attr("textclf", rec.attrs())
        states = {
            "complete": optuna.trial.TrialState.COMPLETE,
            "pruned": optuna.trial.TrialState.PRUNED,
            "failed": optuna.trial.TrialState.FAIL,
        }
        tell(self.study, trial, value if state == "complete" else None, states[state])
        self.records[rec.number] = rec
        return rec

    def result(self, run_id: str | None) -> Tuned:
        trials = sorted(self.records.values(), key=lambda r: r.number)[: self.spec.trials]
        complete = [r for r in trials if r.state == "complete" and r.value is not None]
        if not complete and trials and all(r.state == "failed" and r.error for r in trials):
            first = trials[0].error
            raise ConfigError(
                f"{self.variant.key}: all {len(trials)} of its trials failed, none trained to the end; the first: "
                f"{first} Narrow tune.space to configurations that can train (the trial runs in MLflow say why each failed)."
            )
        if not complete:
            raise TrainingError(
                f"{self.variant.key}: none of its {len(trials)} trials completed (all were pruned or failed); "
                "see the trial runs in MLflow. Widen or move tune.space, or use tune.pruner=none."
            )
        sign = 1 if self.spec.direction == "maximize" else -1
        best = max(complete, key=lambda r: (sign * r.value, -r.number))  # ties: the earlier trial
        return Tuned(
            variant=self.variant,
            spec=self.spec,
            study_key=self.key,
            storage=self.url,
            space=self.space,
            seed=self.seed,
            trials=trials,
            best=best,
            config=apply(self.variant.config, best.params),
            run_id=run_id,
        )


def trial_config(cfg: Config, params: dict[str, Any]) -> tuple[Config, str | None]:
    """(``cfg`` with a trial's ``params``, None), or (``cfg``, why the schema refuses that combination).

    A refused combination fails its trial, recorded as such; the search goes on.
    """
    try:
        return apply(cfg, params), None
    except ConfigError as exc:
        return cfg, str(exc)


def _frozen(study, number: int):
    return next(t for t in study.get_trials(deepcopy=False) if t.number == number)


def tell(study, trial, value, state) -> None:
    """Tell the study how a trial ended (one function, so tests can interrupt a search right after it)."""
    study.tell(trial, value, state=state)


def _from_frozen(t) -> TrialRecord:
    a = dict(t.user_attrs.get("textclf") or {})
    state = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed"}[t.state.name]
    value = a.get("value", t.value)
    return TrialRecord(
        number=t.number,
        state=state,
        params=dict(t.params),
        value=value,
        history=a.get("history") or [],
        train_seconds=float(a.get("train_seconds") or 0.0),
        epochs=int(a.get("epochs") or 0),
        train_key=a.get("train_key"),
        run_id=a.get("run_id"),
        cached=True,
        error=a.get("error"),
    )


# --------------------------------------------------------------------------- every variant


def tune_pipeline(
    pipe: Pipeline,
    cache: StageCache,
    recorder,
    *,
    force: bool,
    quiet: bool,
    runner_opts: dict[str, Any],
    emit: Callable[[str, dict[str, Any]], None],
    plan_of: Callable | None = None,
) -> dict[str, Tuned]:
    """Run every neural variant's study to ``tune.trials`` finished trials; {variant key: Tuned}.

    ``recorder`` (:class:`textclf.pipeline.record.TuneRecorder`) writes the MLflow runs.
    """
    from textclf.pipeline.executors import Runner

    spec: TuneSpec = pipe.tune
    seed = pipe.seeds[0]
    out: dict[str, Tuned] = {}

    def told(s: Search, rec, cached: bool) -> None:
        fields = {"number": rec.number, "state": rec.state, "value": rec.value, "epochs": rec.epochs}
        emit("trial", {"variant": s.variant.key, **fields, "metric": spec.metric, "cached": cached})

    with contextlib.ExitStack() as stack:
        searches = [
            Search(v, spec, cache, seed, force=force, stack=stack, planned=plan_of(v, seed) if plan_of else None)
            for v in pipe.variants.values()
            if v.config.kind == "neural"
        ]
        runs = {s.variant.key: recorder.start_tuning(s.variant, spec, s.space, s.key) for s in searches}
        stack.callback(recorder.close_open)  # an interruption ends the open tuning runs as KILLED
        for s in searches:  # trials an earlier process finished: recorded again, not run again
            for rec in sorted(s.records.values(), key=lambda r: r.number)[: spec.trials]:
                recorder.trial_run(runs[s.variant.key], s.variant, rec, trial_config(s.cfg, rec.params)[0], spec.metric)
                told(s, rec, cached=True)
        runner = Runner(quiet=quiet, **runner_opts)
        stack.callback(runner.close)
        while True:
            active = [s for s in searches if s.remaining()]
            if not active:
                break
            per = max(1, math.ceil(runner.width / len(active)))
            batch = [(s, t, *trial_config(s.cfg, dict(t.params))) for s in active for t in s.ask(per)]
            # A combination the schema refuses fails at once, without a training; the others run.
            results = iter(
                runner.map(
                    run_trial, [s.task(t, cfg, cache, force, quiet) for s, t, cfg, refused in batch if refused is None]
                )
            )
            for s, t, cfg, refused in batch:
                res = {"state": "failed", "history": [], "error": refused} if refused is not None else next(results)
                rec = s.finish(
                    t,
                    res,
                    lambda r, s=s, cfg=cfg: recorder.trial_run(runs[s.variant.key], s.variant, r, cfg, spec.metric),
                )
                told(s, rec, cached=bool(res.get("cached")))
        for s in searches:
            tuned = s.result(runs[s.variant.key])
            recorder.finish_tuning(tuned)
            out[s.variant.key] = tuned
    return out
