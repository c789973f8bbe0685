"""Run every benchmark: ``python -m bench [--smoke] [--threads N] [--data SOURCE] [--only NAME ...] [--results DIR]``.

Each benchmark writes ``<results>/<name>.json`` (default ``bench/results/``).
Full runs start one fresh Python process per benchmark, so one benchmark's
thread pools, oneDNN kernel cache and allocator state never colour the next.
``--smoke`` runs them one after the other in this process instead: the
numbers are meaningless then anyway, and importing torch, datasets and
scikit-learn once rather than three times keeps the smoke run short.
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import time
from pathlib import Path

from bench import _common as C

BENCHMARKS = (
    "train_throughput",
    "rnn_cells",
    "inference",
    "tokenize",
    "pipeline",
    "scale",
    "portable_model",
    "calibration",
    "startup",
)
# The benchmarks that read a dataset (default: the Rotten Tomatoes file beside the repository, else builtin:reviews)
READ_DATA = ("train_throughput", "inference", "tokenize")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.strip().splitlines()[0])
    p.add_argument(
        "--smoke", action="store_true", help="Seconds-long versions (every code path, tiny data, 1 repetition)."
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help=f"Passed to every benchmark (default: all cores ({C.all_cores()}), 1 with --smoke).",
    )
    p.add_argument("--only", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS), help="Run only these benchmarks.")
    p.add_argument(
        "--results", type=Path, default=C.RESULTS, help="Directory of the JSON files (default: %(default)s)."
    )
    p.add_argument(
        "--data",
        default=None,
        help=f"Passed to the benchmarks that read a dataset ({', '.join(READ_DATA)}): a file or builtin:NAME.",
    )
    args = p.parse_args(argv)
    args.threads = C.default_threads(args.threads, args.smoke)

    start = time.perf_counter()
    for name in args.only:
        argv_b = ["--threads", str(args.threads), "--json", str(args.results / f"{name}.json")] + (
            ["--smoke"] if args.smoke else []
        )
        if args.data is not None and name in READ_DATA:
            argv_b += ["--data", args.data]
        print(f"== {name} {' '.join(argv_b)}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        if args.smoke:
            importlib.import_module(f"bench.{name}").main(argv_b)
        else:
            subprocess.run([sys.executable, "-m", f"bench.{name}", *argv_b], cwd=C.REPO, check=True)
        print(f"== {name}: {time.perf_counter() - t0:.1f}s", file=sys.stderr, flush=True)
    print(f"== all: {time.perf_counter() - start:.1f}s; results in {args.results}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
