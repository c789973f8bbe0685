"""A data source or a file format added from outside the package reaches every command.

- A kind registered after the built-in ones (the catch-all ``file`` among
  them) is matched: ``file`` is the fallback, tried last.
- A file format registered once is read by ``data inspect``, training and
  the inputs of ``predict`` (one reader for all of them).
- A kind declared in the ``textclf.sources`` entry-point group of an
  installed package is seen by the CLI; a broken one is skipped with a
  warning naming it.

Each test works on copies of the registries, so nothing leaks into other tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import make_rows
from test_extension_points import TINY

from textclf.cli.main import main
from textclf.data import sources


@pytest.fixture(autouse=True)
def own_registries(monkeypatch):
    monkeypatch.setattr(sources, "SOURCES", dict(sources.SOURCES))
    monkeypatch.setattr(sources, "FORMATS", dict(sources.FORMATS))
    monkeypatch.setattr(sources, "_entry_points_loaded", False, raising=False)


def _memory_reader(seen: list):
    import datasets

    def read(spec, cfg, cache_dir):
        seen.append(spec)
        return {"train": datasets.Dataset.from_list(make_rows(90))}

    return read


def test_a_kind_registered_after_the_defaults_is_matched_and_trains(tmp_path):
    seen: list[str] = []
    # Appended after hf, builtin and the catch-all file, as a plain registry entry.
    read = _memory_reader(seen)
    entry = sources.Source(
        "mem", lambda s: s.startswith("mem:"), read, lambda s, root: {"mem": s}, lambda s, split: None
    )
    sources.SOURCES["mem"] = entry
    out = tmp_path / "m.json"
    assert main(["train", "--set", "data.source=mem:reviews", *TINY, "--metrics-out", str(out)]) == 0
    assert seen and set(seen) == {"mem:reviews"}
    assert 0.0 <= json.loads(out.read_text())["test_accuracy"] <= 1.0
    assert main(["data", "inspect", "mem:reviews", "-q"]) == 0

    # The registration call: a prefix, a reader, defaults for the rest; paths and the other kinds keep theirs.
    sources.register_source("later", "later:", read)
    assert list(sources.SOURCES)[-1] == "later" and sources.source_of("later:x").name == "later"
    assert sources.source_of("reviews.csv").name == "file" and sources.source_of("hf:imdb").name == "hf"
    assert sources.source_of("later:x").identity("later:x", None) == {"source": "later:x"}


def _read_psv(path: Path) -> list[dict]:
    """A pipe-separated file, read by a function: the header names the columns."""
    head, *lines = path.read_text(encoding="utf-8").splitlines()
    return [dict(zip(head.split("|"), line.split("|"))) for line in lines]


def test_a_registered_format_is_read_by_inspect_training_and_predict(tmp_path, capsys):
    sources.register_format(".psv", _read_psv)
    rows = make_rows(90)
    data = tmp_path / "reviews.psv"
    data.write_text("text|label\n" + "".join(f"{r['text']}|{r['label']}\n" for r in rows), encoding="utf-8")

    assert main(["data", "inspect", str(data), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["splits"]["train"]["rows"] > 0

    model = tmp_path / "model"
    assert main(["train", "--set", f"data.source={data}", *TINY, "-o", str(model)]) == 0

    texts = tmp_path / "in.psv"
    texts.write_text("id|text\n007|great fun movie\n008|dull boring plot\n", encoding="utf-8")
    assert main(["predict", "-q", "-m", str(model), "-i", str(texts), "-o", str(tmp_path / "p.csv")]) == 0
    got = pd.read_csv(tmp_path / "p.csv", dtype=str, keep_default_na=False)
    assert list(got.columns)[:3] == ["id", "text", "label"] and got["id"].tolist() == ["007", "008"]
    assert set(got["label"]) <= {"neg", "neu", "pos"}

    # A format that names a datasets builder is one line too, and reads the same file.
    sources.register_format(".pipe", "csv", delimiter="|")
    (tmp_path / "in.pipe").write_bytes(texts.read_bytes())
    assert (
        main(["predict", "-q", "-m", str(model), "-i", str(tmp_path / "in.pipe"), "-o", str(tmp_path / "q.csv")]) == 0
    )
    assert pd.read_csv(tmp_path / "q.csv", dtype=str, keep_default_na=False).equals(got)


def test_predict_input_errors_name_the_file_the_rows_and_the_fix(tmp_path, capsys):
    """Training's checks, through the shared reader, before any model loads."""
    latin = tmp_path / "latin.csv"
    latin.write_bytes("text\nfine\ncaf\u00e9\n".encode("latin-1"))
    assert main(["predict", "-m", "no-such-model", "-i", str(latin)]) == 2
    err = capsys.readouterr().err
    assert str(latin) in err and "byte offset 13 (line 3)" in err and "iconv" in err
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("text\nfine\nnot, fine\n", encoding="utf-8")
    assert main(["predict", "-m", "no-such-model", "-i", str(ragged)]) == 2
    err = capsys.readouterr().err
    assert str(ragged) in err and "comma-separated" in err and "quoted" in err
    (tmp_path / "in.csv").write_text("id,body\n1,fine\n", encoding="utf-8")
    assert main(["predict", "-m", "no-such-model", "-i", str(tmp_path / "in.csv")]) == 2
    err = capsys.readouterr().err
    assert "in.csv" in err and "'text'" in err and "--text-column" in err
    (tmp_path / "gaps.jsonl").write_text('{"text": "a"}\n{"text": null}\n{"text": "b"}\n', encoding="utf-8")
    assert main(["predict", "-m", "no-such-model", "-i", str(tmp_path / "gaps.jsonl")]) == 2
    assert "data rows 2" in capsys.readouterr().err
    (tmp_path / "bare.jsonl").write_text('"a text"\n"another"\n', encoding="utf-8")
    assert main(["predict", "-m", "no-such-model", "-i", str(tmp_path / "bare.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "bare.jsonl" in err and "must be a JSON object" in err and ".txt" in err


def _install_plugin(root: Path, entries: str) -> None:
    """A package on sys.path as pip leaves it: a module and a dist-info holding entry_points.txt."""
    (root / "textclf_myhub.py").write_text(
        "import datasets\n"
        "from textclf.data.sources import Source\n\n"
        "SEEN = []\n\n"
        "def read(spec, cfg, cache_dir):\n"
        "    SEEN.append(spec)\n"
        "    rows = [{'text': f'word{i % 3} movie{i}', 'label': f'c{i % 3}'} for i in range(90)]\n"
        "    return {'train': datasets.Dataset.from_list(rows)}\n\n"
        "SOURCE = Source('myhub', lambda s: s.startswith('myhub:'), read)\n"
    )
    info = root / "textclf_myhub-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: textclf-myhub\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[textclf.sources]\n{entries}")


def test_an_entry_point_kind_is_seen_by_the_cli_and_a_broken_one_is_named(tmp_path, monkeypatch, caplog):
    plugins = tmp_path / "site"
    plugins.mkdir()
    _install_plugin(plugins, "myhub = textclf_myhub:SOURCE\nbroken = textclf_myhub:MISSING\n")
    monkeypatch.syspath_prepend(str(plugins))

    with caplog.at_level("WARNING"):
        assert sources.source_of("myhub:films").name == "myhub"
    assert any("'broken'" in r.getMessage() and "textclf_myhub:MISSING" in r.getMessage() for r in caplog.records)

    import textclf_myhub

    monkeypatch.setattr(sources, "_entry_points_loaded", False)  # as a fresh process would
    monkeypatch.setattr(sources, "SOURCES", {k: v for k, v in sources.SOURCES.items() if k != "myhub"})
    out = tmp_path / "m.json"
    assert main(["train", "--set", "data.source=myhub:films", *TINY, "--metrics-out", str(out)]) == 0
    assert textclf_myhub.SEEN and set(textclf_myhub.SEEN) == {"myhub:films"}
    assert json.loads(out.read_text())["test_accuracy"] is not None


def test_a_registered_source_kind_is_part_of_the_cache_keys(monkeypatch):
    from textclf.core import code
    from textclf.core.cache import stage_key
    from textclf.data import sources

    monkeypatch.setattr(code, "_noted", set())  # as in a process that registered nothing yet
    monkeypatch.setattr(sources, "SOURCES", dict(sources.SOURCES))
    base, train = stage_key("prepare", {"a": 1}), stage_key("train", {"a": 1})
    sources.register_source("keyed", "keyed:", _read_for_key)
    assert stage_key("prepare", {"a": 1}) != base
    # Not in the keys workers compute themselves (they never see the registration); it reaches them upstream.
    assert stage_key("train", {"a": 1}) == train


def _read_for_key(spec, data_config, cache_dir):
    return {}
