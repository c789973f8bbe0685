"""The CLI through its real entry point: `config show`, `data inspect`, `--help`
on every verb, exit codes and tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import LABELS, make_rows, write_csv

from textclf.cli.main import main
from textclf.core.errors import ConfigError


def subprocess_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `python -m textclf.cli ARGS` in the test's working directory (tmp_path)."""
    return subprocess.run([sys.executable, "-m", "textclf.cli", *args], capture_output=True, text=True, timeout=timeout)


def _verbs(command=None, path=()):
    """Every command path of the real app ([], ["config"], ["config", "show"], ...), read off typer's click tree."""
    import typer

    from textclf.cli.main import app

    command = command or typer.main.get_command(app)
    yield list(path)
    for name, sub in getattr(command, "commands", {}).items():
        yield from _verbs(sub, (*path, name))


def test_help_on_every_verb_exits_zero(capsys):
    verbs = list(_verbs())
    assert ["predict"] in verbs and ["cache", "prune"] in verbs and len(verbs) > 12  # the walk found the tree
    for verb in verbs:
        assert main([*verb, "--help"]) == 0, verb
        text = capsys.readouterr().out
        assert "Usage" in text, verb
        assert f"textclf {' '.join(verb)}".strip() in " ".join(text.split()), verb


def test_version_prints_the_package_version():
    from textclf import __version__

    res = subprocess_cli("--version")
    assert res.returncode == 0 and res.stdout.strip() == f"textclf {__version__}"


# --------------------------------------------------------------------------- config show


def test_config_show_prints_the_resolved_yaml(tmp_path, capsys):
    (tmp_path / "params.yaml").write_text("encoder:\n  hidden_size: 48\n")
    assert (
        main(
            [
                "config",
                "show",
                "--set",
                "encoder.layers=3",
                "--set",
                "train.lr=1e-3",
                "--set",
                "encoder.bidirectional=true",
            ]
        )
        == 0
    )
    doc = yaml.safe_load(capsys.readouterr().out)
    assert doc["encoder"]["layers"] == 3
    assert doc["encoder"]["bidirectional"] is True
    assert doc["encoder"]["hidden_size"] == 48  # from ./params.yaml
    assert doc["train"]["lr"] == pytest.approx(1e-3)
    assert set(doc) >= {"data", "tokenizer", "embedding", "encoder", "train", "evaluate", "tfidf"}


def test_config_show_a_pipeline(tmp_path, capsys):
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "mini.yaml").write_text(
        "name: mini\ndata: {source: reviews.csv}\nseeds: [4, 5]\nbaseline: rnn\n"
        "variants:\n  rnn: {encoder: {cell: rnn}}\n  bigru: {encoder.cell: gru, encoder.bidirectional: true}\n"
    )
    assert main(["config", "show", "mini", "--set", "train.epochs=2"]) == 0
    doc = yaml.safe_load(capsys.readouterr().out)
    assert doc["pipeline"] == "mini" and doc["seeds"] == [4, 5] and doc["baseline"] == "rnn"
    assert set(doc["variants"]) == {"rnn", "bigru"}
    assert (
        doc["variants"]["bigru"]["encoder"]["cell"] == "gru"
        and doc["variants"]["bigru"]["encoder"]["bidirectional"] is True
    )
    assert all(v["train"]["epochs"] == 2 and v["data"]["source"] == "reviews.csv" for v in doc["variants"].values())
    assert main(["config", "show", "mini", "--variant", "rnn"]) == 0
    assert set(yaml.safe_load(capsys.readouterr().out)["variants"]) == {"rnn"}


def test_config_show_bad_key_exits_2_without_traceback(cli):
    res = cli("config", "show", "--set", "encoder.layrs=2", "--set", "train.epochs=zero")
    assert res.code == 2
    assert "encoder.layrs" in res.stderr and "Did you mean 'encoder.layers'" in res.stderr
    assert "train.epochs" in res.stderr and "zero" in res.stderr
    assert "2 problems" in res.stderr
    assert "Traceback" not in res.stderr + res.stdout


def test_config_show_bad_key_with_debug_shows_the_traceback():
    res = subprocess_cli("config", "show", "--set", "encoder.layrs=2", "--debug")
    assert res.returncode != 0
    assert "Traceback" in res.stderr
    assert "ConfigError" in res.stderr and "encoder.layrs" in res.stderr


def test_config_errors_in_process_are_exit_2_and_raise_with_debug(capsys):
    assert main(["config", "show", "--set", "encoder.cell=transformer"]) == 2
    assert "encoder.cell" in capsys.readouterr().err
    with pytest.raises(ConfigError):
        main(["config", "show", "--set", "encoder.cell=transformer", "--debug"])
    assert main(["config", "show", "no-such-pipeline"]) == 2
    assert "Unknown pipeline 'no-such-pipeline'" in capsys.readouterr().err


# --------------------------------------------------------------------------- data inspect


@pytest.mark.parametrize("fixture", ["csv_file", "jsonl_file"])
def test_data_inspect_counts_rows_and_labels(request, fixture, capsys):
    path = request.getfixturevalue(fixture)
    assert (
        main(
            [
                "data",
                "inspect",
                path.name,
                "--json",
                "-q",
                "--set",
                "data.val_fraction=0.2",
                "--set",
                "data.test_fraction=0.2",
            ]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows"] == 60
    assert summary["label_names"] == sorted(LABELS)
    assert {s: v["rows"] for s, v in summary["splits"].items()} == {"train": 36, "validation": 12, "test": 12}
    assert summary["splits"]["test"]["labels"] == {label: 4 for label in LABELS}
    assert summary["splits"]["train"]["labels"] == {label: 12 for label in LABELS}


def test_data_inspect_table_output(csv_file, capsys):
    assert main(["data", "inspect", csv_file.name, "-q"]) == 0
    text = capsys.readouterr().out
    assert "60 rows" in text
    for word in ("train", "validation", "test", *LABELS):
        assert word in text
    assert "invalid rows: none" in text


def test_data_inspect_prints_rounded_numbers(tmp_path, capsys):
    import random

    rng = random.Random(3)
    rows = [{"text": " ".join(["word"] * rng.randint(1, 97)) + f" t{i}", "label": LABELS[i % 3]} for i in range(90)]
    write_csv(tmp_path / "long.csv", rows)
    assert main(["data", "inspect", "long.csv", "--json", "-q"]) == 0
    words = json.loads(capsys.readouterr().out)["splits"]["train"]["words"]
    assert any(v != round(v) for v in words.values())  # the percentiles are fractional here...
    assert all(round(v, 1) == v for v in words.values()), words  # ...and printed to one decimal
    assert main(["data", "inspect", "long.csv", "-q"]) == 0
    table = capsys.readouterr().out
    assert str(words["p95"]) in table and not any(
        len(t.split(".")[-1]) > 1 for t in table.split() if t.replace(".", "").isdigit() and "." in t
    )


def test_the_package_declares_its_type_hints():
    import textclf

    assert (Path(textclf.__file__).parent / "py.typed").is_file()  # listed in pyproject's package-data


def test_data_inspect_reports_dropped_rows(tmp_path, capsys):
    rows = make_rows(30)
    rows[1]["text"] = "  "
    write_csv(tmp_path / "d.csv", rows)
    assert main(["data", "inspect", "d.csv", "--json", "-q", "--set", "data.on_invalid=drop"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows"] == 29
    assert summary["dropped"]["d.csv"]["empty_text"] == 1


def test_data_inspect_bad_data_exits_2_without_traceback(tmp_path, cli):
    (tmp_path / "bad.csv").write_text("review,label\nnice,pos\n")
    res = cli("data", "inspect", "bad.csv")
    assert res.code == 2
    assert "bad.csv" in res.stderr and "'review'" in res.stderr and "data.text_column" in res.stderr
    assert "Traceback" not in res.stderr + res.stdout


def test_data_inspect_unreachable_hub_exits_2(cli):
    # HF_HUB_OFFLINE=1 comes from the environment (the autouse fixture), as a user would set it; that the loader
    # then runs offline, without retries, is tests/test_data.py's.
    res = cli("data", "inspect", "hf:rotten_tomatoes", "-q")
    assert res.code == 2
    assert "unreachable" in res.stderr and "data.train" in res.stderr
    assert "Traceback" not in res.stderr


def test_data_inspect_missing_file_exits_2(capsys):
    assert main(["data", "inspect", "nope.csv"]) == 2
    assert "not found" in capsys.readouterr().err
