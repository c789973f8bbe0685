"""``seeds: {min, max}``: the schedule, which variants get more seeds, and that the error rate holds across looks.

The calibration test simulates the whole adaptive design the pipeline runs
(``bench.calibration.adaptive_design``: the same pieces as :mod:`textclf.pipeline.experiment`): ``min`` seeds of
every variant, a look at the contrast family at ``alpha / K``, more seeds
only for the variants of inconclusive contrasts, and so on up to ``max``.
A false verdict at *any* look counts against the design.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.calibration import VARIANTS_2X2 as VARIANTS
from bench.calibration import adaptive_design as _adaptive_design
from bench.calibration import false_verdict as _false_verdict
from textclf.analysis.sequential import SeedSchedule, schedule_from, to_extend

pytestmark = pytest.mark.slow  # run first: test files are spread over workers longest first

ALPHA = 0.05


def test_the_schedule_looks_at_min_then_every_step_up_to_max():
    s = schedule_from({"min": 3, "max": 9})
    assert s.looks == [3, 6, 9] and s.step == 3
    assert s.alpha_per_look(0.05) == pytest.approx(0.05 / 3)
    assert schedule_from({"min": 2, "max": 7, "step": 2}).looks == [2, 4, 6, 7]
    assert schedule_from({"min": 3, "max": 3}).looks == [3]
    assert s.seeds(4) == [1, 2, 3, 4] and schedule_from({"min": 2, "max": 4, "start": 11}).seeds(2) == [11, 12]
    assert s.next_count(3) == 6 and s.next_count(9) is None


@pytest.mark.parametrize(
    "value,fragment",
    [
        ({"min": 1, "max": 5}, "seeds.min must be at least 2"),
        ({"min": 4, "max": 3}, "seeds.max (3) must be at least seeds.min (4)"),
        ({"min": 3}, "seeds.max is missing"),
        ({"min": 3, "max": 9, "stride": 2}, "unknown key(s) ['stride']"),
        ({"min": 2, "max": 90, "step": 1}, "raise seeds.step"),
        ({"min": "3", "max": 9}, "seeds.min must be a whole number"),
    ],
)
def test_a_bad_schedule_names_the_key_and_the_fix(value, fragment):
    with pytest.raises(ValueError) as exc:
        schedule_from(value)
    assert fragment in str(exc.value)


def test_only_the_variants_of_inconclusive_contrasts_get_more_seeds():
    s = SeedSchedule(min=3, max=9, step=3)
    rows = [
        {"name": "depth", "verdict": "inconclusive"},
        {"name": "direction", "verdict": "better"},
        {"name": "cell", "verdict": "equivalent"},
    ]
    members = {"depth": ["lstm-x2", "lstm"], "direction": ["bilstm", "lstm"], "cell": ["lstm", "rnn"]}
    assert to_extend(rows, members, {"lstm-x2": 3, "lstm": 3, "bilstm": 3, "rnn": 3}, s) == {"lstm-x2": 6, "lstm": 6}
    # at max, nothing more: the design stops with the contrast inconclusive
    assert to_extend(rows, members, {"lstm-x2": 9, "lstm": 9}, s) == {}


# --------------------------------------------------------------------------- calibration by simulation


@pytest.mark.parametrize("seed_sd", [0.0, 0.02, 0.05])
@pytest.mark.parametrize("truth", ["null", "at-the-margin"])
def test_the_adaptive_design_keeps_the_family_wise_rate_across_looks(seed_sd, truth):
    # null: no variant differs, so any better/worse verdict at any look is false;
    # at-the-margin: neighbouring variants differ by exactly sesoi, so any "equivalent" is false.
    rng = np.random.default_rng(1000 + int(seed_sd * 1000) + (truth == "null"))
    true_acc = dict.fromkeys(VARIANTS, 0.75) if truth == "null" else dict(zip(VARIANTS, (0.71, 0.73, 0.75, 0.75, 0.77)))
    schedule = SeedSchedule(min=3, max=9, step=3)
    reps = 200
    false = sum(
        any(_false_verdict(rows, true_acc) for rows in _adaptive_design(rng, true_acc, seed_sd, schedule))
        for _ in range(reps)
    )
    # alpha plus three binomial standard errors of a 200-run estimate
    assert false / reps <= ALPHA + 3 * np.sqrt(ALPHA * (1 - ALPHA) / reps), (
        f"{false}/{reps} designs made a false verdict"
    )


def test_without_spending_alpha_over_the_looks_the_same_design_is_too_liberal():
    # The control that shows the test can fail: judging every look at the full alpha under the null.
    rng = np.random.default_rng(7)
    true_acc = dict.fromkeys(VARIANTS, 0.75)
    schedule = SeedSchedule(min=2, max=8, step=1)
    reps = 150
    false = sum(
        any(_false_verdict(rows, true_acc) for rows in _adaptive_design(rng, true_acc, 0.02, schedule, alpha=ALPHA))
        for _ in range(reps)
    )
    assert false / reps > ALPHA + 2 * np.sqrt(ALPHA * (1 - ALPHA) / reps)


# --------------------------------------------------------------------------- through the pipeline


def test_a_pipeline_adds_seeds_only_where_a_contrast_is_still_inconclusive(tmp_path):
    import json
    import os

    from mlflow.tracking import MlflowClient
    from test_answer_pipeline import write_corpus, write_pipeline

    from textclf.cli.main import main

    pipe = write_pipeline(tmp_path / "p.yaml", write_corpus(tmp_path / "d.csv"), seeds={"min": 2, "max": 4, "step": 2})
    assert main(["run", str(pipe), "-q", "--summary-out", "s.json"]) == 0
    s = json.loads((tmp_path / "s.json").read_text())
    schedule = s["seed_schedule"]
    assert schedule["looks"] == [2, 4] and schedule["alpha_per_look"] == pytest.approx(0.025)
    counts = {name: row["n_seeds"] for name, row in s["variants"].items()}
    assert set(counts.values()) <= {2, 4}
    assert max(counts.values()) == 4  # this small, one-epoch comparison cannot decide at 2 seeds a side
    for name, row in s["variants"].items():  # seeds are the schedule's, in order: later rounds extend the first
        assert row["seeds"] == list(range(1, counts[name] + 1))
    details = s["contrast_details"]
    for row in s["contrasts"]:
        if row["verdict"] == "inconclusive":  # the design stopped only because these reached max
            assert all(counts[v] == 4 for v in details[row["name"]]["variants"]), (row, counts)
    children = MlflowClient(os.environ["MLFLOW_TRACKING_URI"]).search_runs(
        [s["experiment_id"]], f"tags.mlflow.parentRunId = '{s['parent_run_id']}'"
    )
    assert len(children) == sum(counts.values())
    # Nothing changed: the same command answers from the recorded run, first look and later rounds alike
    assert main(["run", str(pipe), "-q", "--summary-out", "again.json"]) == 0
    assert json.loads((tmp_path / "again.json").read_text())["parent_run_id"] == s["parent_run_id"]


@pytest.mark.parametrize(
    "seeds,fragment",
    [
        ({"min": 1, "max": 4}, "seeds.min must be at least 2"),
        ({"min": 2, "max": 4, "every": 1}, "unknown key(s) ['every']"),
    ],
)
def test_a_bad_seed_schedule_is_refused_before_anything_trains(tmp_path, capsys, seeds, fragment):
    from test_answer_pipeline import write_corpus, write_pipeline

    from textclf.cli.main import main

    pipe = write_pipeline(tmp_path / "p.yaml", write_corpus(tmp_path / "d.csv"), seeds=seeds)
    assert main(["run", str(pipe), "-q"]) == 2
    assert fragment in capsys.readouterr().err
    assert not (tmp_path / ".textclf" / "train").exists()
