"""The training checkpoint: what is saved after every epoch, and how a run resumes from it.

A checkpoint (``<dir>/checkpoint.pt``) holds the model, optimiser, scheduler
and scaler states, every RNG stream, the early-stopping bookkeeping
(:class:`Progress`) and the *identity* of the run: the train config (minus
where it runs), the model's hyper-parameters and a hash of the data. A
checkpoint is resumed only when its identity matches, so a changed config
never continues someone else's training.

Files are written atomically (temp file, fsync, rename), so a full disk
leaves the previous epoch's checkpoint as it was (and no partial file), and
is reported as a :class:`~textclf.core.errors.DiskFullError` naming the
checkpoint. They hold only tensors
and plain containers, so they load with ``torch.load(weights_only=True)``:
nothing in them is ever executed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from textclf.core import disk
from textclf.core.errors import TrainingError
from textclf.text.batching import EncodedSplit

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = "textclf-train-checkpoint"
CHECKPOINT_VERSION = 1
# Keys that say *where* to run, not *what* to train: a checkpoint may be resumed
# on another device or with another thread count.
RESUME_IGNORED = ("device", "num_threads")


@dataclass
class Progress:
    """Everything that changes between epochs (and goes into the checkpoint)."""

    epoch: int = 0  # last completed epoch
    history: list[dict[str, float]] = field(default_factory=list)
    best_metric: float | None = None
    best_epoch: int = 0
    best_state: dict[str, torch.Tensor] | None = None  # CPU copy of the best weights
    bad_epochs: int = 0  # epochs since the last improvement
    stopped_early: bool = False
    finished: bool = False


def run_identity(train_config: dict[str, Any], hparams: Any, train: EncodedSplit, val: EncodedSplit) -> dict[str, Any]:
    """What a checkpoint must match to be resumed: train config (minus where it runs), model hparams, data."""
    return {
        "train": {k: v for k, v in train_config.items() if k not in RESUME_IGNORED},
        "hparams": _plain(hparams),
        "data": {"train": _fingerprint(train), "validation": _fingerprint(val)},
    }


def rng_state(numpy_rng: np.random.Generator) -> dict[str, Any]:
    """Every random stream training draws from (torch CPU and CUDA, the batch-order generator, python)."""
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": _plain(numpy_rng.bit_generator.state),  # PCG64: dict of (big) ints
        "python": _python_rng_state(),
    }


def save_checkpoint(
    path: Path,
    *,
    identity: dict[str, Any],
    config: dict[str, Any],
    state: Progress,
    model,
    optimizer,
    scheduler,
    scaler,
    rng: dict[str, Any],
) -> None:
    _atomic_save(
        {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "identity": identity,
            "config": config,
            "hparams": identity["hparams"],
            "epoch": state.epoch,
            "history": _plain(state.history),
            "best_metric": state.best_metric,
            "best_epoch": state.best_epoch,
            "best_state": state.best_state,
            "bad_epochs": state.bad_epochs,
            "stopped_early": state.stopped_early,
            "finished": state.finished,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "rng": rng,
        },
        path,
    )


def last_good(path: Path | None) -> str:
    """Where a failed run's last good checkpoint is (for its error message)."""
    if path is None:
        return "no checkpoint directory was given"
    if not path.exists():
        return f"no checkpoint was written yet ({path})"
    return f"the last good checkpoint is kept at {path} (a changed config needs it deleted first)"


def check_identity(path: Path, ckpt: dict[str, Any], identity: dict[str, Any]) -> None:
    diff = _diff(ckpt.get("identity"), identity)
    if diff:
        shown = ", ".join(diff[:8]) + (", ..." if len(diff) > 8 else "")
        raise TrainingError(
            f"Checkpoint {path} belongs to another run configuration (differs in: {shown}). "
            f"Delete it to start fresh (rm {path}) or use another checkpoint directory."
        )


def restore(
    path: Path,
    ckpt: dict[str, Any],
    *,
    model,
    optimizer,
    scheduler,
    scaler,
    numpy_rng: np.random.Generator,
    rank: int = 0,
    world_size: int = 1,
) -> Progress:
    """Load a (matching) checkpoint into the training objects; returns the progress to continue from."""
    try:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if scaler.is_enabled() and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        rng = ckpt["rng"]
        by_rank = rng.get("torch_by_rank") or []  # data-parallel: every rank's own dropout stream
        torch.set_rng_state(by_rank[rank] if len(by_rank) == world_size else rng["torch"])
        if torch.cuda.is_available() and len(rng["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(rng["cuda"])
        numpy_rng.bit_generator.state = rng["numpy"]
        py = rng["python"]
        random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
        return Progress(
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

        if isinstance(
            exc, pickle.UnpicklingError
        ):  # torch's own text is about changing weights_only: not advice to give
            why = "it holds Python objects whose loading would run code; textclf only loads tensors (weights_only=True)"
        else:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            why = f"{type(exc).__name__}: {first[:200]}"
        raise TrainingError(
            f"Checkpoint {path} is corrupt or not a textclf checkpoint ({why}). "
            f"It was not loaded. Delete it to start fresh (rm {path})."
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise TrainingError(
            f"{path} is not a textclf training checkpoint. Delete it or use another checkpoint directory."
        )
    if ckpt.get("version") != CHECKPOINT_VERSION:
        raise TrainingError(
            f"Checkpoint {path} has format version {ckpt.get('version')}, this textclf writes {CHECKPOINT_VERSION}. "
            f"Delete it to start fresh (rm {path})."
        )
    return ckpt


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
    fix = (
        "The previous checkpoint (if any) is kept. Free space (`textclf cache prune --older-than 30` removes old "
        "stage-cache entries) or move the stage cache (--cache-dir / TEXTCLF_CACHE_DIR), then re-run the same command."
    )
    # torch reports a failed write as "unexpected pos ..." with the OSError only in its context: name the file here.
    with disk.reporting(path, root=path.parent, what="the training checkpoint", fix=fix):
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
