"""``core.disk.write_atomically``: the one temporary-then-rename write behind every file textclf replaces."""

from __future__ import annotations

import pytest

from textclf.core.disk import write_atomically


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "report.html"
    target.write_text("old")

    def half_then_fail(tmp):
        tmp.write_text("half of the new")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        write_atomically(target, half_then_fail)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_a_write_replaces_the_file_creating_its_folder(tmp_path):
    target = tmp_path / "new" / "folder" / "x.json"
    assert write_atomically(target, lambda tmp: tmp.write_text("{}")) == target
    assert target.read_text() == "{}"
    assert [p.name for p in target.parent.iterdir()] == ["x.json"]
    write_atomically(target, lambda tmp: tmp.write_text("[1]"))
    assert target.read_text() == "[1]"
