"""The one file reader is light: ``predict`` / ``embed`` on a table import neither ``datasets`` nor ``mlflow``.

Training reads the same files through the same function and wraps the table
in a ``datasets.Dataset``; the values it prepares are checked elsewhere
(test_data.py, test_bad_input.py). Here: the start-up cost of the predict
path, and the reads that used to be the ``datasets`` builders' own
(a JSON array, a JSON object of columns, a JSONL field of mixed types).
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest import imported_after
from test_reliability_firsthour import _tiny_folder

from textclf.core.errors import DataError
from textclf.data.sources import read_file


def test_predict_and_embed_on_tables_import_neither_datasets_nor_mlflow(tmp_path):
    folder = _tiny_folder(tmp_path / "m")
    rows = {"id": ["007", "008"], "text": ["good fun", "bad film"]}
    pd.DataFrame(rows).to_csv(tmp_path / "x.csv", index=False)
    pd.DataFrame(rows).to_parquet(tmp_path / "x.parquet")
    (tmp_path / "x.jsonl").write_text("".join(json.dumps(dict(zip(rows, r))) + "\n" for r in zip(*rows.values())))
    statements = (
        "from textclf.cli.main import main\n"
        f"m = {str(folder)!r}\n"
        "for ext in ('csv', 'jsonl', 'parquet'):\n"
        "    assert main(['predict', '--model', m, '--input', f'x.{ext}', '--output', f'p.{ext}', '-q']) == 0\n"
        "assert main(['embed', '--model', m, '--input', 'x.csv', '--output', 'e.npy', '-q']) == 0"
    )
    assert imported_after(statements, ("datasets", "mlflow"), cwd=tmp_path)[0] == []
    # The ids travel as written, whichever format carried them.
    assert pd.read_csv(tmp_path / "p.csv", dtype=str)["id"].tolist() == ["007", "008"]
    assert pd.read_parquet(tmp_path / "p.parquet")["id"].tolist() == ["007", "008"]


def test_json_arrays_of_objects_or_texts_are_read(tmp_path):
    objects = [{"text": "a", "label": "x"}, {"text": "b", "label": "y"}]
    (tmp_path / "objs.json").write_text(json.dumps(objects))
    (tmp_path / "texts.json").write_text(json.dumps(["a", "b"]))
    assert read_file(tmp_path / "objs.json").to_pylist() == objects
    assert read_file(tmp_path / "texts.json").to_pylist() == [{"text": "a"}, {"text": "b"}]


def test_a_jsonl_field_of_mixed_types_is_read_as_strings(tmp_path):
    # 1 on one line, "pos" on the next: the label checks must see "1" and "pos" (not a parse error).
    lines = [{"text": "a", "label": 1}, {"text": "b", "label": "pos"}, {"text": "c", "label": None, "extra": 2}]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    table = read_file(tmp_path / "m.jsonl")
    assert table.column("label").to_pylist() == ["1", "pos", None]
    assert table.column("extra").to_pylist() == [None, None, 2]


def test_a_record_longer_than_a_read_block_is_read(tmp_path):
    long = "word " * 600_000  # 3 MB on one line: more than pyarrow's first block size
    (tmp_path / "l.jsonl").write_text(
        json.dumps({"text": "short", "label": "a"}) + "\n" + json.dumps({"text": long, "label": "b"}) + "\n"
    )
    assert read_file(tmp_path / "l.jsonl").column("text").to_pylist() == ["short", long]


def test_a_format_with_an_unknown_reader_is_refused_when_registered():
    from textclf.data import sources

    with pytest.raises(ValueError, match="unknown reader 'xml'.*csv, json, parquet"):
        sources.register_format(".xml", "xml")
    assert ".xml" not in sources.FORMATS


def test_a_jsonl_line_that_is_not_an_object_is_named(tmp_path):
    (tmp_path / "s.jsonl").write_text('{"text": "a", "label": "x"}\n"just a text"\n')
    with pytest.raises(DataError, match="could not be parsed as JSON.*must be a JSON object"):
        read_file(tmp_path / "s.jsonl")
