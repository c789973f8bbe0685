"""Pipeline wall time: ``textclf run`` cold (empty cache and MLflow store), unchanged (the same command again) and cached.

Runs the real CLI in a subprocess, three times:

    textclf run PIPELINE --params <repo>/params.yaml --cache-dir <tmp>/cache
                --tracking-uri sqlite:///<tmp>/mlruns/mlflow.db [--set ...] [--variant ...]

in a fresh temporary working directory (so MLflow's artifacts and any
relative path land there, not in the repository). ``cold_s`` is the wall time
of the first run; ``unchanged_s`` of the same command again, which trains and
records nothing and shows the answer the first run recorded (the "nothing
changed" path of :mod:`textclf.pipeline.unchanged`); ``cached_s`` of the same
command with ``--new-run``, which records a new parent and every child from
the cache (what a run costs when only its record is new, e.g. an edited
description). All include interpreter start-up and imports (``*_cpu_s``:
user + system CPU seconds, a steadier figure on a busy machine);
``cli_startup_s`` is the wall time of ``textclf --help`` for scale. Each
run's "trained" / "cached" lines are counted, so the JSON shows whether the
later runs really recomputed nothing.

Default pipeline: ``pipelines/compare.yaml`` (7 variants × 3 seeds: long).
``--smoke`` instead writes a tiny pipeline (rnn and lstm, 1 seed, on
``builtin:reviews``) and adds ``--set data.options.size=300 --set
train.epochs=1 --set evaluate.latency_samples=5``. ``--set KEY=VALUE`` and
``--variant NAME`` are passed through to both runs. ``--threads`` sets
``OMP_NUM_THREADS`` (which textclf's trainer follows) for the runs.

    python -m bench.pipeline [--smoke] [--threads N] [--pipeline PATH] [--set KEY=VALUE ...] [--json PATH]
"""

from __future__ import annotations

if not __package__:  # run as a file (python bench/x.py): import the bench package from the repository root
    import os
    import sys

    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]
    sys.path.insert(0, os.path.dirname(_here))

import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench import _common as C

SMOKE_PIPELINE = """\
# Written by bench/pipeline.py --smoke: the smallest pipeline that still runs every stage.
name: bench-smoke
data: {source: "builtin:reviews"}
seeds: [1]
baseline: rnn
variants:
  rnn:  {encoder: {cell: rnn}}
  lstm: {encoder: {cell: lstm}}
"""
SMOKE_SETS = ["data.options.size=300", "train.epochs=1", "evaluate.latency_samples=5"]
_LINE = re.compile(r"^\s*(cached|trained)\s+(\S+)\s+seed\s+(\d+)", re.MULTILINE)


def parse_args(argv=None):
    p = C.base_parser(__doc__, "pipeline")
    p.add_argument(
        "--pipeline", default=str(C.REPO / "pipelines" / "compare.yaml"), help="Pipeline file (default: %(default)s)."
    )
    p.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Passed to `textclf run` (repeatable).",
    )
    p.add_argument(
        "--variant",
        dest="variants",
        action="append",
        default=[],
        metavar="NAME",
        help="Passed to `textclf run` (repeatable).",
    )
    p.add_argument(
        "--textclf", default=None, help="The CLI to run (default: the `textclf` next to this Python, else on PATH)."
    )
    p.add_argument(
        "--keep", type=Path, default=None, help="Work in this directory and keep it (it must not exist yet)."
    )
    args = p.parse_args(argv)
    args.threads = C.default_threads(args.threads, args.smoke)
    return args


def find_cli(explicit: str | None) -> str:
    if explicit:
        return explicit
    beside = Path(sys.executable).parent / "textclf"
    if beside.is_file():
        return str(beside)
    found = shutil.which("textclf")
    if not found:
        raise SystemExit("textclf CLI not found: install the package (pip install -e .) or pass --textclf PATH")
    return found


def run_cli(cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds (user + system)) of ``cmd``; its output goes to ``log``.

    A failure raises with the output's tail. CPU seconds come from the
    children's resource usage, which is less disturbed by other jobs than the
    wall time (but still not immune to them).
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise SystemExit(f"command failed with exit code {proc.returncode}: {' '.join(cmd)}\n{tail}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, cpu


def counts(log: Path) -> dict[str, int]:
    """(variant, seed) pairs reported trained / cached (a parallel run reports each twice: when trained, when recorded)."""
    found = {(m.group(1), m.group(2), m.group(3)) for m in _LINE.finditer(log.read_text(errors="replace"))}
    return {kind: sum(k == kind for k, _, _ in found) for kind in ("trained", "cached")}


def main(argv=None) -> dict:
    args = parse_args(argv)
    cli = find_cli(args.textclf)
    with C.work_dir(args.keep, "textclf-bench-pipeline-") as work:
        result = measure(args, cli, work)
    C.write_json(args.json, result)
    return result


def measure(args, cli: str, work: Path) -> dict:
    pipeline = Path(args.pipeline).resolve()
    sets = list(args.sets)
    if args.smoke:
        pipeline = work / "bench-smoke.yaml"
        pipeline.write_text(SMOKE_PIPELINE)
        sets = SMOKE_SETS + sets
    cmd = [
        cli,
        "run",
        str(pipeline),
        "--cache-dir",
        str(work / "cache"),
        "--tracking-uri",
        f"sqlite:///{work}/mlruns/mlflow.db",
    ]
    params = C.REPO / "params.yaml"
    if params.is_file():
        cmd += ["--params", str(params)]
    for s in sets:
        cmd += ["--set", s]
    for v in args.variants:
        cmd += ["--variant", v]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "RAYON_NUM_THREADS": str(args.threads)}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("TEXTCLF_CACHE_DIR", None)

    startup, _ = run_cli([cli, "--help"], work, env, work / "help.log")
    print(f"cold run: {' '.join(cmd)}", file=sys.stderr, flush=True)
    cold, cold_cpu = run_cli(cmd, work, env, work / "cold.log")
    print(f"  {cold:.1f}s; unchanged run ...", file=sys.stderr, flush=True)
    unchanged, unchanged_cpu = run_cli(cmd, work, env, work / "unchanged.log")
    print(f"  {unchanged:.2f}s; cached run (--new-run) ...", file=sys.stderr, flush=True)
    cached, cached_cpu = run_cli(cmd + ["--new-run"], work, env, work / "cached.log")
    cold_counts, cached_counts = counts(work / "cold.log"), counts(work / "cached.log")
    unchanged_log = (work / "unchanged.log").read_text(errors="replace")
    answered = "nothing changed since parent run" in " ".join(unchanged_log.split()) and not _LINE.search(unchanged_log)
    print(
        f"pipeline {pipeline.name}: cold {cold:.1f}s ({cold_counts['trained']} trained), unchanged {unchanged:.2f}s "
        f"({'answered from the last run' if answered else 'NOT answered from the last run'}), cached {cached:.2f}s "
        f"({cached_counts['cached']} cached, {cached_counts['trained']} trained) | CPU s: cold {cold_cpu:.1f}, "
        f"unchanged {unchanged_cpu:.1f}, cached {cached_cpu:.1f} | CLI start-up {startup:.2f}s",
        flush=True,
    )
    return {
        "cold_s": round(cold, 3),
        "unchanged_s": round(unchanged, 3),
        "cached_s": round(cached, 3),
        "cold_cpu_s": round(cold_cpu, 3),
        "unchanged_cpu_s": round(unchanged_cpu, 3),
        "cached_cpu_s": round(cached_cpu, 3),
        "cli_startup_s": round(startup, 3),
        "cold_runs": cold_counts,
        "unchanged_answered": answered,
        "cached_runs": cached_counts,
        "fully_cached": cached_counts["trained"] == 0 and cached_counts["cached"] > 0,
        "machine": C.machine_info(args.threads),
        "setup": {
            "pipeline": str(pipeline) if not args.smoke else "bench-smoke (generated)",
            "smoke": args.smoke,
            "set": sets,
            "variants": args.variants,
            "command": cmd[1:],
            "threads_env": {"OMP_NUM_THREADS": args.threads},
            "timing": "wall time of the CLI subprocess, interpreter start-up included",
        },
    }


if __name__ == "__main__":
    main()
