"""Shared helpers of the benchmarks: options, threads, sgemm peak, timing, FLOP counts, data, JSON.

Nothing here measures textclf by itself; each ``bench/*.py`` script imports
what it needs. Data always goes through textclf's own cached stages
(:func:`textclf.pipeline.variant.upstream`: prepare → tokenize),
so the benchmarks see exactly the arrays a ``textclf run`` would train on.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RT_TRAIN = REPO.parent / "shared" / "data" / "rt" / "rt_train.csv"
RESULTS = REPO / "bench" / "results"
# `textclf train` on a model that trains in seconds, for benchmarks that need any trained model
TINY_TRAIN = [
    "--set",
    "data.source=builtin:reviews",
    "--set",
    "data.options={size: 300}",
    "--set",
    "train.epochs=1",
    "--set",
    "evaluate.latency_samples=0",
]

# FLOPs per token per layer-direction of the *forward* pass, as a multiple of H·(I+H):
# every gate is an (I+H)->H matrix-vector product (2 FLOPs per multiply-add),
# LSTM 4 gates, GRU 3, tanh RNN 1. Element-wise gate maths is not counted.
FORWARD_FACTOR = {"lstm": 8, "gru": 6, "rnn": 2}
TRAINING_MULTIPLIER = 3  # backward ≈ 2 × forward (gradients w.r.t. inputs and weights)


# --------------------------------------------------------------------------- options


def default_data() -> str:
    """The Rotten Tomatoes training file next to the repository when present, else the built-in reviews."""
    return str(RT_TRAIN) if RT_TRAIN.is_file() else "builtin:reviews"


def add_device(parser: argparse.ArgumentParser) -> None:
    """``--device cpu|cuda``: where the model trains and predicts (the CPU path is the default)."""
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="Train and predict on the CPU (default) or on a CUDA GPU (cuDNN, packed sequences); "
        "sgemm is then measured on the GPU.",
    )


def check_device(device: str) -> None:
    """Stop with a clear message when ``--device cuda`` has no GPU, before any data is read."""
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise SystemExit(
                "--device cuda: torch sees no CUDA GPU on this machine (torch.cuda.is_available() is False; "
                f"torch {torch.__version__}, built for CUDA {torch.version.cuda}). Run on a GPU machine or use --device cpu."
            )


def sync(device: str) -> None:
    """Wait for the GPU's queued work (timings of asynchronous CUDA calls need it); nothing on the CPU."""
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def all_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def base_parser(doc: str | None, name: str) -> argparse.ArgumentParser:
    """A parser with the options every benchmark takes: --smoke, --threads, --json, --reps."""
    parser = argparse.ArgumentParser(
        description=(doc or "").strip().splitlines()[0] if doc else None,
        epilog="See docs/benchmarks.md for what is measured and how, bench/README.md for how to run it.",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="Seconds-long run on tiny data with 1 repetition: checks every code path, numbers are meaningless.",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help=f"torch CPU threads (and tokenizer threads); default: all cores ({all_cores()}), 1 with --smoke.",
    )
    parser.add_argument(
        "--json", type=Path, default=RESULTS / f"{name}.json", help="Where to write the results (default: %(default)s)."
    )
    return parser


@contextlib.contextmanager
def work_dir(keep: Path | None, prefix: str) -> Iterator[Path]:
    """A fresh folder for a benchmark's files: ``keep`` (created here, so it must not exist; left in place), else a temporary one removed afterwards."""
    if keep is not None:
        keep.mkdir(parents=True)
        yield keep.resolve()
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield Path(tmp)


def default_threads(threads: int | None, smoke: bool) -> int:
    """``--threads`` as given, else 1 for a smoke run (immune to busy cores: OpenMP threads spin), else all cores."""
    if threads is None:
        return 1 if smoke else all_cores()
    if threads < 1:
        raise SystemExit(f"--threads must be >= 1, got {threads}")
    return threads


def setup_threads(threads: int) -> int:
    """Use ``threads`` torch threads and ``threads`` HF-tokenizers (rayon) threads.

    Call before any torch or tokenizers work: both pools are sized on first use.
    """
    os.environ.setdefault("RAYON_NUM_THREADS", str(threads))
    from textclf.training.device import set_num_threads

    return set_num_threads(threads)


# --------------------------------------------------------------------------- timing


def textclf_command(args: list[str], env: dict[str, str], cwd: Path, *, fresh: bool = True) -> float:
    """Wall seconds of ``textclf ARGS`` run with the variables ``env`` in ``cwd``; a failure stops the benchmark.

    ``fresh``: in a new process, as a user runs it (its output goes to
    ``cwd/textclf.log``). Otherwise in this process, for a model a smoke run
    needs but does not time: a new process would import torch, MLflow and
    scikit-learn all over again. Variables, folder and torch's thread count
    are put back afterwards.
    """
    if fresh:
        return run_logged([sys.executable, "-m", "textclf", *args], cwd / "textclf.log", env=env, cwd=cwd)
    import torch

    from textclf.cli.main import main

    t0 = time.perf_counter()
    saved, here, threads = dict(os.environ), os.getcwd(), torch.get_num_threads()
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    try:
        code = main(list(args))
    finally:
        os.environ.clear()
        os.environ.update(saved)
        os.chdir(here)
        torch.set_num_threads(threads)
    if code != 0:
        raise SystemExit(f"textclf {' '.join(args)} failed with exit code {code} (its output is above)")
    return time.perf_counter() - t0


def run_logged(cmd: list[str], log: Path, **kwargs: Any) -> float:
    """Wall seconds of ``cmd`` (``subprocess.run`` keywords in ``kwargs``), its output in ``log``; a failure stops the benchmark with the log's tail."""
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **kwargs)
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise SystemExit(f"command failed with exit code {proc.returncode}: {' '.join(cmd)}\n{tail}")
    return time.perf_counter() - t0


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of one call."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def start(args) -> tuple[int, dict[str, Any], float]:
    """Threads, machine info and this machine's measured sgemm GFLOP/s: the opening of the FLOP benchmarks."""
    device = getattr(args, "device", "cpu")
    check_device(device)
    threads = setup_threads(args.threads)
    machine = machine_info(threads)
    if device == "cuda":
        import torch

        machine["gpu"] = torch.cuda.get_device_name(0)
    where = "the GPU" if device == "cuda" else f"{threads} thread(s)"
    print(f"sgemm {args.sgemm_size}x{args.sgemm_size} fp32 on {where} ...", file=sys.stderr)
    sgemm = sgemm_gflops(args.sgemm_size, reps=2 if args.smoke else 5, device=device)
    print(f"  {sgemm:.1f} GFLOP/s", file=sys.stderr)
    return threads, machine, sgemm


def sgemm_gflops(n: int = 4096, reps: int = 5, dtype: str = "float32", device: str = "cpu") -> float:
    """Best-of-``reps`` GFLOP/s of an ``n``×``n`` by ``n``×``n`` ``torch.mm`` (2·n³ FLOPs), after one warm-up call.

    On a GPU, TF32 is off for the measurement (true fp32, as the models' fp32 runs) and each call is synchronised.
    """
    import torch

    dt = getattr(torch, dtype)
    a = torch.randn(n, n).to(dtype=dt, device=device)
    b = torch.randn(n, n).to(dtype=dt, device=device)
    out = torch.empty(n, n, dtype=dt, device=device)
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        torch.mm(a, b, out=out)  # warm-up: thread pool, page faults, cuBLAS handles
        sync(device)
        best = float("inf")
        for _ in range(reps):
            t0 = time.perf_counter()
            torch.mm(a, b, out=out)
            sync(device)
            best = min(best, time.perf_counter() - t0)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    return 2.0 * n**3 / best / 1e9


# --------------------------------------------------------------------------- FLOPs


def layer_inputs(input_size: int, hidden: int, layers: int, bidirectional: bool) -> list[int]:
    """Input size I of each layer: the embedding for layer 1, H (or 2H when bidirectional) above."""
    upper = hidden * (2 if bidirectional else 1)
    return [input_size] + [upper] * (layers - 1)


def flops_per_token(
    cell: str, input_size: int, hidden: int, layers: int, bidirectional: bool, *, training: bool
) -> float:
    """Recurrent-layer FLOPs per real token: Σ over layers and directions of factor·H·(I+H).

    factor = 8 (LSTM), 6 (GRU), 2 (RNN) for the forward pass; ×3 for training.
    The embedding lookup (no FLOPs) and the linear head (2·D·C per *text*, not
    per token; ~0.1% of the total here) are left out.
    """
    factor = FORWARD_FACTOR[cell] * (TRAINING_MULTIPLIER if training else 1)
    directions = 2 if bidirectional else 1
    return float(
        sum(
            directions * factor * hidden * (i + hidden) for i in layer_inputs(input_size, hidden, layers, bidirectional)
        )
    )


FLOP_FORMULA = (
    "FLOPs per real token = sum over layers and directions of k*H*(I+H), I = that layer's input size "
    "(embedding dim for layer 1, H or 2H (bidirectional) above); forward k = 8 LSTM, 6 GRU, 2 RNN; "
    "training k = 3x forward (24 LSTM, 18 GRU, 6 RNN). Embedding lookup and linear head not counted (head < 0.1%)."
)


# --------------------------------------------------------------------------- data


def data_overrides(
    data: str, *, smoke: bool = False, size: int | None = None, max_examples: int | None = None
) -> list[str]:
    """``--set``-style overrides that point textclf's prepare stage at ``data``.

    ``data``: a file (split 80/10/10 by textclf) or ``builtin:NAME``.
    ``size`` is the number of texts a built-in corpus generates; ``max_examples``
    caps every split. ``smoke`` picks tiny values for both unless given.
    """
    if data.startswith(("builtin:", "hf:")):
        sets = [f"data.source={data}"]
    else:
        path = Path(data)
        if not path.is_absolute():
            path = (REPO / path) if (REPO / path).exists() else path.resolve()
        sets = [f"data.source={path}"]
    if smoke:
        size = size or 400
        max_examples = max_examples or 320
    if size is not None and data.startswith("builtin:"):
        sets.append(f"data.options.size={size}")
    if max_examples is not None:
        sets.append(f"data.max_examples={max_examples}")
    return sets


def load_config(overrides: list[str]):
    """textclf's config: schema defaults ⊕ the repository's params.yaml ⊕ ``overrides``."""
    from textclf.pipeline.config import resolve

    params = REPO / "params.yaml"
    return resolve(params_file=params if params.is_file() else None, overrides=overrides, source="benchmark config")


def prepare_and_tokenize(cfg, cache_dir: str | Path):
    """Run textclf's prepare and tokenize stages (cached in ``cache_dir``): (prepared, tokenized) StageResults."""
    import datasets

    from textclf.core.cache import StageCache
    from textclf.pipeline.variant import upstream

    datasets.disable_progress_bars()
    up = upstream(cfg, StageCache(cache_dir))
    return up.data, up.tok


def split_summary(split) -> dict[str, Any]:
    """Examples, real tokens, mean and max length of an EncodedSplit."""
    lengths = split.lengths
    return {
        "examples": int(len(split)),
        "tokens": int(split.num_tokens),
        "mean_length": round(float(lengths.mean()), 2) if len(lengths) else 0.0,
        "max_length": int(lengths.max()) if len(lengths) else 0,
    }


# --------------------------------------------------------------------------- reporting


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _cpu_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return sorted(f for f in flags if f.startswith(("avx512", "amx", "avx2", "fma")))
    except OSError:
        pass
    return []


def machine_info(threads: int) -> dict[str, Any]:
    """What the numbers depend on: CPU, threads, library versions, and the load when the benchmark started.

    Reads versions from the installed metadata, so it imports nothing heavy itself.
    """
    from importlib import metadata

    info: dict[str, Any] = {
        "threads": threads,
        "cores": all_cores(),
        "cpu": _cpu_model(),
        "cpu_flags": _cpu_flags(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    for dist in ("textclf", "torch", "tokenizers", "datasets", "mlflow"):
        try:
            info[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            info[dist] = None
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch_threads"] = torch.get_num_threads()
        info["mkldnn"] = bool(torch.backends.mkldnn.is_available())
    if hasattr(os, "getloadavg"):
        info["loadavg_at_start"] = [round(x, 2) for x in os.getloadavg()]
    return info


def write_json(path: str | Path, obj: dict[str, Any]) -> Path:
    """Write ``obj`` as indented JSON (atomically: temp file + rename) and say where."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    os.replace(tmp, path)
    print(f"wrote {path}", file=sys.stderr)
    return path


def fmt_rate(x: float) -> str:
    """12345.6 -> '12.3k'."""
    if x != x:  # nan
        return "nan"
    for unit, div in (("M", 1e6), ("k", 1e3)):
        if abs(x) >= div:
            return f"{x / div:.1f}{unit}"
    return f"{x:.1f}"
