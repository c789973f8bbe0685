"""How big a model is, and whether training or loading it fits, known before anything is allocated.

Parameters are counted exactly, for any family of
:data:`textclf.models.registry.ENCODERS`, by building the classifier on
``torch.device("meta")``: shapes without storage, so ``hidden_size=10**6``
costs nothing to count.

Training memory (float32, 4 bytes a number) is estimated as::

    weights              4 B × all parameters (trainable + frozen rows/layers)
    best-weights copy    4 B × all parameters     (the trainer keeps the best epoch; CPU only)
    gradients + AdamW   12 B × trainable parameters (gradient, exp_avg, exp_avg_sq)
    activations          4 B × max(train batch, evaluation batch), where
        train batch = B × T × (hidden × layers × directions × f + 2 × embedding_dim) + 3 × B × classes
        eval batch  = B' × T × (hidden × directions × 6 + 2 × embedding_dim) + 3 × B' × classes

with ``B = train.batch_size``, ``B' = evaluate.batch_size``,
``T = tokenizer.max_length`` (the longest batch) and ``f`` the family's
``activations`` (floats the backward keeps per token, hidden unit, layer and
direction; measured, see the registry). Inference saves nothing for a
backward pass: it holds about one layer's gates and outputs at a time (6
floats per token and hidden unit covers an LSTM's 4 gates, its output and a
copy), hence neither ``f`` nor ``layers`` there. It is an estimate of
the peak, not a bound: allocator overhead, the data and Python itself come
on top; what it is for is refusing what cannot possibly fit, before a run
starts, instead of being killed by the kernel hours later.

:func:`available_memory` says how much there is: ``TEXTCLF_MEMORY_LIMIT``
when set (bytes, or e.g. ``16GB``), else free device memory on CUDA, else
``MemAvailable`` of ``/proc/meminfo`` (or ``os.sysconf``), lowered to a
cgroup's limit when the process runs under one.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BYTES = 4  # float32: weights, gradients, optimizer moments, activations
OPTIMIZER_BYTES = 12  # per trainable parameter: its gradient and AdamW's two moments
INFERENCE_FLOATS = 6  # per token, hidden unit and direction held at once by a forward pass without autograd
PARTS = ("embedding", "encoder", "head")
LIMIT_ENV = "TEXTCLF_MEMORY_LIMIT"


def _part(name: str) -> str:
    head = name.split(".", 1)[0]
    return head if head in PARTS else "encoder"


def meta_model(hparams: dict[str, Any]):
    """The classifier ``hparams`` describe, on the meta device (no storage; hparams are checked as for a real one)."""
    import torch

    from textclf.models.classifier import TextClassifier, _check_class_weights

    hp = dict(hparams)
    # Class weights are checked on the CPU: a meta tensor cannot be read back, and they hold no parameters.
    weights = hp.pop("class_weights", None)
    with torch.device("meta"):
        model = TextClassifier(**hp)
    _check_class_weights(weights, model.hparams["num_classes"])
    return model


def parameter_counts(
    hparams: dict[str, Any], *, embedding_trainable: bool = True, encoder_frozen: bool = False
) -> dict[str, dict[str, int]]:
    """``{"trainable": {part: n}, "frozen": {part: n}}`` for parts embedding / encoder / head, exactly.

    Frozen: the embedding's frozen rows (``embedding.extend_vocab``), an
    embedding with ``embedding.trainable: false``, an encoder with
    ``encoder.freeze`` (``encoder.init_from``).
    """
    model = meta_model(hparams)
    out: dict[str, dict[str, int]] = {"trainable": dict.fromkeys(PARTS, 0), "frozen": dict.fromkeys(PARTS, 0)}
    for name, p in model.named_parameters():
        part = _part(name)
        frozen = (part == "embedding" and not embedding_trainable) or (part == "encoder" and encoder_frozen)
        out["frozen" if frozen else "trainable"][part] += p.numel()
    for name, b in model.named_buffers():
        if name in model.state_dict():  # persistent buffers only (the frozen embedding rows)
            out["frozen"][_part(name)] += b.numel()
    return out


def expected_state(hparams: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of the state dict a model with ``hparams`` has (what its safetensors file must hold)."""
    return {k: tuple(v.shape) for k, v in meta_model(hparams).state_dict().items()}


@dataclass(frozen=True)
class Estimate:
    """Bytes a training (or a loaded model) needs, by part."""

    trainable: dict[str, int]  # parameters per part
    frozen: dict[str, int]
    activations: int  # bytes
    batch: str  # "64 texts × 256 tokens", for the message
    best_copy: bool = True  # a second copy of the weights is held
    copy_note: str = "and a copy of the best epoch"  # what that copy is, for the message

    @property
    def parameters(self) -> int:
        return sum(self.trainable.values()) + sum(self.frozen.values())

    def part_bytes(self) -> dict[str, int]:
        """Bytes by what a user can change: embedding / encoder / head parameters, activations."""
        copies = 2 if self.best_copy else 1
        out = {
            p: BYTES * copies * (self.trainable[p] + self.frozen[p]) + OPTIMIZER_BYTES * self.trainable[p]
            for p in PARTS
        }
        out["activations"] = self.activations
        return out

    @property
    def total(self) -> int:
        return sum(self.part_bytes().values())

    def describe(self) -> str:
        n_train = sum(self.trainable.values())
        weights = BYTES * (2 if self.best_copy else 1) * self.parameters
        parts = [
            f"{human(weights)} weights{f' ({self.copy_note})' if self.best_copy else ''} for {self.parameters:,} parameters"
        ]
        if n_train:
            parts.append(f"{human(OPTIMIZER_BYTES * n_train)} gradients + AdamW state for {n_train:,} trainable ones")
        if self.activations:
            parts.append(f"{human(self.activations)} activations for one batch of {self.batch}")
        return ", ".join(parts)


def training_estimate(
    hparams: dict[str, Any],
    *,
    batch_size: int,
    max_length: int,
    eval_batch_size: int = 0,
    embedding_trainable: bool = True,
    encoder_frozen: bool = False,
    best_copy: bool = True,
) -> Estimate:
    """The memory training ``hparams`` needs (see the module docstring for the formula)."""
    from textclf.models.registry import ENCODERS

    counts = parameter_counts(hparams, embedding_trainable=embedding_trainable, encoder_frozen=encoder_frozen)
    family = ENCODERS[hparams.get("cell", "lstm")]
    hidden, layers = int(hparams.get("hidden_size", 128)), int(hparams.get("layers", 1))
    dirs = 2 if hparams.get("bidirectional") else 1
    dim, classes, t = int(hparams["embedding_dim"]), int(hparams["num_classes"]), int(max_length)
    train = batch_size * t * (hidden * dirs * family.activations * layers + 2 * dim) + 3 * batch_size * classes
    evaluate = eval_batch_size * t * (hidden * dirs * INFERENCE_FLOATS + 2 * dim) + 3 * eval_batch_size * classes
    return Estimate(
        trainable=counts["trainable"],
        frozen=counts["frozen"],
        activations=int(BYTES * max(train, evaluate)),
        batch=f"{batch_size:,} texts × {t:,} tokens",
        best_copy=best_copy,
    )


def weights_estimate(hparams: dict[str, Any]) -> Estimate:
    """The memory loading a model folder needs: its weights, read once and copied into the model."""
    counts = parameter_counts(hparams)
    return Estimate(
        trainable=dict.fromkeys(PARTS, 0),
        frozen={p: counts["trainable"][p] + counts["frozen"][p] for p in PARTS},
        activations=0,
        batch="",
        copy_note="read from the file, then copied into the model",
    )


# --------------------------------------------------------------------------- what is available


def human(n: float) -> str:
    """Bytes for people: 1.5 GiB, 300.0 MiB."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{int(n)} B"


def parse_size(text: str) -> int | None:
    """``"16GB"``, ``"512M"``, ``"1e9"`` -> bytes (binary units); None when it is not a size."""
    m = re.fullmatch(r"\s*([0-9.]+(?:e[0-9]+)?)\s*([kmgt]?)i?b?\s*", str(text).lower())
    if not m:
        return None
    try:
        value = float(m.group(1))
    except ValueError:
        return None
    return int(value * 1024 ** " kmgt".index(m.group(2) or " "))


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _inactive_file(stat: Path, key: str) -> int:
    """Page cache the kernel can reclaim (counted as used by the cgroup, yet available)."""
    try:
        for line in stat.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key and value.strip().isdigit():
                return int(value)
    except OSError:
        pass
    return 0


def _cgroup_available() -> int | None:
    """Room left under this process's cgroup memory limit (v2, then v1); None without a limit."""
    root = Path("/sys/fs/cgroup")
    for limit_file, usage_file, stat_key, stat in (
        (root / "memory.max", root / "memory.current", "inactive_file", root / "memory.stat"),
        (
            root / "memory" / "memory.limit_in_bytes",
            root / "memory" / "memory.usage_in_bytes",
            "total_inactive_file",
            root / "memory" / "memory.stat",
        ),
    ):
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        if limit is not None and usage is not None and limit < 2**60:  # "max" / a huge number: no limit
            return max(0, limit - usage + _inactive_file(stat, stat_key))
    return None


def host_available() -> tuple[int | None, str]:
    """(bytes of host memory available, where that number comes from)."""
    avail, source = None, ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail, source = int(line.split()[1]) * 1024, "MemAvailable in /proc/meminfo"
                break
    except (OSError, ValueError, IndexError):
        pass
    if avail is None:
        try:
            avail, source = (
                os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"),
                "free physical memory (os.sysconf)",
            )
        except (AttributeError, ValueError, OSError):
            return None, "unknown"
    group = _cgroup_available()
    if group is not None and group < avail:
        avail, source = group, "this process's cgroup memory limit"
    return avail, source


def available_memory(device: Any = None) -> tuple[int | None, str]:
    """(bytes available for a model on ``device`` (a torch.device or None for the CPU), where that number comes from).

    None when it cannot be told: the check is then skipped.
    """
    override = os.environ.get(LIMIT_ENV)
    if override:
        value = parse_size(override)
        if value is not None:
            return value, f"{LIMIT_ENV}={override}"
    if device is not None and getattr(device, "type", None) == "cuda":
        import torch

        try:
            free, _ = torch.cuda.mem_get_info(device)
            return int(free), f"free memory on {device} (torch.cuda.mem_get_info)"
        except (RuntimeError, AssertionError):
            return None, "unknown"
    return host_available()


def refusal(
    what: str, estimate: Estimate, available: int, source: str, keys: dict[str, str], lead: str = "Lower"
) -> str | None:
    """The message refusing ``what`` when ``estimate`` exceeds ``available``, else None.

    ``keys`` maps each part (embedding / encoder / head / activations) to the
    setting(s) that shrink it; they are named largest part first, after ``lead``.
    """
    total = estimate.total
    if total <= available:
        return None
    parts = sorted(estimate.part_bytes().items(), key=lambda kv: -kv[1])
    advice = "; ".join(f"{keys[p]} ({p}: {human(b)})" for p, b in parts if b > 0 and p in keys and b >= total / 20)
    return (
        f"{what} needs about {human(total)} of memory ({estimate.describe()}), but {human(available)} is available "
        f"({source}). {lead} {advice}. Set {LIMIT_ENV} (e.g. {LIMIT_ENV}=64GB) to check against another amount."
    )
