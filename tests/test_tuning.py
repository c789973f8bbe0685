"""Equal-budget tuning (`tune:` in a pipeline), end to end through the real CLI on a tiny pipeline.

One uninterrupted run (2 variants × 3 trials × 2 epochs, then 2 seeds of each
best config) is shared by the checks of what it records: one MLflow run per
trial with its params and per-epoch validation metric, pruned trials ended
KILLED and tagged, the best params in the final children, the expected-max
curve, and a re-run that trains nothing. A second run is SIGKILLed after its
3rd trial was told to the study and resumed: no trial runs twice, and it ends
where the uninterrupted run ended. Config errors stop with exit 2 before
anything trains; a missing Optuna names the extra.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from conftest import run_cli, seed_mlflow_store, working_in

from textclf.analysis.tuning import expected_max

pytestmark = pytest.mark.slow  # run first: test files are spread over workers longest first

REPO = Path(__file__).resolve().parents[1]
FILLER = ["the", "film", "was", "a", "plot", "and", "it", "story", "cast", "really"]

# The whole launcher sits under the __main__ guard: `--jobs auto` trains in a spawned
# process pool whose workers import this file again as __mp_main__, and must not re-run it.
LAUNCHER = "if __name__ == '__main__':\n" + textwrap.indent(
    textwrap.dedent(
        """
    import os, signal, sys

    after = int(os.environ.get("KILL_AFTER_TELL", "0"))
    if after:
        import textclf.pipeline.tune as m
        original, calls = m.tell, [0]

        def tell(*args, **kwargs):
            original(*args, **kwargs)
            calls[0] += 1
            if calls[0] == after:
                os.kill(os.getpid(), signal.SIGKILL)

        m.tell = tell

    from textclf.cli.main import main
    sys.exit(main(sys.argv[1:]))
    """
    ),
    "    ",
)

PIPELINE = {
    "name": "tp",
    "data": {"source": "d.csv"},
    "params": {
        "train": {"epochs": 2, "batch_size": 16, "num_threads": 1},
        "encoder": {"hidden_size": 8},
        "embedding": {"dim": 8},
        "tokenizer": {"min_frequency": 1},
        "evaluate": {"latency_samples": 2},
    },
    "seeds": [1, 2],
    "baseline": "rnn",
    "variants": {"rnn": {"encoder": {"cell": "rnn"}}, "lstm": {"encoder": {"cell": "lstm"}}},
    # A learning rate that learns nothing in 2 epochs beside one that learns: the median pruner stops the first.
    "tune": {
        "trials": 3,
        "metric": "val_accuracy",
        "pruner": "median",
        "space": {"train.lr": {"choices": [0.000001, 0.02]}, "encoder.hidden_size": {"choices": [4, 8]}},
    },
}
TRIALS, VARIANTS = 3, ("rnn", "lstm")


def prepare(d: Path, pipeline: dict | None = None) -> Path:
    import random

    d.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    rows = ["text,label"]
    for i in range(200):
        pos = i % 2 == 0
        words = [rng.choice(FILLER) for _ in range(rng.randint(3, 12))]
        words.insert(rng.randrange(len(words) + 1), rng.choice(["good", "great"] if pos else ["bad", "awful"]))
        rows.append(f"{' '.join(words)},{'pos' if pos else 'neg'}")
    (d / "d.csv").write_text("\n".join(rows) + "\n")
    (d / "tp.yaml").write_text(yaml.safe_dump(pipeline or PIPELINE))
    (d / "launch.py").write_text(LAUNCHER)
    return d


def environment(d: Path) -> dict[str, str]:
    """The variables a command in work folder ``d`` runs with: its own cache and store, nothing from the hub."""
    return dict(
        TEXTCLF_CACHE_DIR=str(d / ".textclf"),
        MLFLOW_TRACKING_URI=f"sqlite:///{d}/mlruns/mlflow.db",
        HF_DATASETS_CACHE=str(d / "hf"),
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    )


def cli(d: Path, *args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    """The command in a process of its own (one that is killed, or whose first output is checked)."""
    env = {k: v for k, v in os.environ.items() if k != "KILL_AFTER_TELL"}
    env.update(environment(d), **(env_extra or {}))
    return subprocess.run(
        [sys.executable, str(d / "launch.py"), *args], cwd=d, env=env, capture_output=True, text=True, timeout=600
    )


RUN = ("run", "tp.yaml", "--summary-out", "summary.json")


@pytest.fixture
def here(cli):  # conftest's in-process `cli` fixture, not this module's subprocess helper
    """``here(d, *args)``: the command run in this process in work folder ``d``; a :class:`conftest.CliResult`."""

    def run(d: Path, *args: str):
        with working_in(d, environment(d)):
            return cli(*args)

    return run


def runs(d: Path) -> list[dict]:
    """Every MLflow run: id, status, tags, params, and each metric's (step, value) history."""
    with sqlite3.connect(d / "mlruns" / "mlflow.db") as con:
        out = {
            r: {"id": r, "status": s, "tags": {}, "params": {}, "metrics": {}}
            for r, s in con.execute("SELECT run_uuid, status FROM runs")
        }
        for r, k, v in con.execute("SELECT run_uuid, key, value FROM tags"):
            out[r]["tags"][k] = v
        for r, k, v in con.execute("SELECT run_uuid, key, value FROM params"):
            out[r]["params"][k] = v
        for r, k, v, step in con.execute("SELECT run_uuid, key, value, step FROM metrics ORDER BY step, timestamp"):
            out[r]["metrics"].setdefault(k, []).append((step, v))
    return list(out.values())


def tree(d: Path, parent: str) -> dict[str, dict]:
    """{variant: {"tuning": run, "trials": {number: run}, "children": [runs]}} under one parent run."""
    all_runs = runs(d)
    by_parent: dict[str, list] = {}
    for r in all_runs:
        by_parent.setdefault(r["tags"].get("mlflow.parentRunId"), []).append(r)
    out: dict[str, dict] = {}
    for r in by_parent.get(parent, []):
        v = out.setdefault(r["tags"]["variant"], {"trials": {}, "children": []})
        if r["tags"]["textclf.role"] == "tuning":
            v["tuning"] = r
            for t in by_parent.get(r["id"], []):
                assert t["tags"]["textclf.trial"] not in v["trials"], "a trial recorded twice under one tuning run"
                v["trials"][int(t["tags"]["textclf.trial"])] = t
        else:
            v["children"].append(r)
    return out


def studies(d: Path) -> list[list[tuple[int, str]]]:
    """Every study's trials as (number, state), from the Optuna SQLite storage under the stage cache."""
    out = []
    for db in sorted((d / ".textclf" / "tune" / ".work").glob("*/study.db")):
        with sqlite3.connect(db) as con:
            out.append(sorted(con.execute("SELECT number, state FROM trials").fetchall()))
    return out


def train_entries(d: Path) -> set[str]:
    return {p.name for p in (d / ".textclf" / "train").iterdir() if not p.name.startswith(".")}


@pytest.fixture(scope="module")
def tuned(tmp_path_factory) -> dict:
    d = prepare(tmp_path_factory.mktemp("tuned"))
    seed_mlflow_store(d / "mlruns" / "mlflow.db")  # the store's tables, without seconds of migrations per command
    with working_in(
        d, environment(d)
    ):  # in-process; the unchanged rerun below runs in its own process, whose output is checked
        assert run_cli(*RUN) == 0
    summary = json.loads((d / "summary.json").read_text())
    state = {
        "d": d,
        "summary": summary,
        "tree": tree(d, summary["parent_run_id"]),
        "entries": train_entries(d),
        "studies": studies(d),
    }
    again = cli(d, *RUN)  # unchanged: nothing may train, no trial may be added
    assert again.returncode == 0, again.stderr
    state.update(again=again, again_summary=json.loads((d / "summary.json").read_text()))
    return state


def test_expected_max_matches_enumerating_every_k_draw():
    values = [0.61, 0.7, 0.55, 0.7, 0.8]
    curve = expected_max(values)
    for k in range(1, len(values) + 1):
        draws = list(itertools.product(values, repeat=k))  # with replacement, every ordered k-tuple equally likely
        assert curve[k - 1] == pytest.approx(sum(max(t) for t in draws) / len(draws), rel=1e-12)
    low = expected_max(values, maximize=False)  # val_loss: the expected minimum
    draws = list(itertools.product(values, repeat=3))
    assert low[2] == pytest.approx(sum(min(t) for t in draws) / len(draws), rel=1e-12)
    assert curve[0] == pytest.approx(sum(values) / len(values)) and curve == sorted(curve)


def test_one_mlflow_run_per_trial_with_params_and_per_epoch_validation(tuned):
    t = tuned["tree"]
    assert set(t) == set(VARIANTS)
    pruned = 0
    for name in VARIANTS:
        trials = t[name]["trials"]
        assert sorted(trials) == list(range(TRIALS))
        assert t[name]["tuning"]["status"] == "FINISHED"
        for _n, run in trials.items():
            assert run["params"]["train.lr"] in ("1e-06", "0.02") and run["params"]["encoder.hidden_size"] in ("4", "8")
            steps = [s for s, _ in run["metrics"]["val_accuracy"]]
            epochs = int(float(run["metrics"]["epochs_trained"][-1][1]))
            assert set(steps) == set(range(1, epochs + 1))  # one value per epoch trained, step = epoch
            if run["tags"]["textclf.pruned"] == "true":
                pruned += 1
                assert run["status"] == "KILLED" and run["tags"]["textclf.optuna_state"] == "PRUNED"
            else:
                assert run["status"] == "FINISHED" and run["tags"]["textclf.optuna_state"] == "COMPLETE"
        entry = tuned["summary"]["variants"][name]["tuning"]
        assert entry["pruned"] == sum(r["tags"]["textclf.pruned"] == "true" for r in trials.values())
    assert pruned >= 1  # the learning rate of 1e-6 is stopped by the median pruner


def test_final_children_train_the_best_params(tuned):
    for name in VARIANTS:
        entry = tuned["summary"]["variants"][name]["tuning"]
        best = entry["best_params"]
        best_run = tuned["tree"][name]["trials"][entry["best_trial"]]
        assert best_run["tags"]["textclf.pruned"] == "false"
        assert float(best_run["metrics"]["final_val_accuracy"][-1][1]) == pytest.approx(entry["best_val"])
        children = tuned["tree"][name]["children"]
        assert sorted(c["tags"]["seed"] for c in children) == ["1", "2"]
        for c in children:
            assert json.loads(c["tags"]["textclf.tune_best_params"]) == best
            assert float(c["params"]["train.lr"]) == pytest.approx(best["train.lr"])
            assert int(c["params"]["encoder.hidden_size"]) == best["encoder.hidden_size"]


def test_expected_max_curve_and_report(tuned):
    s = tuned["summary"]
    for name in VARIANTS:
        entry = s["variants"][name]["tuning"]
        curve = entry["expected_max_val"]
        assert len(curve) == TRIALS and entry["trials"] == TRIALS
        assert all(a <= b + 1e-12 for a, b in zip(curve, curve[1:]))
        assert curve[-1] <= entry["best_val"] + 1e-12
        assert entry["train_seconds"] > 0 and entry["epochs"] <= entry["max_epochs"] == TRIALS * 2
    assert s["tuning"]["ranking"]["k1"] and "ranking" in s["tuning"]["verdict"]
    client_dir = tuned["d"]
    report = next((client_dir / "mlruns").rglob("comparison/report.md")).read_text()
    assert "Tuning: an equal budget per variant" in report and "expected_max_val.png" in report


def test_rerun_is_fully_cached(tuned):
    d = tuned["d"]
    assert studies(d) == tuned["studies"]  # no trial asked
    assert all(len(s) == TRIALS for s in tuned["studies"])
    assert train_entries(d) == tuned["entries"]  # nothing trained
    assert "epoch 1/" not in tuned["again"].stderr
    again = tuned["again_summary"]
    t = tree(d, again["parent_run_id"])
    for name in VARIANTS:
        assert sorted(t[name]["trials"]) == list(range(TRIALS))
        assert all(
            r["tags"]["textclf.cached"] == "true" and r["tags"].get("textclf.cached_from")
            for r in t[name]["trials"].values()
        )
        assert (
            again["variants"][name]["tuning"]["best_params"]
            == tuned["summary"]["variants"][name]["tuning"]["best_params"]
        )
        assert again["variants"][name]["test_accuracy"] == tuned["summary"]["variants"][name]["test_accuracy"]


def test_killed_search_resumes_without_running_a_trial_twice(tuned, here, tmp_path):
    d = prepare(tmp_path / "w")
    seed_mlflow_store(d / "mlruns" / "mlflow.db")
    # Round 1 tells rnn t0 and lstm t0; round 2 is killed after telling rnn t1, with lstm t1 run but not told.
    killed = cli(d, *RUN, env_extra={"KILL_AFTER_TELL": "3"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    before = studies(d)
    assert sorted(len([t for t in s if t[1] != "RUNNING"]) for s in before) == [1, 2]

    again = here(d, *RUN)
    assert again.code == 0, again.output
    after = studies(d)
    assert [[n for n, _ in s] for s in after] == [list(range(TRIALS))] * 2  # numbers 0..2, none twice
    assert all(state in ("COMPLETE", "PRUNED") for s in after for _, state in s)
    summary = json.loads((d / "summary.json").read_text())
    t = tree(d, summary["parent_run_id"])
    cached = sum(r["tags"]["textclf.cached"] == "true" for name in VARIANTS for r in t[name]["trials"].values())
    assert cached == 3  # the trials told before the kill are recorded, not run again
    for name in VARIANTS:
        assert sorted(t[name]["trials"]) == list(range(TRIALS))
        mine, ref = summary["variants"][name], tuned["summary"]["variants"][name]

        # The same search as without the kill: same trials, same best config, same final results.
        def trials(entry):
            return [(x["number"], x["state"], x["value"]) for x in entry["tuning"]["trial_values"]]

        assert trials(mine) == trials(ref)
        assert mine["tuning"]["best_params"] == ref["tuning"]["best_params"]
        assert mine["test_accuracy"] == ref["test_accuracy"]
    assert not [r for r in runs(d) if r["status"] == "RUNNING"]


BAD = {
    "trails": 3,
    "trials": 0,
    "metric": "test_accuracy",
    "space": {
        "train.lrr": {"low": 0.001, "high": 0.01},
        "data.source": {"choices": ["other.csv"]},
        "train.lr": {"low": 0.01, "high": 0.001},
        "embedding.dropout": {"low": 0.2, "high": 0.2},
        "encoder.hidden_size": {"choices": []},
        "encoder.output_dropout": {"low": 0.0, "high": 1.5},
    },
}


def test_bad_tune_settings_stop_before_training(tmp_path, here):
    d = prepare(tmp_path / "w", {**PIPELINE, "tune": BAD})
    r = here(d, *RUN, "--set", "tune.pruner=hyperband")
    assert r.code == 2, r.stderr
    for message in (
        "tune.trails: unknown key",
        "Did you mean 'tune.trials'?",
        "tune.trials: must be an integer >= 1",
        "tune.metric: must be a validation metric",
        "Got 'test_accuracy'",
        "tune.space.train.lrr: not a key of the train section. Did you mean 'train.lr'?",
        "tune.space.data.source: only what a trial trains can be tuned",
        "tune.space.train.lr: inverted range",
        "tune.space.embedding.dropout: empty range",
        "tune.space.encoder.hidden_size.choices: expected a non-empty list",
        "tune.space.encoder.output_dropout: 1.5 is not allowed",
        "tune.pruner: must be one of none, median, successive_halving. Got 'hyperband'",
    ):
        assert message in r.stderr, (message, r.stderr)
    assert "Traceback" not in r.stderr
    assert (
        not (d / ".textclf" / "train").exists() and not (d / "mlruns" / "mlflow.db").exists()
    )  # before any stage or run


def test_without_optuna_the_message_names_the_extra(tmp_path, here, monkeypatch):
    d = prepare(tmp_path / "w")
    monkeypatch.setitem(sys.modules, "optuna", None)  # `import optuna` raises ImportError, as without the extra
    r = here(d, *RUN)
    assert r.code == 2, r.stderr
    assert "pip install 'textclf[tune]'" in r.stderr and "Traceback" not in r.stderr
    assert not (d / ".textclf").exists()  # nothing prepared, nothing trained
    shown = here(d, "config", "show", "tp.yaml", "--set", "tune.trials=5")  # looking needs no Optuna
    assert shown.code == 0, shown.stderr
    assert yaml.safe_load(shown.stdout)["tune"]["trials"] == 5


def test_set_reaches_the_tune_section(tmp_path):
    from textclf.pipeline.spec import load_pipeline

    path = prepare(tmp_path / "w") / "tp.yaml"
    pipe = load_pipeline(
        path,
        overrides=[
            "tune.trials=5",
            "tune.pruner=none",
            "tune.space.train.lr={low: 0.0001, high: 0.01, log: true}",
            "train.epochs=3",
        ],
    )
    assert (pipe.tune.trials, pipe.tune.pruner) == (5, "none")
    lr = pipe.tune.space["train.lr"]
    assert (lr.low, lr.high, lr.log) == (0.0001, 0.01, True) and "encoder.hidden_size" in pipe.tune.space
    assert all(
        v.config.train.epochs == 3 for v in pipe.variants.values()
    )  # the other --set items still reach the variants
    assert load_pipeline(path, overrides=["tune=null"]).tune is None
    default = load_pipeline(path, overrides=["tune.space=null"]).tune  # no space: the documented default
    assert default.default_space and "train.weight_decay" in default.space
    assert "encoder.dropout" not in default.space_for(
        pipe.variants["lstm"].config
    )  # nothing between layers of a 1-layer encoder
