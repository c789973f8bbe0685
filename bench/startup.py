"""Start-up of ``textclf predict`` and ``textclf embed``: wall time of a whole command on a few texts, and where it goes.

A user who predicts three texts waits for the process, not for the model:
almost all of it is Python start-up and imports. The benchmark

1. trains a tiny model (``builtin:reviews``, 300 texts, 1 epoch) into a
   temporary MLflow store with ``--output FOLDER``;
2. times, ``--reps`` times each, fresh processes of
   ``textclf predict --model FOLDER`` on 3 texts, ``textclf predict --model
   runs:/RUN_ID`` on 3 texts (after one call that downloads the model into the
   cache, timed apart as ``runs_first_s``), ``textclf embed --model FOLDER``
   on 2 texts, the same two on the folder exported with ``--onnx`` (which
   answers on onnxruntime without importing torch), and ``python -c "import
   torch"`` (the floor of every command that runs the weights);
3. runs each command once under ``python -X importtime`` and records the
   slowest top-level imports (cumulative ms) and which heavy libraries were
   imported at all (mlflow, pandas, datasets, sklearn, matplotlib, scipy,
   torch._dynamo).

Wall times are medians over ``--reps`` (minimum too), with the median CPU
time (user + system) of the same processes: other processes on the machine's
cores stretch the wall time much more than the CPU time, so on a shared
machine compare CPU times, and medians taken on one machine.

    python -m bench.startup [--smoke] [--reps N] [--json PATH]
"""

from __future__ import annotations

if not __package__:  # run as a file (python bench/x.py): import the bench package from the repository root
    import os
    import sys

    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]
    sys.path.insert(0, os.path.dirname(_here))

import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

from bench import _common as C

HEAVY = ("torch", "mlflow", "pandas", "datasets", "sklearn", "matplotlib", "scipy", "torch._dynamo", "pyarrow")
TEXTS = ["a lovely film", "not bad at all", "the plot was dull and the cast was weak"]
_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def parse_args(argv=None):
    p = C.base_parser(__doc__, "startup")
    p.add_argument(
        "--reps", type=int, default=7, help="Fresh processes per command; medians are reported (default: %(default)s)."
    )
    p.add_argument(
        "--keep", type=Path, default=None, help="Work in this directory and keep it (it must not exist yet)."
    )
    args = p.parse_args(argv)
    args.threads = C.default_threads(args.threads, args.smoke)
    if args.smoke:
        args.reps = 1
    return args


def _run(cmd: list[str], env: dict, cwd: Path) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall seconds, CPU seconds (user + system) of the child, the finished process)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(
        cmd, env=env, cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600, check=False
    )
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"command failed with exit code {proc.returncode}: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), proc


def import_profile(stderr: str, top: int = 8) -> dict:
    """The ``top`` slowest top-level imports (cumulative ms) and which of :data:`HEAVY` were imported, from ``-X importtime`` output."""
    rows = [
        (m.group(4), len(m.group(3)) // 2, int(m.group(2))) for m in map(_IMPORT_LINE.match, stderr.splitlines()) if m
    ]
    names = {name for name, _, _ in rows}
    top_level = sorted(((name, us) for name, depth, us in rows if depth == 0), key=lambda r: -r[1])
    return {
        "imports_ms": round(sum(us for _, us in top_level) / 1000),
        "slowest_ms": {name: round(us / 1000) for name, us in top_level[:top]},
        "heavy_imported": [h for h in HEAVY if h in names],
    }


def _train(work: Path, env: dict, smoke: bool) -> tuple[Path, str]:
    folder = work / "model"
    args = ["train", "-q", "--output", str(folder), "--metrics-out", str(work / "m.json"), *C.TINY_TRAIN]
    C.textclf_command(args, env, work, fresh=not smoke)  # the model is not what is timed
    return folder, json.loads((work / "m.json").read_text())["run_id"]


def measure(work: Path, threads: int, reps: int, smoke: bool = False) -> dict:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "TEXTCLF_CACHE_DIR": str(work / "cache"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{work}/store/mlflow.db",
    }
    (work / "store").mkdir()
    folder, run_id = _train(work, env, smoke)
    (work / "texts.txt").write_text("\n".join(TEXTS[:2]) + "\n")
    textclf = [sys.executable, "-m", "textclf"]
    onnx = work / "onnx"
    C.textclf_command(
        ["export", "-q", "--model", str(folder), "--output", str(onnx), "--onnx"], env, work, fresh=not smoke
    )
    commands = {
        "predict_folder": [*textclf, "predict", "--model", str(folder), *TEXTS],
        "predict_runs": [*textclf, "predict", "--model", f"runs:/{run_id}", *TEXTS],
        "embed_folder": [*textclf, "embed", "--model", str(folder), "--input", "texts.txt", "--output", "e.npy", "-q"],
        "predict_onnx_folder": [*textclf, "predict", "--model", str(onnx), *TEXTS],
        "embed_onnx_folder": [
            *textclf,
            "embed",
            "--model",
            str(onnx),
            "--input",
            "texts.txt",
            "--output",
            "e.npy",
            "-q",
        ],
        "import_torch": [sys.executable, "-c", "import torch"],
    }
    out: dict = {}
    if not smoke:  # a smoke run's first predict_runs below is this first one
        out["runs_first_s"] = round(_run(commands["predict_runs"], env, work)[0], 2)  # downloads into the cache
    for name, cmd in commands.items():
        profiled = [cmd[0], "-X", "importtime", *cmd[1:]]
        if smoke:  # the numbers mean nothing then: one process gives both the timing and the import profile
            wall, cpu, proc = _run(profiled, env, work)
            wall, cpu = (wall,), (cpu,)
        else:
            wall, cpu = zip(*(_run(cmd, env, work)[:2] for _ in range(reps)))
            proc = _run(profiled, env, work)[2]
        out[name] = {
            "median_s": round(C.median(list(wall)), 2),
            "min_s": round(min(wall), 2),
            "cpu_median_s": round(C.median(list(cpu)), 2),
            "reps": reps,
            **import_profile(proc.stderr),
        }
        print(
            f"{name}: median {out[name]['median_s']} s (min {out[name]['min_s']} s, CPU {out[name]['cpu_median_s']} s); "
            f"heavy imports {out[name]['heavy_imported']}",
            file=sys.stderr,
        )
    out.setdefault("runs_first_s", out["predict_runs"]["median_s"])
    return out


def main(argv=None) -> dict:
    args = parse_args(argv)
    with C.work_dir(args.keep, "textclf-bench-startup-") as work:
        machine = C.machine_info(args.threads)
        result = {
            "benchmark": "startup",
            "smoke": args.smoke,
            "machine": machine,
            **measure(work, args.threads, args.reps, args.smoke),
        }
    C.write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
