"""The trainer: AdamW + warm-up schedules, clipping, early stopping, checkpoints, resume.

One epoch reads top to bottom::

    batches = bucket_batches(...)                     # length-bucketed, seeded order
    for each batch:  lr → forward → backward → clip → step → schedule
                     (loss and hits stay on the device; read back every 50 steps)
    evaluate on validation → early-stopping bookkeeping → on_epoch → checkpoint → stop?

Works with any ``nn.Module`` whose forward is
``logits, loss = model(tokens (B, T) int64, lengths (B,) int64, labels=None)``.

Decisions worth knowing:

* **Weight decay** applies to parameters with ``ndim >= 2`` (embedding and
  recurrent/linear weight matrices); biases and 1-D norm scales get none.
  Frozen parameters (``requires_grad=False``) are left out of the optimizer.
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
* **Checkpoints** (``checkpoint_dir/checkpoint.pt``) are written atomically after
  every epoch and hold only tensors and plain containers, so they load with
  ``torch.load(weights_only=True)``; nothing in them is ever executed. A run
  with a matching checkpoint resumes after its last epoch and ends with the
  same metrics as an uninterrupted run. ``on_epoch`` is called *before* the
  epoch's checkpoint is written, so a crash in between re-reports that epoch
  on resume rather than losing it.
* **Data-parallel** (``distributed=True``, inside an initialised
  ``torch.distributed`` process group, e.g. under ``torchrun``): every rank
  draws the *same* global batches (same seed) as a single process would and
  trains on every ``world_size``-th example of each, so ``train.batch_size``
  stays the global batch. Each rank's mean loss is scaled by its share of the
  batch, which makes DDP's gradient average exactly the single-process batch
  mean (also when the last batch does not split evenly). Rank 0 evaluates and
  broadcasts the validation metrics, so every rank takes the same
  early-stopping decisions; only rank 0 logs, calls ``on_epoch`` and writes
  checkpoints (a resume is read by rank 0 and broadcast). Dropout streams
  differ per rank (``seed + rank``), so results match single-process training
  within a tolerance, not bitwise.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import math
import os
import random
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from textclf.batching import EncodedSplit, bucket_batches, collate, inference_batches
from textclf.config import TrainConfig
from textclf.errors import ConfigError, TrainingError

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = "textclf-train-checkpoint"
CHECKPOINT_VERSION = 1
TIMING_KEYS = ("epoch_seconds", "tokens_per_second")
_CHECK_EVERY = 50  # steps between loss finiteness checks (one host sync each)
# Keys that say *where* to run, not *what* to train: a checkpoint may be resumed
# on another device or with another thread count.
_RESUME_IGNORED = ("device", "num_threads")


# --------------------------------------------------------------------------- environment


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto`` → cuda if available, else mps, else cpu; explicit requests are checked."""
    spec = (spec or "auto").strip().lower()
    mps_ok = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if mps_ok else torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            why = "this torch build has no CUDA support" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise ConfigError(
                f"train.device is {spec!r} but CUDA is not available ({why}). "
                "Set train.device=auto (or cpu), e.g. --set train.device=auto, or install a CUDA build of torch."
            )
        device = torch.device(spec)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"train.device is {spec!r} but only {torch.cuda.device_count()} CUDA device(s) exist "
                f"(cuda:0..cuda:{torch.cuda.device_count() - 1}). Pick one of those or use train.device=cuda."
            )
        return device
    if spec == "mps":
        if not mps_ok:
            raise ConfigError("train.device is 'mps' but MPS is not available on this machine. Set train.device=auto or cpu.")
        return torch.device("mps")
    raise ConfigError(f"train.device: must be auto, cpu, cuda, cuda:N or mps. Got {spec!r} instead.")


def seed_everything(seed: int) -> None:
    """Seed python ``random``, numpy's global RNG and torch (CPU and all CUDA devices).

    Call it before building the model so its initial weights are reproducible.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def set_num_threads(num_threads: int | None) -> int:
    """Use ``num_threads`` torch CPU threads.

    Default: ``OMP_NUM_THREADS`` when set (Ray sets it to a task's CPUs and
    torchrun to 1 per process, so parallel workers don't oversubscribe the
    cores), else the cores this process may use.
    """
    if num_threads is None:
        env = os.environ.get("OMP_NUM_THREADS", "")
        if env.isdigit() and int(env) > 0:
            num_threads = int(env)
        else:
            num_threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if torch.get_num_threads() != num_threads:
        torch.set_num_threads(num_threads)
    return num_threads


# --------------------------------------------------------------------------- optimizer & schedule


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: decay matrices (``ndim >= 2``), not biases / norm scales.

    Nor pretrained embeddings (``model.pretrained_embedding``): decay pulls
    weights toward zero, which for GloVe vectors means toward *no* meaning,
    not toward where they started.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    keep = model.embedding.weight if getattr(model, "pretrained_embedding", False) else None
    decay = [p for p in params if p.ndim >= 2 and p is not keep]
    no_decay = [p for p in params if p.ndim < 2 or p is keep]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW over :func:`param_groups`, fused where torch has the kernel (CPU, CUDA, MPS).

    The fused kernel updates each tensor in one pass instead of ~10 elementwise
    ops; on CPU that took the optimizer from ~10% of a BiLSTM training step to a
    few percent (bench/train_throughput.py). Devices without it use the default.
    """
    groups = param_groups(model, cfg.weight_decay)
    try:
        return torch.optim.AdamW(groups, lr=cfg.lr, fused=True)
    except RuntimeError:  # "fused=True requires all the params to be ... of supported devices"
        return torch.optim.AdamW(groups, lr=cfg.lr)


def lr_lambda(schedule: str, total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """LR multiplier at optimizer step ``step`` (0-based): linear warm-up, then the schedule.

    Warm-up rises to 1.0 by step ``warmup_steps``; ``linear`` and ``cosine``
    then fall to exactly 0 at ``total_steps``; ``constant`` stays at 1.
    """
    if schedule not in ("constant", "linear", "cosine"):
        raise ConfigError(f"train.schedule: must be one of constant, linear, cosine. Got {schedule!r} instead.")
    decay_steps = max(1, total_steps - warmup_steps)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup_steps) / decay_steps)
        if schedule == "linear":
            return 1.0 - progress
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def _amp_dtype(device: torch.device, enabled: bool) -> torch.dtype | None:
    """bf16 where the GPU supports it, else fp16; never on CPU/MPS."""
    if not enabled or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


# --------------------------------------------------------------------------- results


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


@dataclass
class _Progress:
    """Everything that changes between epochs (and goes into the checkpoint)."""

    epoch: int = 0  # last completed epoch
    history: list[dict[str, float]] = field(default_factory=list)
    best_metric: float | None = None
    best_epoch: int = 0
    best_state: dict[str, torch.Tensor] | None = None  # CPU copy of the best weights
    bad_epochs: int = 0  # epochs since the last improvement
    stopped_early: bool = False
    finished: bool = False


# --------------------------------------------------------------------------- trainer


class TrainingSkipped(Exception):
    """Raised by a data-parallel ``fit`` on ranks other than 0 when rank 0 will not train."""


def skip_distributed_training() -> None:
    """On rank 0: release the other ranks waiting in ``Trainer.fit`` (they raise :class:`TrainingSkipped`).

    Call it when rank 0 did not train after all (e.g. the trained model was
    in the cache), so the other ranks don't wait for a training that never
    starts. Its message takes the place of the one ``fit`` broadcasts first.
    """
    dist.broadcast_object_list([{"skip": True}], src=0)


class Trainer:
    """Train ``model`` with ``cfg``; see the module docstring for the decisions.

    ``metric_fn(y_true, y_pred) -> {name: value}`` adds extra validation
    metrics (as ``val_<name>``) to each epoch's metrics. ``on_epoch(epoch,
    metrics)`` is called after every epoch (for MLflow, with step = epoch).
    ``log`` receives a one-line summary per epoch; ``progress(epoch, step,
    steps)`` is called every few dozen steps.

    ``distributed=True`` trains data-parallel in the current
    ``torch.distributed`` process group (see the module docstring); pass the
    same arguments on every rank (``checkpoint_dir`` matters on rank 0 only).
    The default ``None`` means: data-parallel when a process group with more
    than one rank is initialised. On the other ranks ``fit`` first waits for
    rank 0, which either starts training or calls
    :func:`skip_distributed_training` (it found the result cached); then
    ``fit`` raises :class:`TrainingSkipped`.
    """

    def __init__(
        self,
        model: nn.Module,
        cfg: TrainConfig,
        *,
        checkpoint_dir: str | Path | None = None,
        pad_id: int = 0,
        metric_fn: Callable[[np.ndarray, np.ndarray], dict[str, float]] | None = None,
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
        self.metric_fn = metric_fn
        self.on_epoch = on_epoch
        self.eval_batch_size = eval_batch_size
        self.log = log
        self.progress = progress
        self.device = resolve_device(cfg.device)  # fail on a bad device before any work
        if distributed is None:  # under torchrun (see textclf.distributed) every trainer joins the group
            distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        self.distributed = distributed
        self.rank, self.world_size = 0, 1
        if distributed:
            if not (dist.is_available() and dist.is_initialized()):
                raise ConfigError(
                    "Data-parallel training needs an initialised torch.distributed process group: "
                    "launch with torchrun (see textclf.distributed)."
                )
            self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
            if self.device.type == "cuda" and self.device.index is None:  # one GPU per local rank
                self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", self.rank % torch.cuda.device_count())))
            if self.rank != 0:  # rank 0 reports for the group
                self.log = self.on_epoch = self.progress = None
                self.checkpoint_dir = None
        self.amp_dtype = _amp_dtype(self.device, cfg.mixed_precision)
        self.metric = f"val_{cfg.early_stopping_metric}"
        self.higher_is_better = cfg.early_stopping_metric != "loss"

    @property
    def checkpoint_path(self) -> Path | None:
        return self.checkpoint_dir / CHECKPOINT_NAME if self.checkpoint_dir is not None else None

    # ------------------------------------------------------------------ fit

    def fit(self, train: EncodedSplit, val: EncodedSplit) -> TrainResult:
        cfg, device = self.cfg, self.device
        if len(train) == 0 or len(val) == 0:
            raise TrainingError(f"Cannot train on an empty split (train: {len(train)} examples, validation: {len(val)}).")
        set_num_threads(cfg.num_threads)
        model = self.model.to(device)
        torch.manual_seed(cfg.seed + self.rank)  # dropout stream (its own per rank)
        self.rng = np.random.default_rng(cfg.seed)  # batch order: the same on every rank

        steps_per_epoch = math.ceil(len(train) / cfg.batch_size)  # bucket_batches always gives this many
        total_steps = cfg.epochs * steps_per_epoch
        warmup_steps = round(cfg.warmup_ratio * total_steps)
        self.optimizer = make_optimizer(model, cfg)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_lambda(cfg.schedule, total_steps, warmup_steps)
        )
        # Loss scaling is only needed for fp16; a disabled scaler is a pass-through.
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.class_weight = _balanced_weights(train, val, model, device) if cfg.class_weights == "balanced" else None
        # Per-class loss weights as the loss sees them (None = plain mean), to split a
        # global batch's weight between ranks exactly.
        w = self.class_weight if self.class_weight is not None else getattr(model, "class_weights", None)
        self._loss_weights = w.detach().cpu().double().numpy() if isinstance(w, torch.Tensor) else None
        # Hashing the data costs a pass over it, so only when checkpoints are kept.
        self._identity = self._run_identity(train, val) if self.checkpoint_path is not None else None

        state, resumed_from = _Progress(), None
        # Data-parallel: this is the first collective, so a rank 0 that skips training
        # (skip_distributed_training) meets the other ranks here.
        ckpt, self._checkpointing = self._start_checkpoint()
        self._net = model
        if self.distributed:
            from torch.nn.parallel import DistributedDataParallel

            # DDP broadcasts rank 0's weights (and buffers) now and averages gradients in
            # backward(). No buffer changes in training (the frozen embedding rows, class
            # weights), so re-broadcasting them every step would only cost time.
            self._net = DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None, broadcast_buffers=False
            )
        if ckpt is not None:
            state = self._resume(ckpt, check=not self.distributed)  # distributed: rank 0 checked it
            resumed_from = state.epoch
            if self.log:
                self.log(f"resuming from {self.checkpoint_path} after epoch {state.epoch}")

        first_epoch = cfg.epochs + 1 if state.finished else state.epoch + 1
        for epoch in range(first_epoch, cfg.epochs + 1):
            # ---- train (raises on a nan/inf loss, naming the step)
            train_loss, train_accuracy, lr, seconds = self._train_epoch(train, epoch)
            if not _weights_finite(model):  # e.g. an inf gradient in the very last step
                raise TrainingError(
                    f"Weights became non-finite during epoch {epoch}; {self._last_good()}. "
                    "Lower train.lr or set train.grad_clip."
                )
            # ---- validate
            metrics = {"epoch": epoch, "train_loss": train_loss, "train_accuracy": train_accuracy}
            metrics.update(self._evaluate_for_all(val))
            metrics.update(lr=lr, epoch_seconds=seconds, tokens_per_second=train.num_tokens / max(seconds, 1e-9))
            # ---- early-stopping bookkeeping
            score = metrics[self.metric]
            improved = state.best_metric is None or (
                score > state.best_metric if self.higher_is_better else score < state.best_metric
            )
            if improved:
                state.best_metric, state.best_epoch, state.bad_epochs = score, epoch, 0
                state.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            else:
                state.bad_epochs += 1
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
                    self.log(f"early stopping: no {self.metric} improvement for {cfg.patience} epoch(s); "
                             f"best was epoch {state.best_epoch}")
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
        batches = bucket_batches(train.lengths, cfg.batch_size, shuffle=True, rng=self.rng, chunk_batches=cfg.bucket_chunk)
        parts, scales, sizes = self._rank_parts(train, batches)  # data-parallel: this rank's share
        n = len(parts)
        # Per-step mean loss and correct count stay on the device (no .item() per step).
        step_loss = torch.zeros(n, device=device)
        step_hits = torch.zeros(n, dtype=torch.long, device=device)
        checked = 0
        for step, idx in enumerate(parts):
            lr = opt.param_groups[0]["lr"]  # set by the scheduler after the previous step
            tokens, lengths, labels = collate(train, idx, self.pad_id, device)  # (B, T), (B,), (B,)
            with _autocast(device, self.amp_dtype):
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
        weights = [len(b) for b in batches] if scales is None else [sc * len(b) / self.world_size for sc, b in zip(scales, batches)]
        loss_sum = (step_loss.to("cpu", torch.float64) * torch.tensor(weights, dtype=torch.float64)).sum().item()
        real = torch.tensor(sizes, dtype=torch.float64) > 0  # a filler step counts no hits
        hits = (step_hits.to("cpu", torch.float64) * real).sum().item()
        if self.distributed:  # sums over all ranks: the epoch's numbers for the whole training set
            sums = torch.tensor([loss_sum, hits], dtype=torch.float64, device=device)
            dist.all_reduce(sums)
            loss_sum, hits = sums.tolist()
        return loss_sum / len(train), hits / len(train), lr, seconds

    def _rank_parts(self, train: EncodedSplit, batches: list[np.ndarray]):
        """(this rank's indices per step, loss scale per step or None, examples per step).

        Single process: the batches themselves. Data-parallel: every
        ``world_size``-th example of each global batch (strided, so all ranks get
        similar lengths and pad alike), and a scale ``world_size * share`` where
        ``share`` is this rank's part of the batch's loss denominator (its
        examples, or their class weights): DDP averages gradients over ranks, so
        the sum of scaled per-rank means is exactly the global batch mean. A rank
        left without examples (a short last batch) still steps with the group
        on one example scaled by 0, as DDP needs every rank in every backward.
        """
        if not self.distributed:
            return batches, None, [len(b) for b in batches]
        world, rank, w = self.world_size, self.rank, self._loss_weights
        parts, scales, sizes = [], [], []
        for batch in batches:
            mine = batch[rank::world]
            if len(mine) == 0:
                parts.append(batch[:1])
                scales.append(0.0)
                sizes.append(0)
                continue
            share = len(mine) / len(batch)
            if w is not None:
                total = w[train.labels[batch]].sum()
                share = w[train.labels[mine]].sum() / total if total > 0 else share
            parts.append(mine)
            scales.append(world * share)
            sizes.append(len(mine))
        return parts, scales, sizes

    def _forward(self, tokens: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor):
        # Through the DDP wrapper when data-parallel, so backward() averages gradients.
        if self.class_weight is None:
            return self._net(tokens, lengths, labels)
        # Balanced classes: the model's own (unweighted) loss is not used.
        logits, _ = self._net(tokens, lengths)
        return logits, F.cross_entropy(logits.float(), labels, weight=self.class_weight)

    def _check_loss(self, step_loss: torch.Tensor, lo: int, hi: int, steps: int, epoch: int) -> None:
        """Raise if any loss in ``step_loss[lo:hi]`` is nan/inf, naming the first such step."""
        window = step_loss[lo:hi]
        bad = ~torch.isfinite(window)
        step = lo + int(bad.nonzero()[0, 0]) if bool(bad.any()) else steps
        if self.distributed:  # every rank stops at the same check, at the first bad step of any rank
            first = torch.tensor([step], device=self.device)
            dist.all_reduce(first, op=dist.ReduceOp.MIN)
            step = int(first.item())
        if step < steps:
            value = float(step_loss[step])
            what = str(value) if not math.isfinite(value) else "non-finite on another rank"
            raise TrainingError(
                f"Loss became {what} at epoch {epoch}, step {step + 1} (of {steps}); {self._last_good()}. "
                "Lower train.lr or set train.grad_clip."
            )

    def _last_good(self) -> str:
        path = self.checkpoint_path
        if path is None:
            return "no checkpoint directory was given"
        if not path.exists():
            return f"no checkpoint was written yet ({path})"
        return f"the last good checkpoint is kept at {path} (a changed config needs it deleted first)"

    # ------------------------------------------------------------------ evaluation

    def _evaluate_for_all(self, split: EncodedSplit) -> dict[str, float]:
        """:meth:`evaluate`; data-parallel: on rank 0, broadcast, so all ranks decide alike."""
        if not self.distributed:
            return self.evaluate(split)
        box = [self.evaluate(split) if self.rank == 0 else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def evaluate(self, split: EncodedSplit) -> dict[str, float]:
        """``val_loss`` (mean unweighted cross-entropy), ``val_accuracy``, ``val_macro_f1`` (+ metric_fn's)."""
        from sklearn.metrics import f1_score

        self.model.to(self.device)
        batches = bucket_batches(split.lengths, self.eval_batch_size, shuffle=False)
        # Device buffers, read back once: per-batch loss sums (float32 so MPS works) and predictions.
        batch_loss = torch.zeros(len(batches), device=self.device)
        preds_sorted = torch.empty(len(split), dtype=torch.long, device=self.device)
        pos = 0
        with torch.inference_mode():
            for b, (idx, logits, labels) in enumerate(
                _sorted_logits(self.model, split, batches, self.device, self.pad_id, self.amp_dtype)
            ):
                batch_loss[b] = F.cross_entropy(logits, labels, reduction="sum")
                preds_sorted[pos : pos + len(idx)] = logits.argmax(-1)
                pos += len(idx)
        preds = np.empty(len(split), dtype=np.int64)
        preds[np.concatenate(batches)] = preds_sorted.cpu().numpy()  # back to split order
        y = split.labels
        metrics = {
            "val_loss": batch_loss.cpu().double().sum().item() / len(split),
            "val_accuracy": float((preds == y).mean()),
            "val_macro_f1": float(f1_score(y, preds, average="macro", zero_division=0)),
        }
        if self.metric_fn is not None:
            metrics.update({f"val_{k}": float(v) for k, v in self.metric_fn(y, preds).items()})
        return metrics

    # ------------------------------------------------------------------ checkpoints

    def _run_identity(self, train: EncodedSplit, val: EncodedSplit) -> dict[str, Any]:
        """What a checkpoint must match to be resumed: train config, model hparams, data."""
        config = {k: v for k, v in self.cfg.model_dump(mode="json").items() if k not in _RESUME_IGNORED}
        return {
            "train": config,
            "hparams": _plain(getattr(self.model, "hparams", None)),
            "data": {"train": _fingerprint(train), "validation": _fingerprint(val)},
        }

    def _start_checkpoint(self) -> tuple[dict[str, Any] | None, bool]:
        """(checkpoint to resume or None, whether checkpoints are written).

        Data-parallel: rank 0 reads and checks the checkpoint and broadcasts it
        (or the reason it cannot be used), so the ranks never disagree about
        resuming and the other ranks need no access to the file.
        """
        path = self.checkpoint_path
        if not self.distributed:
            return (load_checkpoint(path) if path is not None and path.exists() else None), path is not None
        box: list[Any] = [None]  # the first collective of a data-parallel fit
        if self.rank == 0:
            msg: dict[str, Any] = {"ckpt": None, "error": None, "checkpointing": path is not None}
            try:
                if path is not None and path.exists():
                    msg["ckpt"] = load_checkpoint(path)
                    self._check_identity(msg["ckpt"])
            except TrainingError as exc:
                msg = {"ckpt": None, "error": str(exc), "checkpointing": False}
            box = [msg]
        dist.broadcast_object_list(box, src=0)
        if box[0].get("skip"):
            raise TrainingSkipped("rank 0 has nothing to train")
        if box[0]["error"]:
            raise TrainingError(box[0]["error"])
        return box[0]["ckpt"], box[0]["checkpointing"]

    def _save_checkpoint(self, state: _Progress) -> None:
        by_rank = None
        if self.distributed:  # every rank's dropout stream, so a resume continues each one (a collective)
            by_rank = [None] * self.world_size
            dist.all_gather_object(by_rank, torch.get_rng_state())
            if self.rank != 0:
                return
        rng = {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": _plain(self.rng.bit_generator.state),  # PCG64: dict of (big) ints
            "python": _python_rng_state(),
        }
        if by_rank is not None:
            rng["torch_by_rank"] = by_rank
        obj = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "identity": self._identity,
            "config": self.cfg.model_dump(mode="json"),
            "hparams": self._identity["hparams"],
            "epoch": state.epoch,
            "history": _plain(state.history),
            "best_metric": state.best_metric,
            "best_epoch": state.best_epoch,
            "best_state": state.best_state,
            "bad_epochs": state.bad_epochs,
            "stopped_early": state.stopped_early,
            "finished": state.finished,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng,
        }
        _atomic_save(obj, self.checkpoint_path)

    def _check_identity(self, ckpt: dict[str, Any]) -> None:
        path = self.checkpoint_path
        diff = _diff(ckpt.get("identity"), self._identity)
        if diff:
            shown = ", ".join(diff[:8]) + (", ..." if len(diff) > 8 else "")
            raise TrainingError(
                f"Checkpoint {path} belongs to another run configuration (differs in: {shown}). "
                f"Delete it to start fresh (rm {path}) or use another checkpoint directory."
            )

    def _resume(self, ckpt: dict[str, Any], *, check: bool = True) -> _Progress:
        path = self.checkpoint_path
        if check:
            self._check_identity(ckpt)
        try:
            self.model.load_state_dict(ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.scheduler.load_state_dict(ckpt["scheduler"])
            if self.scaler.is_enabled() and ckpt.get("scaler"):
                self.scaler.load_state_dict(ckpt["scaler"])
            rng = ckpt["rng"]
            by_rank = rng.get("torch_by_rank") or []
            torch.set_rng_state(by_rank[self.rank] if len(by_rank) == self.world_size else rng["torch"])
            if torch.cuda.is_available() and len(rng["cuda"]) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(rng["cuda"])
            self.rng.bit_generator.state = rng["numpy"]
            py = rng["python"]
            random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
            return _Progress(
                epoch=int(ckpt["epoch"]),
                history=[dict(h) for h in ckpt["history"]],
                best_metric=ckpt["best_metric"],
                best_epoch=int(ckpt["best_epoch"]),
                best_state=ckpt["best_state"],
                bad_epochs=int(ckpt["bad_epochs"]),
                stopped_early=bool(ckpt["stopped_early"]),
                finished=bool(ckpt["finished"]),
            )
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise TrainingError(
                f"Checkpoint {path} matches this run but cannot be restored ({type(exc).__name__}: {exc}). "
                f"Delete it to start fresh (rm {path})."
            ) from None


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a trainer checkpoint safely (``weights_only=True``: nothing is unpickled as code)."""
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated file, foreign pickle refused by weights_only, ...
        import pickle

        if isinstance(exc, pickle.UnpicklingError):  # torch's own text is about changing weights_only: not advice to give
            why = "it holds Python objects whose loading would run code; textclf only loads tensors (weights_only=True)"
        else:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            why = f"{type(exc).__name__}: {first[:200]}"
        raise TrainingError(
            f"Checkpoint {path} is corrupt or not a textclf checkpoint ({why}). "
            f"It was not loaded. Delete it to start fresh (rm {path})."
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise TrainingError(f"{path} is not a textclf training checkpoint. Delete it or use another checkpoint directory.")
    if ckpt.get("version") != CHECKPOINT_VERSION:
        raise TrainingError(
            f"Checkpoint {path} has format version {ckpt.get('version')}, this textclf writes {CHECKPOINT_VERSION}. "
            f"Delete it to start fresh (rm {path})."
        )
    return ckpt


# --------------------------------------------------------------------------- inference


def _sorted_logits(model, split: EncodedSplit, batches: list[np.ndarray], device, pad_id: int, amp_dtype=None):
    """Yield ``(indices, logits (B, C) float32, labels (B,))`` per batch, model in eval mode.

    Callers wrap the loop in ``torch.inference_mode()``.
    """
    model.eval()
    for idx in batches:
        tokens, lengths, labels = collate(split, idx, pad_id, device)
        with _autocast(device, amp_dtype):
            logits, _ = model(tokens, lengths)
        yield idx, logits.float(), labels


def predict_proba(
    model: nn.Module,
    split: EncodedSplit,
    *,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    pad_id: int = 0,
) -> np.ndarray:
    """Class probabilities, float32 ``(N, C)``, in the original order of ``split``.

    Batches are length-sorted for speed and the rows un-permuted at the end.
    ``device=None`` uses the device the model is on; otherwise the model is moved.
    """
    if device is None:
        device = next(model.parameters()).device
    else:
        device = torch.device(device)
        if next(model.parameters()).device != device:  # .to() walks every module: skip it per call
            model.to(device)
    was_training = model.training
    batches = inference_batches(split.lengths, batch_size)  # sorted by length, little padding
    out, pos = None, 0  # (N, C) on the device, rows in sorted order
    try:
        with torch.inference_mode():
            for idx, logits, _ in _sorted_logits(model, split, batches, device, pad_id):
                if out is None:
                    out = torch.empty(len(split), logits.shape[-1], dtype=torch.float32, device=device)
                out[pos : pos + len(idx)] = logits.softmax(-1)
                pos += len(idx)
    finally:
        model.train(was_training)
    if out is None:  # empty split: no batch told us C
        return np.zeros((0, 0), dtype=np.float32)
    probs = np.empty((len(split), out.shape[1]), dtype=np.float32)
    probs[np.concatenate(batches)] = out.cpu().numpy()  # un-permute
    return probs


# --------------------------------------------------------------------------- small helpers


def _weights_finite(model: nn.Module) -> bool:
    flags = [torch.isfinite(p).all() for p in model.parameters()]
    return bool(torch.stack(flags).all()) if flags else True


def _balanced_weights(train: EncodedSplit, val: EncodedSplit, model: nn.Module, device) -> torch.Tensor:
    """sklearn's "balanced" weights: n / (classes_present * count_c); unseen classes get 1."""
    hp = getattr(model, "hparams", None) or {}
    num_classes = max(
        int(train.labels.max()) + 1,
        int(val.labels.max()) + 1,
        int(hp.get("num_classes") or hp.get("n_classes") or 0),
    )
    counts = np.bincount(train.labels, minlength=num_classes).astype(np.float64)
    present = max(int((counts > 0).sum()), 1)
    weights = np.where(counts > 0, len(train) / (present * np.maximum(counts, 1)), 1.0)
    return torch.tensor(weights, dtype=torch.float32, device=device)


def _fingerprint(split: EncodedSplit) -> dict[str, Any]:
    h = hashlib.blake2b(digest_size=16)
    for arr in (split.offsets, split.labels, split.ids):
        h.update(memoryview(np.ascontiguousarray(arr)).cast("B"))
    return {"examples": len(split), "tokens": split.num_tokens, "blake2b": h.hexdigest()}


def _plain(obj: Any) -> Any:
    """Convert to plain python containers/scalars (what ``weights_only`` loading accepts)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)


def _python_rng_state() -> dict[str, Any]:
    version, state, gauss = random.getstate()
    return {"version": version, "state": list(state), "gauss": gauss}


def _diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new)):
            out += _diff(old.get(k), new.get(k), f"{prefix}{k}.")
        return out
    return [] if old == new else [prefix.rstrip(".") or "(everything)"]


def _atomic_save(obj: Any, path: Path) -> None:
    """torch.save to a temp file in the same directory, fsync, then os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    with contextlib.suppress(OSError):  # make the rename itself durable (POSIX)
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _summary(m: dict[str, float], epochs: int, improved: bool) -> str:
    return (
        f"epoch {m['epoch']}/{epochs} | train loss {m['train_loss']:.4f} acc {m['train_accuracy']:.4f} | "
        f"val loss {m['val_loss']:.4f} acc {m['val_accuracy']:.4f} f1 {m['val_macro_f1']:.4f} | "
        f"lr {m['lr']:.2e} | {m['epoch_seconds']:.1f}s {m['tokens_per_second'] / 1e3:.1f}k tok/s"
        + (" *" if improved else "")
    )
