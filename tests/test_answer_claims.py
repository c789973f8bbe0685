"""Diagnostic claims fixed before they run: one named variant (or require: all), sidedness matched across the two
measures, and the claim hashed into the report."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from textclf.analysis.verdicts import FAILS, HOLDS, INCONCLUSIVE, claims_fingerprint
from textclf.pipeline.spec import ClaimSpec

sys.path.insert(0, str(Path(__file__).parent))
from test_verdicts import bimodal, judged, run


def test_a_better_claim_names_one_variant_or_requires_all():
    with pytest.raises(ValidationError, match="require: all"):
        ClaimSpec(text="t", better=["lstm", "lstm-chrono"])
    assert ClaimSpec(text="t", better=["lstm", "lstm-chrono"], require="all").require == "all"
    assert ClaimSpec(text="t", better=["lstm"]).alternative == "two-sided"


def test_the_shipped_diagnostics_pipeline_is_valid():
    from textclf.pipeline.config import read_yaml
    from textclf.pipeline.spec import PipelineSpec, find_pipeline

    spec = PipelineSpec.model_validate(read_yaml(find_pipeline("diagnostics"), "pipeline"))
    assert spec.tasks["long-range-200"].claim.require == "all"


def test_require_all_fails_when_one_named_variant_is_refuted():
    # lstm solves every seed, lstm-chrono never does: "an LSTM beats the RNN" for both is not what the runs show.
    records = bimodal("rnn", [False] * 6) + bimodal("lstm", [True] * 6) + bimodal("lstm-chrono", [False] * 6)
    claim = {"better": ["lstm", "lstm-chrono"], "measure": "successes", "min_effect": 0.1}
    s = judged(records, {**claim, "require": "all"})
    assert s["verdict"] == FAILS and "lstm-chrono does not beat rnn" in s["verdict_reason"], s["verdict_reason"]
    # The old "at least one of them" reading calls the same runs a success.
    assert judged(records, claim)["verdict"] == HOLDS
    both = bimodal("rnn", [False] * 6) + bimodal("lstm", [True] * 6) + bimodal("lstm-chrono", [True] * 6)
    assert (
        judged(both, {"better": ["lstm", "lstm-chrono"], "require": "all", "measure": "successes"})["verdict"] == HOLDS
    )


def test_the_success_test_uses_the_accuracy_rules_one_sided_level():
    # 3 of 5 against 0 of 5: one-sided p = 0.031, between alpha/2 and alpha. The accuracy rule (two-sided t, sign
    # required) decides at a one-sided 0.025; the success test used 0.05, twice as lenient. Now it is matched...
    records = bimodal("rnn", [False] * 5) + bimodal("lstm", [True, True, True, False, False])
    s = judged(records, {"better": ["lstm"], "measure": "successes"})
    assert s["verdict"] == INCONCLUSIVE, s["verdict_reason"]
    # ...and a claim that fixes a one-sided test in advance gets the one-sided level on both measures.
    assert judged(records, {"better": ["lstm"], "measure": "successes", "alternative": "one-sided"})["verdict"] == HOLDS


def test_the_claim_is_hashed_into_the_report(tmp_path):
    from textclf.analysis.report import write_report

    records = bimodal("rnn", [False] * 3) + bimodal("lstm", [True] * 3)
    claim = ClaimSpec(text="t", better=["lstm"], measure="successes", seeds=[1, 2, 3]).model_dump()
    s = judged(records, claim)
    assert s["claims_fingerprint"] == claims_fingerprint({**claim, "threshold": 0.95}) and s["claim_seeds_match"]
    assert judged(records, {**claim, "threshold": 0.9})["claims_fingerprint"] != s["claims_fingerprint"]
    write_report(s, records, tmp_path, title="t")
    assert f"claims_fingerprint `{s['claims_fingerprint']}`" in (tmp_path / "report.md").read_text()
    # Judged on other seeds than the claim fixed: exploratory, and it says so.
    other = judged(records, {**claim, "seeds": [4, 5, 6]})
    assert not other["claim_seeds_match"] and other["verdict_reason"].startswith("exploratory")


def test_accuracy_claims_keep_their_decision():
    # The accuracy rule itself is unchanged by the default (two-sided) sidedness.
    records = [run("rnn", s, 0.6) for s in (1, 2, 3)] + [run("lstm", s, 0.9, solved_at=2) for s in (1, 2, 3)]
    assert judged(records, {"better": ["lstm"]})["verdict"] == HOLDS
