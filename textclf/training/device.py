"""Where and how reproducibly training runs: device choice, seeds, CPU threads, mixed precision."""

from __future__ import annotations

import contextlib
import random

import numpy as np
import torch

from textclf.core.errors import ConfigError
from textclf.core.machine import thread_count


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
            raise ConfigError(
                "train.device is 'mps' but MPS is not available on this machine. Set train.device=auto or cpu."
            )
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
    """Use ``num_threads`` torch CPU threads (default: :func:`textclf.core.machine.thread_count`); returns the count."""
    num_threads = thread_count(num_threads)
    if torch.get_num_threads() != num_threads:
        torch.set_num_threads(num_threads)
    return num_threads


def amp_dtype(device: torch.device, enabled: bool, cpu_bf16: bool = False) -> torch.dtype | None:
    """The autocast dtype of a training step: on CUDA (``enabled``) bf16 where the GPU supports it, else
    fp16; on the CPU bf16 only when asked (``cpu_bf16``) and native; never on MPS."""
    if device.type == "cpu" and cpu_bf16:
        if not cpu_has_native_bf16():
            raise ConfigError(
                "train.cpu_bf16=true, but this CPU has no native bf16 (avx512_bf16 or AMX), so bf16 would be "
                "emulated and slower than float32: set train.cpu_bf16=false."
            )
        return torch.bfloat16
    if not enabled or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (avx512_bf16 or AMX), not by float32 emulation."""
    try:  # a private op: a torch build without it is treated as having no native bf16
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
