"""YAML values that parse but that their type cannot take, and tabs: refused with the line and the fix, never a traceback."""

from __future__ import annotations

import pytest
import yaml

from textclf.core import yamlio
from textclf.core.errors import ConfigError
from textclf.core.yamlio import load_yaml_file, load_yaml_text

LOADERS = [pytest.param(yaml.SafeLoader, id="python")]
if yaml.__with_libyaml__:
    LOADERS.append(pytest.param(yaml.CSafeLoader, id="libyaml"))


@pytest.fixture(params=LOADERS, autouse=True)
def loader(request, monkeypatch):
    monkeypatch.setattr(yamlio, "_Loader", yamlio._limited(request.param))


@pytest.mark.parametrize(
    ("text", "shown", "where", "tag"),
    [
        ("train:\n  start: 2024-13-45\n", "'2024-13-45'", "line 2, column 10", "!!timestamp"),  # looks like a date
        ("2024-02-30: x\n", "'2024-02-30'", "line 1, column 1", "!!timestamp"),  # as a key
        ("a: " + "1" * 5000 + "\n", "'1111", "line 1, column 4", "!!int"),  # past Python's int digit limit
        ("a: !!bool maybe\n", "'maybe'", "line 1, column 4", "!!bool"),
        ("a: [1, {b: !!float abc}]\n", "'abc'", "line 1, column 12", "!!float"),
        ("a: !!timestamp soon\n", "'soon'", "line 1, column 4", "!!timestamp"),
    ],
)
def test_value_its_type_cannot_take_names_line_and_fix(tmp_path, text, shown, where, tag):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_yaml_file(path, "params")
    msg = str(err.value)
    assert msg.startswith(f"{path}: {shown}"), msg
    assert msg.endswith(f" at {where} is not a valid {tag}; quote it to keep it as text, or correct it."), msg
    assert len(msg) < 400


def test_quoted_value_is_text():
    assert load_yaml_text("a: '2024-13-45'\nb: !!str maybe\n") == {"a": "2024-13-45", "b": "maybe"}


@pytest.mark.parametrize(
    ("text", "line"),
    [("encoder:\n\tlayers: 2\n", 2), ("encoder:\n  cell: lstm\n\t  layers: 2\n", 3)],
)
def test_tab_indentation_says_to_use_spaces(text, line):
    with pytest.raises(
        ConfigError, match=rf"^t: malformed YAML at line {line}, column 1: .*Replace the tab with spaces\.$"
    ):
        load_yaml_text(text, "t")


@pytest.mark.parametrize("text", ["a: [1, 2\n", "[1,", "a: 'open"])  # the last two end without a newline
def test_other_syntax_errors_keep_the_general_fix(text):
    with pytest.raises(
        ConfigError, match=r"^t: malformed YAML at line \d+, column \d+: .*Fix the syntax of that line\.$"
    ):
        load_yaml_text(text, "t")


def test_cli_reports_a_bad_value_in_params_as_exit_2(tmp_path, monkeypatch, capsys):
    from textclf.cli.main import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("train:\n  epochs: 3\n  start: 2024-13-45\n")
    assert main(["config", "show"]) == 2
    err = capsys.readouterr().err
    assert "params.yaml: '2024-13-45' at line 3, column 10 is not a valid !!timestamp; quote it" in err
    assert "Traceback" not in err
