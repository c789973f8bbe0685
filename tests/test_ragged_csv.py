"""A CSV whose first data row holds an unquoted delimiter is refused, naming the line, never read shifted.

pandas takes a first row with one field more than the header as an index
column: every text moved one column over, silently (the label read as the
text, the text cut at its comma). Training and predict read files through the
same reader, so both must refuse it.
"""

from __future__ import annotations

from conftest import make_rows, write_csv


def test_predict_refuses_a_text_cut_by_an_unquoted_comma(tmp_path, cli):
    write_csv(tmp_path / "d.csv", make_rows(60))
    assert (
        cli("train", "--set", "data.source=d.csv", "--set", "train.epochs=1", "--no-track", "-q", "--output", "m").code
        == 0
    )
    (tmp_path / "in.csv").write_text("text\na lovely, moving film\nflat and dull\n")
    r = cli("predict", "--model", "m", "--input", "in.csv", "--output", "out.csv")
    assert r.code == 2, r.output
    assert "in.csv" in r.folded and "expected 1 fields in line 2, saw 2" in r.folded and "must be quoted" in r.folded
    assert not (tmp_path / "out.csv").exists()
    (tmp_path / "in.csv").write_text('text\n"a lovely, moving film"\nflat and dull\n')  # quoted: read as written
    assert cli("predict", "--model", "m", "--input", "in.csv", "--output", "out.csv").code == 0
    assert "a lovely, moving film" in (tmp_path / "out.csv").read_text()


def test_training_refuses_a_first_row_with_more_fields_than_the_header(tmp_path, cli):
    body = "\n".join(f"{r['text']},{r['label']}" for r in make_rows(60))
    (tmp_path / "d.csv").write_text(f"text,label\nbad, film,neg\n{body}\n")
    r = cli("train", "--set", "data.source=d.csv", "--set", "train.epochs=1", "--no-track", "-q")
    assert r.code == 2, r.output
    assert "d.csv" in r.folded and "expected 2 fields in line 2, saw 3" in r.folded
    assert not (tmp_path / ".textclf" / "train").exists()


def test_a_trailing_delimiter_on_every_line_reads_as_written(tmp_path):
    from textclf.data.sources import read_file

    (tmp_path / "d.csv").write_text("text,label\ngood film,pos,\nbad film,neg,\n")
    assert read_file(tmp_path / "d.csv").to_pydict() == {"text": ["good film", "bad film"], "label": ["pos", "neg"]}
