"""The trainer: AdamW + warm-up schedules, clipping, early stopping, checkpoints, resume.

One epoch reads top to bottom::

    batches = bucket_batches(...)                     # length-bucketed, seeded order
    for each batch:  lr → forward → backward → clip → step → schedule
                     (loss and hits stay on the device; read back every 50 steps)
    evaluate on validation → early-stopping bookkeeping → on_epoch → checkpoint → stop?

Works with any ``nn.Module`` whose forward is
``logits, loss = model(tokens (B, T) int64, lengths (B,) int64, labels=None)``.
Decisions worth knowing (the optimiser's in :mod:`textclf.training.optim`,
the checkpoint format in :mod:`textclf.training.checkpoint`):

* **Timing**: ``epoch_seconds`` / ``train_seconds`` cover the training steps
  only (batching, forward, backward, optimizer), not validation or
  checkpointing. ``tokens_per_second`` counts real (non-padding) tokens.
* **Non-finite loss** is detected without a host sync per step: each step's
  loss is written into a per-epoch device buffer, and the buffer is checked
  every ``_CHECK_EVERY`` steps and at the end of the epoch (the check names
  the first bad step). Weights are also checked before each checkpoint, so
  non-finite weights are never written.
* **Reproducibility**: ``fit`` seeds torch with ``cfg.seed`` and draws the batch
  order from ``np.random.default_rng(cfg.seed)``; the *model* is built by the
  caller, so call :func:`seed_everything` before building it. On CPU the same
  config and seed give a bitwise identical history (apart from the timing
  keys). ``torch.use_deterministic_algorithms`` is not switched on: CPU RNN
  kernels are deterministic already, and on CUDA it would need a global cuBLAS
  workspace setting.
* **Checkpoints** (``checkpoint_dir/checkpoint.pt``) are written after every
  epoch; a run with a matching checkpoint resumes after its last epoch and ends
  with the same metrics as an uninterrupted run. ``on_epoch`` is called
  *before* the epoch's checkpoint is written, so a crash in between re-reports
  that epoch on resume rather than losing it.
* **Validation metrics** are every metric of :data:`textclf.core.metrics.METRICS`
  that needs only predicted classes (``val_accuracy``, ``val_macro_f1``, ...)
  plus ``val_loss``; any of them can be the early-stopping metric.
* **Data-parallel** (``distributed=True``, inside an initialised
  ``torch.distributed`` process group, e.g. under ``torchrun``): a few
  ``if self.ddp:`` lines call :mod:`textclf.training.ddp`, which says how
  ranks split each global batch and agree on every decision. Only rank 0
  logs, calls ``on_epoch`` and writes checkpoints.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from textclf.core.errors import ConfigError, TrainingError
from textclf.core.metrics import METRICS, epoch_metrics
from textclf.models.predict import sorted_logits
from textclf.text.batching import EncodedSplit, bucket_batches, collate
from textclf.training import checkpoint as ckpt_io
from textclf.training import ddp
from textclf.training.config import TrainConfig
from textclf.training.device import amp_dtype, autocast, resolve_device, set_num_threads
from textclf.training.loss import balanced_weights, loss_weights, num_classes, weights_finite
from textclf.training.optim import lr_lambda, make_optimizer, warmup_steps

_CHECK_EVERY = 50  # steps between loss finiteness checks (one host sync each)


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns. ``history`` has one dict per epoch run."""

    history: list[dict[str, float]]
    best_epoch: int
    best_metric: float
    stopped_early: bool
    train_seconds: float  # training steps only (no validation / checkpoint time)
    tokens_per_second: float  # real tokens / train_seconds
    resumed_from_epoch: int | None  # last epoch found in the checkpoint, None if fresh
    device: str
    metric: str = "val_accuracy"  # history key that best_metric refers to
    checkpoint_path: str | None = None
    world_size: int = 1  # data-parallel processes that trained the model

    def to_dict(self) -> dict[str, Any]:
        return {k: copy.deepcopy(v) for k, v in self.__dict__.items()}


class Trainer:
    """Train ``model`` with ``cfg``; see the module docstring for the decisions.

    ``on_epoch(epoch, metrics)`` is called after every epoch (for MLflow, with
    step = epoch). ``log`` receives a one-line summary per epoch;
    ``progress(epoch, step, steps)`` is called every few dozen steps.

    ``distributed=True`` trains data-parallel in the current
    ``torch.distributed`` process group; pass the same arguments on every rank
    (``checkpoint_dir`` matters on rank 0 only). The default ``None`` means:
    data-parallel when a process group with more than one rank is initialised.
    On the other ranks ``fit`` first waits for rank 0, which either starts
    training or calls :func:`textclf.training.ddp.skip_training` (it found the
    result cached); then ``fit`` raises :class:`~textclf.training.ddp.TrainingSkipped`.
    """

    def __init__(
        self,
        model: nn.Module,
        cfg: TrainConfig,
        *,
        checkpoint_dir: str | Path | None = None,
        pad_id: int = 0,
        on_epoch: Callable[[int, dict[str, float]], None] | None = None,
        eval_batch_size: int = 256,
        log: Callable[[str], None] | None = None,
        progress: Callable[[int, int, int], None] | None = None,
        distributed: bool | None = None,
    ) -> None:
        self.model = model
        self.cfg = cfg
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.pad_id = pad_id
        self.on_epoch = on_epoch
        self.eval_batch_size = eval_batch_size
        self.log = log
        self.progress = progress
        self.device = resolve_device(cfg.device)  # fail on a bad device before any work
        self.ddp = ddp.world_size() > 1 if distributed is None else distributed
        self.rank, self.world_size = 0, 1
        if self.ddp:
            if not ddp.group_ready():
                raise ConfigError(
                    "Data-parallel training needs an initialised torch.distributed process group: "
                    "launch with torchrun (or textclf train --ddp)."
                )
            self.rank, self.world_size = ddp.rank(), ddp.world_size()
            if self.device.type == "cuda" and self.device.index is None:  # one GPU per local rank
                self.device = torch.device(
                    "cuda", int(os.environ.get("LOCAL_RANK", self.rank % torch.cuda.device_count()))
                )
            if self.rank != 0:  # rank 0 reports for the group
                self.log = self.on_epoch = self.progress = None
                self.checkpoint_dir = None
        self.amp_dtype = amp_dtype(self.device, cfg.mixed_precision, cfg.cpu_bf16)
        # Evaluation runs as the model is served: float32 on the CPU even with train.cpu_bf16.
        self.eval_amp_dtype = self.amp_dtype if self.device.type == "cuda" else None
        self.metric = f"val_{cfg.early_stopping_metric}"
        self.higher_is_better = (
            cfg.early_stopping_metric != "loss" and METRICS[cfg.early_stopping_metric].higher_is_better
        )

    @property
    def checkpoint_path(self) -> Path | None:
        return self.checkpoint_dir / ckpt_io.CHECKPOINT_NAME if self.checkpoint_dir is not None else None

    # ------------------------------------------------------------------ fit

    def fit(self, train: EncodedSplit, val: EncodedSplit) -> TrainResult:
        cfg, device = self.cfg, self.device
        if len(train) == 0 or len(val) == 0:
            raise TrainingError(
                f"Cannot train on an empty split (train: {len(train)} examples, validation: {len(val)})."
            )
        set_num_threads(cfg.num_threads)
        model = self.model.to(device)
        torch.manual_seed(cfg.seed + self.rank)  # dropout stream (its own per rank)
        self.rng = np.random.default_rng(cfg.seed)  # batch order: the same on every rank

        steps_per_epoch = math.ceil(len(train) / cfg.batch_size)  # bucket_batches always gives this many
        total_steps = cfg.epochs * steps_per_epoch
        self.optimizer = make_optimizer(model, cfg)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_lambda(cfg.schedule, total_steps, warmup_steps(cfg, steps_per_epoch))
        )
        # Loss scaling is only needed for fp16; a disabled scaler is a pass-through.
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.class_weight = balanced_weights(train, val, model, device) if cfg.class_weights == "balanced" else None
        self.num_classes = num_classes(train, val, model)
        # Hashing the data costs a pass over it, so only when checkpoints are kept.
        self._identity = (
            ckpt_io.run_identity(cfg.model_dump(mode="json"), getattr(model, "hparams", None), train, val)
            if self.checkpoint_path is not None
            else None
        )

        state, resumed_from = ckpt_io.Progress(), None
        # Data-parallel: this is the first collective, so a rank 0 that skips training
        # (ddp.skip_training) meets the other ranks here.
        ckpt, self._checkpointing = self._start_checkpoint()
        self._net = ddp.wrap(model, device) if self.ddp else model
        if ckpt is not None:
            state = ckpt_io.restore(
                self.checkpoint_path or Path("checkpoint"),
                ckpt,
                model=model,
                optimizer=self.optimizer,
                scheduler=self.scheduler,
                scaler=self.scaler,
                numpy_rng=self.rng,
                rank=self.rank,
                world_size=self.world_size,
            )
            resumed_from = state.epoch
            if self.log:
                self.log(f"resuming from {self.checkpoint_path} after epoch {state.epoch}")

        first_epoch = cfg.epochs + 1 if state.finished else state.epoch + 1
        for epoch in range(first_epoch, cfg.epochs + 1):
            # ---- train (raises on a nan/inf loss, naming the step)
            train_loss, train_accuracy, lr, seconds = self._train_epoch(train, epoch)
            if not weights_finite(model):  # e.g. an inf gradient in the very last step
                raise TrainingError(
                    f"Weights became non-finite during epoch {epoch}; {ckpt_io.last_good(self.checkpoint_path)}. Lower train.lr or set train.grad_clip."
                )
            # ---- validate (data-parallel: rank 0 evaluates, every rank gets its numbers)
            metrics = {"epoch": epoch, "train_loss": train_loss, "train_accuracy": train_accuracy}
            metrics.update(
                ddp.from_rank0(self.evaluate(val) if self.rank == 0 else None) if self.ddp else self.evaluate(val)
            )
            metrics.update(lr=lr, epoch_seconds=seconds, tokens_per_second=train.num_tokens / max(seconds, 1e-9))
            # ---- early-stopping bookkeeping
            score = metrics[self.metric]
            improved = state.best_metric is None or (
                score > state.best_metric if self.higher_is_better else score < state.best_metric
            )
            if improved:
                state.best_metric, state.best_epoch = score, epoch
                state.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            # Patience counts only epochs after min_epochs: a plateau early in training is not a reason to stop.
            state.bad_epochs = 0 if improved or epoch <= cfg.stop_after else state.bad_epochs + 1
            state.epoch = epoch
            state.history.append(metrics)
            state.stopped_early = cfg.patience > 0 and state.bad_epochs >= cfg.patience
            state.finished = state.stopped_early or epoch == cfg.epochs
            # ---- report, checkpoint, stop
            if self.log:
                self.log(_summary(metrics, cfg.epochs, improved))
            if self.on_epoch:
                self.on_epoch(epoch, dict(metrics))
            if self._checkpointing:
                self._save_checkpoint(state)
            if state.stopped_early:
                if self.log:
                    self.log(
                        f"early stopping: no {self.metric} improvement for {cfg.patience} epoch(s) after epoch "
                        f"{cfg.stop_after}; best was epoch {state.best_epoch}"
                    )
                break

        self._net = None  # drop the DDP wrapper (and its gradient hooks' reducer)
        # Hand back the best weights, ready for inference.
        if state.best_state is not None:
            model.load_state_dict(state.best_state)
        model.eval()
        train_seconds = sum(h["epoch_seconds"] for h in state.history)
        tokens = train.num_tokens * len(state.history)
        return TrainResult(
            history=[dict(h) for h in state.history],
            best_epoch=state.best_epoch,
            best_metric=float(state.best_metric) if state.best_metric is not None else float("nan"),
            stopped_early=state.stopped_early,
            train_seconds=train_seconds,
            tokens_per_second=tokens / train_seconds if train_seconds > 0 else 0.0,
            resumed_from_epoch=resumed_from,
            device=str(device),
            metric=self.metric,
            checkpoint_path=str(self.checkpoint_path) if self.checkpoint_path is not None else None,
            world_size=self.world_size,
        )

    def _train_epoch(self, train: EncodedSplit, epoch: int) -> tuple[float, float, float, float]:
        """One pass over ``train``: (mean loss, accuracy, last lr, seconds of training)."""
        cfg, model, device = self.cfg, self.model, self.device
        opt, sched, scaler = self.optimizer, self.scheduler, self.scaler
        model.train()
        t0 = time.perf_counter()
        batches = bucket_batches(
            train.lengths, cfg.batch_size, shuffle=True, rng=self.rng, chunk_batches=cfg.bucket_chunk
        )
        if self.ddp:  # this rank's share of every global batch, and its loss scale
            parts, scales, sizes = ddp.rank_parts(
                batches, train.labels, loss_weights(self.class_weight, model), self.rank, self.world_size
            )
        else:
            parts, scales, sizes = batches, None, [len(b) for b in batches]
        n = len(parts)
        # Per-step mean loss and correct count stay on the device (no .item() per step).
        step_loss = torch.zeros(n, device=device)
        step_hits = torch.zeros(n, dtype=torch.long, device=device)
        checked = 0
        for step, idx in enumerate(parts):
            lr = opt.param_groups[0]["lr"]  # set by the scheduler after the previous step
            tokens, lengths, labels = collate(train, idx, self.pad_id, device)  # (B, T), (B,), (B,)
            with autocast(device, self.amp_dtype):
                logits, loss = self._forward(tokens, lengths, labels)  # (B, C), ()
            scaler.scale(loss if scales is None else loss * scales[step]).backward()
            if cfg.grad_clip > 0:
                scaler.unscale_(opt)  # clip the true gradients, not the scaled ones
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(opt)
            scaler.update()
            opt.zero_grad(set_to_none=True)
            sched.step()
            step_loss[step] = loss.detach()
            step_hits[step] = (logits.detach().argmax(-1) == labels).sum()
            if (step + 1) % _CHECK_EVERY == 0 or step + 1 == n:
                self._check_loss(step_loss, checked, step + 1, n, epoch)  # one host sync
                checked = step + 1
                if self.progress:
                    self.progress(epoch, step + 1, n)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - t0
        # Batch-size-weighted means over the epoch; float64 on the host. Data-parallel:
        # a rank's mean loss weighs its share of the global batch (exact with class weights too).
        weights = (
            [len(b) for b in batches]
            if scales is None
            else [sc * len(b) / self.world_size for sc, b in zip(scales, batches)]
        )
        loss_sum = (step_loss.to("cpu", torch.float64) * torch.tensor(weights, dtype=torch.float64)).sum().item()
        real = torch.tensor(sizes, dtype=torch.float64) > 0  # a filler step counts no hits
        hits = (step_hits.to("cpu", torch.float64) * real).sum().item()
        if self.ddp:  # sums over all ranks: the epoch's numbers for the whole training set
            loss_sum, hits = ddp.all_sum([loss_sum, hits], device)
        return loss_sum / len(train), hits / len(train), lr, seconds

    def _forward(self, tokens: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor):
        # Through the DDP wrapper when data-parallel, so backward() averages gradients.
        if self.class_weight is None:
            return self._net(tokens, lengths, labels)
        # Balanced classes: the model's own (unweighted) loss is not used.
        logits, _ = self._net(tokens, lengths)
        return logits, F.cross_entropy(logits.float(), labels, weight=self.class_weight)

    def _check_loss(self, step_loss: torch.Tensor, lo: int, hi: int, steps: int, epoch: int) -> None:
        """Raise if any loss in ``step_loss[lo:hi]`` is nan/inf, naming the first such step."""
        bad = ~torch.isfinite(step_loss[lo:hi])
        step = lo + int(bad.nonzero()[0, 0]) if bool(bad.any()) else steps
        if self.ddp:  # every rank stops at the same check, at the first bad step of any rank
            step = ddp.all_min(step, self.device)
        if step < steps:
            value = float(step_loss[step])
            what = str(value) if not math.isfinite(value) else "non-finite on another rank"
            raise TrainingError(
                f"Loss became {what} at epoch {epoch}, step {step + 1} (of {steps}); {ckpt_io.last_good(self.checkpoint_path)}. "
                "Lower train.lr or set train.grad_clip."
            )

    # ------------------------------------------------------------------ evaluation

    def evaluate(self, split: EncodedSplit) -> dict[str, float]:
        """``val_loss`` (mean unweighted cross-entropy) and ``val_<name>`` for every per-epoch metric."""
        self.model.to(self.device)
        batches = bucket_batches(split.lengths, self.eval_batch_size, shuffle=False)
        # Device buffers, read back once: per-batch loss sums (float32 so MPS works) and predictions.
        batch_loss = torch.zeros(len(batches), device=self.device)
        preds_sorted = torch.empty(len(split), dtype=torch.long, device=self.device)
        pos = 0
        with torch.inference_mode():
            for b, (idx, logits, labels) in enumerate(
                sorted_logits(self.model, split, batches, self.device, self.pad_id, self.eval_amp_dtype)
            ):
                batch_loss[b] = F.cross_entropy(logits, labels, reduction="sum")
                preds_sorted[pos : pos + len(idx)] = logits.argmax(-1)
                pos += len(idx)
        preds = np.empty(len(split), dtype=np.int64)
        preds[np.concatenate(batches)] = preds_sorted.cpu().numpy()  # back to split order
        metrics = {"val_loss": batch_loss.cpu().double().sum().item() / len(split)}
        n_classes = getattr(self, "num_classes", None) or int(max(split.labels.max(), preds.max())) + 1
        metrics.update({f"val_{k}": v for k, v in epoch_metrics(split.labels, preds, n_classes).items()})
        return metrics

    # ------------------------------------------------------------------ checkpoints

    def _start_checkpoint(self) -> tuple[dict[str, Any] | None, bool]:
        """(checkpoint to resume or None, whether checkpoints are written).

        Data-parallel: rank 0 reads and checks the checkpoint and broadcasts it
        (or the reason it cannot be used), so the ranks never disagree about
        resuming and the other ranks need no access to the file.
        """
        path = self.checkpoint_path
        if not self.ddp:
            ckpt = ckpt_io.load_checkpoint(path) if path is not None and path.exists() else None
            if ckpt is not None:
                ckpt_io.check_identity(path, ckpt, self._identity)
            return ckpt, path is not None
        msg: dict[str, Any] | None = None
        if self.rank == 0:
            msg = {"ckpt": None, "error": None, "checkpointing": path is not None}
            try:
                if path is not None and path.exists():
                    msg["ckpt"] = ckpt_io.load_checkpoint(path)
                    ckpt_io.check_identity(path, msg["ckpt"], self._identity)
            except TrainingError as exc:
                msg = {"ckpt": None, "error": str(exc), "checkpointing": False}
        msg = ddp.from_rank0(msg)  # the first collective of a data-parallel fit
        if msg.get("skip"):
            raise ddp.TrainingSkipped("rank 0 has nothing to train")
        if msg["error"]:
            raise TrainingError(msg["error"])
        return msg["ckpt"], msg["checkpointing"]

    def _save_checkpoint(self, state: ckpt_io.Progress) -> None:
        rng_by_rank = ddp.gather(torch.get_rng_state()) if self.ddp else None  # a collective: every rank takes part
        if self.rank != 0:
            return
        rng = ckpt_io.rng_state(self.rng)
        if rng_by_rank is not None:
            rng["torch_by_rank"] = rng_by_rank  # every rank's dropout stream, so a resume continues each one
        ckpt_io.save_checkpoint(
            self.checkpoint_path,
            identity=self._identity,
            config=self.cfg.model_dump(mode="json"),
            state=state,
            model=self.model,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            scaler=self.scaler,
            rng=rng,
        )


def _summary(m: dict[str, float], epochs: int, improved: bool) -> str:
    return (
        f"epoch {m['epoch']}/{epochs} | train loss {m['train_loss']:.4f} acc {m['train_accuracy']:.4f} | "
        f"val loss {m['val_loss']:.4f} acc {m['val_accuracy']:.4f} f1 {m['val_macro_f1']:.4f} | "
        f"lr {m['lr']:.2e} | {m['epoch_seconds']:.1f}s {m['tokens_per_second'] / 1e3:.1f}k tok/s"
        + (" *" if improved else "")
    )
