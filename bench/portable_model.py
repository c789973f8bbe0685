"""A logged model in a fresh virtual environment: install only its requirements.txt, load and predict without textclf.

What a serving machine does with ``mlflow models serve --env-manager virtualenv``,
done by hand so every step is timed:

1. ``textclf train`` (tiny: ``builtin:reviews``, 300 texts, 1 epoch) logs a model to a
   temporary MLflow store;
2. ``python -m venv`` makes an environment *without* the system or project
   site-packages, and ``pip install -r requirements.txt`` installs exactly what
   the model pins (``install_s``; pip's configured indexes and caches are used);
3. that environment's Python, which cannot import textclf, loads the model with
   ``mlflow.pyfunc.load_model`` (the textclf code the model carries is what
   runs) and predicts (``load_predict_s``); its probabilities must equal
   ``textclf.load_model(...)``'s in this environment.

It takes minutes (the install dominates: ~3 min here, 1.8 GB), too long for the
test suite, which checks the same load with textclf hidden from the import
system instead (tests/test_mlflow_native.py). ``--smoke`` is the same run
except the install: the fresh environment reads this environment's installed
packages through a ``.pth`` line (which does not run their ``.pth`` hooks, so an
editable textclf stays hidden) instead of downloading 1.8 GB; ``install_s`` is 0.

    python -m bench.portable_model [--smoke] [--keep DIR] [--json PATH]
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
import subprocess
import sys
import urllib.parse
from pathlib import Path

from bench import _common as C

TEXTS = ["a lovely film", "not bad at all", "the plot was dull and the cast was weak"]
_LOAD = r"""
import importlib.util, json, sys, time
assert importlib.util.find_spec("textclf") is None, "textclf is importable in the fresh environment"
t0 = time.perf_counter()
import mlflow, pandas
model = mlflow.pyfunc.load_model(sys.argv[1])
out = model.predict(pandas.DataFrame({"text": json.loads(sys.argv[2])}))
print(json.dumps({"seconds": time.perf_counter() - t0, "textclf": sys.modules["textclf"].__file__, "rows": out.to_dict(orient="records")}))
"""


def parse_args(argv=None):
    p = C.base_parser(__doc__, "portable_model")
    p.add_argument(
        "--keep", type=Path, default=None, help="Work in this directory and keep it (it must not exist yet)."
    )
    args = p.parse_args(argv)
    args.threads = C.default_threads(args.threads, args.smoke)
    return args


def _borrow_packages(venv: Path) -> None:
    """Let ``venv`` import what this environment has installed, without installing anything (smoke runs)."""
    import sysconfig

    target = Path(subprocess.check_output([str(venv / "bin" / "python"), "-c", _PURELIB], text=True).strip())
    here = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (target / "borrowed.pth").write_text("".join(f"{p}\n" for p in here))


_PURELIB = "import sysconfig; print(sysconfig.get_paths()['purelib'])"


def measure(work: Path, threads: int, smoke: bool = False) -> dict:
    import numpy as np
    from mlflow.tracking import MlflowClient

    import textclf

    uri = f"sqlite:///{work}/store/mlflow.db"
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "TEXTCLF_CACHE_DIR": str(work / "cache"),
        "MLFLOW_TRACKING_URI": uri,
    }
    train = ["train", "-q", "--tracking-uri", uri, "--metrics-out", str(work / "m.json"), *C.TINY_TRAIN]
    train_s = C.textclf_command(train, env, work, fresh=not smoke)  # in this process for a smoke run
    run_id = json.loads((work / "m.json").read_text())["run_id"]
    client = MlflowClient(tracking_uri=uri)
    model_uri = client.get_run(run_id).data.tags["textclf.model_uri"]
    # The local store keeps the model's files under a file:// location beside the database.
    local = Path(
        urllib.parse.urlparse(client.get_logged_model(model_uri.removeprefix("models:/")).artifact_location).path
    )
    requirements = [x for x in (local / "requirements.txt").read_text().splitlines() if x.strip()]

    venv = work / "venv"
    venv_s = C.run_logged([sys.executable, "-m", "venv", str(venv)], work / "venv.log")  # no --system-site-packages
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "MLFLOW_TRACKING_URI")}
    if smoke:
        _borrow_packages(venv)
        install_s = 0.0
    else:
        install_s = C.run_logged(
            [str(venv / "bin" / "pip"), "install", "-q", "-r", str(local / "requirements.txt")],
            work / "install.log",
            env=clean,
        )
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-I", "-c", _LOAD, str(local), json.dumps(TEXTS)],
        cwd=work,
        env=clean,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if out.returncode != 0:
        raise SystemExit(f"loading in the fresh environment failed:\n{out.stderr[-3000:]}")
    got = json.loads(out.stdout.strip().splitlines()[-1])
    clf = textclf.load_model(model_uri, tracking_uri=uri, cache_dir=work / "cache")
    want = clf.predict_proba(TEXTS)
    proba = np.array([[r[f"proba_{c}"] for c in clf.labels] for r in got["rows"]], dtype=np.float32)
    if not np.array_equal(proba, want.astype(np.float32)):
        raise SystemExit(f"the fresh environment predicts differently: {proba.tolist()} vs {want.tolist()}")
    size = sum(f.stat().st_size for f in venv.rglob("*") if f.is_file() and not f.is_symlink())
    return {
        "requirements": requirements,
        "train_s": round(train_s, 1),
        "venv_s": round(venv_s, 1),
        "install_s": round(install_s, 1),
        "load_predict_s": round(got["seconds"], 2),
        "venv_mb": round(size / 2**20),
        "textclf_loaded_from": got["textclf"],
        "same_probabilities": True,
    }


def main(argv=None) -> dict:
    args = parse_args(argv)
    with C.work_dir(args.keep, "textclf-bench-portable-") as work:
        result = {
            "benchmark": "portable_model",
            "smoke": args.smoke,
            "machine": C.machine_info(args.threads),
            **measure(work, args.threads, args.smoke),
        }
    print(
        f"fresh venv: install {result['install_s']} s ({result['venv_mb']} MB), load + predict {result['load_predict_s']} s",
        file=sys.stderr,
    )
    C.write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
