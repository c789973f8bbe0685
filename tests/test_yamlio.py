"""Limited YAML reading (textclf.core.yamlio): bombs, duplicate keys, limits, safe quoting.

Limits are checked at their real values where that is cheap (bombs are
tiny) and at lowered values, via monkeypatch, where building a document at
the real limit would make the test slow.
"""

from __future__ import annotations

import os
import re
import stat
import sys
import threading
import tracemalloc

import pytest
import yaml

from textclf.core import yamlio
from textclf.core.errors import ConfigError, short_repr
from textclf.core.yamlio import (
    MAX_ALIASES,
    MAX_DEPTH,
    MAX_EXPANDED_CHARS,
    MAX_FILE_BYTES,
    MAX_NODES,
    load_yaml_file,
    load_yaml_text,
)

# Bounded work is checked by the memory it takes, not the clock: an unguarded
# bomb needs gigabytes, a guarded one kilobytes, whatever else the machine runs.
SMALL_BYTES = 50 * 1024 * 1024
HANG_GUARD_S = 30.0  # only for a read that would block for ever (a FIFO with no writer)

LOADERS = [pytest.param(yaml.SafeLoader, id="python")]
if yaml.__with_libyaml__:
    LOADERS.append(pytest.param(yaml.CSafeLoader, id="libyaml"))


@pytest.fixture(params=LOADERS)
def loader(request, monkeypatch):
    """Run a test once per parser (libyaml and pure Python): results must not depend on it."""
    monkeypatch.setattr(yamlio, "_Loader", yamlio._limited(request.param))
    return request.param


def measured(fn, *args, **kwargs):
    """Call ``fn``; return (exception or result, peak traced bytes)."""
    tracemalloc.start()
    try:
        outcome = fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the caller inspects it
        outcome = exc
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return outcome, peak


def laughs(kind: str = "list", levels: int = 9, indent: str = "") -> str:
    """A billion-laughs document: ``levels`` anchors, each aliasing the previous one nine times."""
    names = [f"l{i}" for i in range(levels)]
    if kind == "list":
        lines = [f"{names[0]}: &{names[0]} [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
        lines += [f"{n}: &{n} [{', '.join(['*' + p] * 9)}]" for p, n in zip(names, names[1:])]
    else:
        lines = [f"{names[0]}: &{names[0]} {{{', '.join(f'k{j}: 1' for j in range(9))}}}"]
        lines += [f"{n}: &{n} {{{', '.join(f'k{j}: *{p}' for j in range(9))}}}" for p, n in zip(names, names[1:])]
    return "".join(f"{indent}{line}\n" for line in lines)


BOMB_PLACES = {
    # free-form options under a known section, as a params file would have them
    "known-key": lambda body: "train:\n  options:\n" + "".join(f"    {line}\n" for line in body.splitlines()),
    "unknown-key": lambda body: (
        "encoder:\n  layers: 2\nbogus:\n" + "".join(f"  {line}\n" for line in body.splitlines())
    ),
    "top-level": lambda body: body,
}


def assert_bomb_refused(outcome, peak, source):
    assert isinstance(outcome, ConfigError), outcome
    msg = str(outcome)
    assert msg.startswith(f"{source}: YAML aliases expand to more than {MAX_NODES:,} nodes"), msg
    assert "(anchor &l" in msg and " at line " in msg, msg
    assert "remove the aliases" in msg
    assert len(msg) < 400, "the message must not quote the value"
    assert peak < SMALL_BYTES, f"peak {peak / 1e6:.1f} MB"


# --------------------------------------------------------------------------- alias bombs


@pytest.mark.parametrize("place", sorted(BOMB_PLACES))
@pytest.mark.parametrize("kind", ["list", "map"])
def test_billion_laughs_file_is_refused_fast(tmp_path, loader, kind, place):
    path = tmp_path / "params.yaml"
    path.write_text(BOMB_PLACES[place](laughs(kind)))
    assert yaml.compose(path.read_text()) is not None, "the test document itself must be valid YAML"
    assert_bomb_refused(*measured(load_yaml_file, path, "params"), source=str(path))


@pytest.mark.parametrize("kind", ["list", "map"])
def test_billion_laughs_text_is_refused_fast(loader, kind):
    outcome, peak = measured(
        load_yaml_text, "{" + laughs(kind).replace("\n", ", ").rstrip(", ") + "}", "--set train.options"
    )
    assert_bomb_refused(outcome, peak, source="--set train.options")


def test_bomb_message_names_the_anchor_and_its_line(loader):
    # 9**6 > 100,000, so the sixth level (&l5 repeating &l4) is where it tips over.
    with pytest.raises(ConfigError, match=r"anchor &l4 at line 5, repeated in the value at line 6"):
        load_yaml_text(laughs("list"), "bomb.yaml")


def long_string_aliased(chunk_chars: int, uses: int) -> str:
    return f"s: &s {'x' * chunk_chars}\nuse: [{', '.join(['*s'] * uses)}]\n"


def test_long_string_aliased_many_times_is_refused(loader, monkeypatch):
    # Few nodes, but writing it out (serialising, hashing) costs far more than the file.
    monkeypatch.setattr(yamlio, "MAX_EXPANDED_CHARS", 100_000)
    assert len(load_yaml_text(long_string_aliased(10_000, 8))["use"]) == 8  # 90,000 characters
    with pytest.raises(
        ConfigError,
        match=r"t: YAML aliases expand to more than 100,000 characters of text "
        r"\(anchor &s at line 1, repeated in the value at line 2\)",
    ):
        load_yaml_text(long_string_aliased(10_000, 11), "t")


def test_long_string_aliased_at_the_real_limit_is_refused_fast():
    text = long_string_aliased(1024 * 1024, 25)
    outcome, peak = measured(load_yaml_text, text, "big.yaml", max_bytes=len(text))
    assert isinstance(outcome, ConfigError), outcome
    assert f"more than {MAX_EXPANDED_CHARS:,} characters" in str(outcome)
    assert peak < 2 * len(text) + SMALL_BYTES


@pytest.mark.parametrize("text", ["a: &a [1, *a]\n", "a: &m {self: *m}\n", "a: &o [[[*o]]]\n"])
def test_alias_to_itself_is_refused(loader, text):
    with pytest.raises(ConfigError, match=r"t\.yaml: anchor &\w at line 1 contains an alias to itself"):
        load_yaml_text(text, "t.yaml")


def test_alias_use_limit(loader, monkeypatch):
    ok = "a: &a 1\nb: [*a, *a, *a]\n"
    assert load_yaml_text(ok) == {"a": 1, "b": [1, 1, 1]}
    monkeypatch.setattr(yamlio, "MAX_ALIASES", 3)
    assert load_yaml_text(ok) == {"a": 1, "b": [1, 1, 1]}
    with pytest.raises(ConfigError, match=r"t: more than 3 YAML alias uses \(\*name\), the last at line 2, column 17"):
        load_yaml_text(ok.replace("]", ", *a]"), "t")


def test_alias_use_limit_at_its_real_value(loader):
    text = "a: &a 1\nb: [" + ", ".join(["*a"] * (MAX_ALIASES + 1)) + "]\n"
    with pytest.raises(ConfigError, match=f"more than {MAX_ALIASES:,} YAML alias uses"):
        load_yaml_text(text)


# --------------------------------------------------------------------------- legitimate aliases


SHARED = """\
defaults: &train
  lr: 0.001
  epochs: 3
  schedule: [warmup, cosine]
variants:
  small:
    train: *train
  big:
    train:
      <<: *train
      lr: 0.01
"""


def test_anchors_load_as_independent_copies(loader, tmp_path):
    path = tmp_path / "pipeline.yaml"
    path.write_text(SHARED)
    data = load_yaml_file(path, "pipeline")
    assert data == yaml.safe_load(SHARED)
    small, big = data["variants"]["small"]["train"], data["variants"]["big"]["train"]
    assert big == {"lr": 0.01, "epochs": 3, "schedule": ["warmup", "cosine"]}
    assert small is not data["defaults"]
    # Changing one use (as an override does) leaves the others alone, also
    # through a merge, whose values PyYAML would otherwise share.
    small["lr"] = 5
    small["schedule"].append("x")
    big["schedule"].append("y")
    assert data["defaults"] == {"lr": 0.001, "epochs": 3, "schedule": ["warmup", "cosine"]}
    assert big["schedule"] == ["warmup", "cosine", "y"]


def test_results_match_safe_load(loader):
    text = """\
ints: [1, 0x1f, 0o17, -3]
floats: [1.5, 1e-3, .inf, 1.0e+3]
bools: [true, no, On]
nulls: [~, null, ]
date: 2024-01-02
stamp: 2024-01-02 03:04:05
bin: !!binary aGVsbG8=
set: !!set {a, b}
omap: !!omap [{x: [1]}, {y: 2}]
'quoted key': "a\\tb"
1: int key
merged: {<<: [{a: 1, b: 1}, {a: 2, c: 2}], c: 3}
"""
    assert load_yaml_text(text) == yaml.safe_load(text)


def test_empty_documents_give_none(loader, tmp_path):
    for text in ["", "# only a comment\n", "---\n"]:
        path = tmp_path / "e.yaml"
        path.write_text(text)
        assert load_yaml_file(path) is None
        assert load_yaml_text(text) is None


# --------------------------------------------------------------------------- duplicate keys


@pytest.mark.parametrize(
    ("text", "key", "lines"),
    [
        ("encoder: {}\ntrain: {}\nencoder: {layers: 2}\n", "'encoder'", (1, 3)),
        ("train:\n  lr: 1\n  epochs: 2\n  lr: 3\n", "'lr'", (2, 4)),
        ("variants:\n  - a: 1\n  - b: 1\n    c: 2\n    b: 3\n", "'b'", (3, 5)),
        ("x: {k: 1, j: 2, k: 3}\n", "'k'", (1, 1)),
        ("deep:\n  a:\n    b:\n      c: 1\n      c: 1\n", "'c'", (4, 5)),
    ],
)
def test_duplicate_keys_name_the_key_and_both_lines(loader, tmp_path, text, key, lines):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_yaml_file(path, "params")
    assert str(err.value) == (
        f"{path}: duplicate key {key} at lines {lines[0]} and {lines[1]} (YAML keeps only the last); "
        "merge the two into one."
    )


@pytest.mark.parametrize(
    ("text", "spelled"),
    [
        ("m:\n  1: a\n  1: b\n", None),
        ("m:\n  1: a\n  0x1: b\n", "'0x1'"),
        ("m:\n  1: a\n  1.0: b\n", "'1.0'"),
        ("m:\n  true: a\n  yes: b\n", "'yes'"),
        ("m:\n  ~: a\n  null: b\n", "'null'"),
    ],
)
def test_keys_equal_after_typing_are_duplicates(loader, text, spelled):
    with pytest.raises(ConfigError, match=r"duplicate key '[^']+' at lines 2 and 3") as err:
        load_yaml_text(text, "t")
    if spelled:
        assert f"written {spelled} the second time, which YAML reads as the same key" in str(err.value)


@pytest.mark.parametrize(
    "text",
    [
        "a: {x: 1}\nb: {x: 2}\n",  # the same key in two mappings
        "- {x: 1}\n- {x: 2}\n",
        "m: {'1': a, 1: b}\n",  # a string and an int are different keys
        SHARED,  # a key overriding a merged one
        "base: &b {x: 1}\none: *b\ntwo: *b\n",  # one mapping reached twice is checked once
    ],
)
def test_no_false_duplicates(loader, text):
    assert load_yaml_text(text) == yaml.safe_load(text)


def test_duplicate_inside_an_anchor_is_reported_at_its_own_lines(loader):
    text = "base: &b\n  x: 1\n  x: 2\nuse: [*b, *b]\n"
    with pytest.raises(ConfigError, match=r"duplicate key 'x' at lines 2 and 3"):
        load_yaml_text(text)


def test_two_merge_keys_are_a_duplicate(loader):
    text = "a: &a {x: 1}\nb: &b {y: 1}\nc:\n  <<: *a\n  <<: *b\n"
    with pytest.raises(ConfigError, match=r"duplicate merge key '<<' at lines 4 and 5.*'<<: \[\*first, \*second\]'"):
        load_yaml_text(text)
    assert load_yaml_text("a: &a {x: 1}\nb: &b {y: 1}\nc:\n  <<: [*a, *b]\n")["c"] == {"x": 1, "y": 1}


def test_duplicate_message_is_bounded(loader):
    key = "k" * 100_000
    with pytest.raises(ConfigError) as err:
        # explicit "? key" form: a plain "key:" may be at most 1024 characters
        load_yaml_text(f"? {key}\n: 1\n? {key}\n: 2\n", max_bytes=10**6)
    assert "duplicate key 'kkk" in str(err.value) and len(str(err.value)) < 400


# --------------------------------------------------------------------------- size and depth


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


def test_depth_limit(loader):
    assert load_yaml_text(nested(MAX_DEPTH)) is not None
    with pytest.raises(ConfigError, match=f"t: YAML nested more than {MAX_DEPTH} levels deep at line 1; flatten"):
        load_yaml_text(nested(MAX_DEPTH + 1), "t")


def test_depth_limit_in_block_style(loader):
    text = "".join("  " * i + f"k{i}:\n" for i in range(MAX_DEPTH + 1)) + "  " * (MAX_DEPTH + 1) + "v\n"
    with pytest.raises(ConfigError, match=f"nested more than {MAX_DEPTH} levels deep at line {MAX_DEPTH};"):
        load_yaml_text(text)


def test_depth_limit_counts_aliases_written_out(loader):
    half = MAX_DEPTH // 2 + 1
    text = f"a: &a {nested(half)}\nb: {'[' * half}*a{']' * half}\n"
    with pytest.raises(ConfigError, match=r"once aliases are written out \(anchor &a at line 1\)"):
        load_yaml_text(text)


def test_very_deep_input_is_refused_without_recursion_error(loader):
    # libyaml stops at its own 1000-level cap (its scanner reads ahead), the
    # Python parser at our 64; either way the same message, promptly.
    text = nested(200_000)
    outcome, peak = measured(load_yaml_text, text, "t", max_bytes=10**6)
    assert isinstance(outcome, ConfigError), outcome
    assert str(outcome).startswith(f"t: YAML nested more than {MAX_DEPTH} levels deep at line 1; flatten"), outcome
    assert peak < 2 * len(text) + SMALL_BYTES, f"peak {peak / 1e6:.1f} MB"


def test_node_limit_without_aliases(loader, monkeypatch):
    monkeypatch.setattr(yamlio, "MAX_NODES", 10)
    assert load_yaml_text("[1, 2, 3, 4, 5, 6, 7, 8, 9]") == list(range(1, 10))  # 10 nodes
    with pytest.raises(ConfigError, match=r"t: more than 10 YAML values \(the limit is reached at line 1, column 29\)"):
        load_yaml_text("[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]", "t")


def test_node_limit_stops_reading_early(loader, monkeypatch):
    # Five million items against a limit of 1,000: refused when the count
    # passes the limit, long before five million nodes are built. (At the
    # real limit the same check costs composing 100,000 nodes: seconds
    # under tracemalloc, so it is not timed here.)
    monkeypatch.setattr(yamlio, "MAX_NODES", 1_000)
    text = "[" + "1," * 5_000_000 + "1]"
    outcome, peak = measured(load_yaml_text, text, "t", max_bytes=len(text))
    assert isinstance(outcome, ConfigError) and "more than 1,000 YAML values" in str(outcome), outcome
    assert peak < 2 * len(text) + SMALL_BYTES, f"peak {peak / 1e6:.1f} MB"


def test_node_limit_at_its_real_value():
    with pytest.raises(ConfigError, match=f"more than {MAX_NODES:,} YAML values"):
        load_yaml_text("[" + "1," * MAX_NODES + "1]", max_bytes=10**6)


def test_file_size_limit(tmp_path):
    big = tmp_path / "big.yaml"
    with open(big, "wb") as fh:  # sparse: refused by stat, never read
        fh.truncate(MAX_FILE_BYTES + 1)
    expected = f"big.yaml: params file is {MAX_FILE_BYTES + 1:,} bytes, over the {MAX_FILE_BYTES:,}-byte limit"
    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_yaml_file(big, "params")
    small = tmp_path / "small.yaml"
    small.write_text("a: 12345\n")  # 9 bytes
    assert load_yaml_file(small, max_bytes=9) == {"a": 12345}
    with pytest.raises(ConfigError, match="9 bytes, over the 8-byte limit"):
        load_yaml_file(small, max_bytes=8)


def test_text_size_limit():
    assert load_yaml_text("x" * 10, max_bytes=10) == "x" * 10
    with pytest.raises(ConfigError, match=r"--set value: 11 bytes of YAML, over the 10-byte limit"):
        load_yaml_text("x" * 11, max_bytes=10)
    with pytest.raises(ConfigError, match=r"12 bytes"):  # counted in UTF-8 bytes, not characters
        load_yaml_text("é" * 6, max_bytes=10)
    with pytest.raises(ConfigError, match="over the 102,400-byte limit"):
        load_yaml_text("x" * (100 * 1024 + 1))


# --------------------------------------------------------------------------- files that are not YAML files


def test_directory_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=re.escape(f"{tmp_path}: is a directory, not a pipeline file")):
        load_yaml_file(tmp_path, "pipeline")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need POSIX")
def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "params.yaml"
    os.mkfifo(fifo)
    result: list = []

    def load():
        try:
            load_yaml_file(fifo, "params")
        except Exception as exc:  # noqa: BLE001 - checked below
            result.append(exc)

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    worker.join(HANG_GUARD_S)
    if worker.is_alive():  # opened the pipe and waits for a writer: give it one so the thread ends
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        worker.join(HANG_GUARD_S)
        pytest.fail("reading a FIFO blocked")
    assert len(result) == 1 and isinstance(result[0], ConfigError), result
    assert str(result[0]) == f"{fifo}: is a named pipe (FIFO), not a params file; give the path of a YAML file."


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_device_is_refused():
    assert stat.S_ISCHR(os.stat("/dev/zero").st_mode)
    outcome, peak = measured(load_yaml_file, "/dev/zero")  # refused by stat: an endless read never starts
    assert isinstance(outcome, ConfigError), outcome
    assert str(outcome).startswith("/dev/zero: is a character device, not a config file")
    assert peak < SMALL_BYTES, f"peak {peak / 1e6:.1f} MB"


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_yaml_file(tmp_path / "nope.yaml", "params")
    assert str(err.value) == f"params file not found: {tmp_path / 'nope.yaml'}"
    (tmp_path / "plain.txt").write_text("a: 1\n")
    with pytest.raises(ConfigError, match="config file not found"):
        load_yaml_file(tmp_path / "plain.txt" / "x.yaml")  # a file used as a directory


def test_symlink_to_a_file_is_followed(tmp_path):
    target = tmp_path / "real.yaml"
    target.write_text("a: 1\n")
    link = tmp_path / "link.yaml"
    try:
        link.symlink_to(target)
    except OSError:
        pytest.skip("symlinks not available")
    assert load_yaml_file(link) == {"a": 1}


# --------------------------------------------------------------------------- malformed input


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("encoder:\n  cell: lstm\n   layers: 2\n", 3, 10),
        ("a: 1\nb: [1, 2\n", 3, 1),
        ("a: *undefined\n", 1, 4),
    ],
)
def test_malformed_yaml_names_line_and_column(tmp_path, text, line, column):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_yaml_file(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: malformed YAML at line {line}, column {column}: "), msg
    assert msg.endswith(". Fix the syntax of that line.")


def test_control_character_names_line_and_column(loader):
    with pytest.raises(ConfigError, match=r"t: malformed YAML at line 2, column 4: .*not allowed \(character #x0001\)"):
        load_yaml_text("a: 1\nb: \x01\n", "t")


def test_unsafe_tag_is_refused(loader):
    with pytest.raises(ConfigError, match="could not determine a constructor"):
        load_yaml_text("a: !!python/object/apply:os.system ['true']\n")


def test_not_utf8(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"a: 1\nname: caf\xe9\n")
    with pytest.raises(ConfigError) as err:
        load_yaml_file(path)
    assert str(err.value) == f"{path}: not UTF-8 text at line 2 (byte offset 14); save the file as UTF-8."


def test_yaml_error_text_is_bounded(loader):
    with pytest.raises(ConfigError) as err:
        load_yaml_text("a: *" + "n" * 500_000 + "\n", max_bytes=10**6)
    assert "found undefined alias 'nnn" in str(err.value) and len(str(err.value)) < 400


# --------------------------------------------------------------------------- short_repr


def python_laughs(levels: int = 9) -> list:
    value: list = [1] * 9
    for _ in range(levels - 1):
        value = [value] * 9
    return value


def deeply_nested(levels: int) -> list:
    value: list = []
    for _ in range(levels):
        value = [value]
    return value


def self_referential() -> list:
    value: list = [1, 2]
    value.append(value)
    return value


class NoRepr:
    """An object whose own repr must not be called (it could cost anything)."""

    called = False

    def __repr__(self) -> str:
        NoRepr.called = True
        return "x" * 100_000_000


# name -> (value factory, what the quoted text starts with)
SHORT_REPR_CASES = {
    "100MB-string": (lambda: "x" * 100_000_000, "'xxxx"),
    "100MB-bytes": (lambda: b"x" * 100_000_000, "b'xxxx"),
    "million-list": (lambda: list(range(1_000_000)), "[0, 1, 2, 3, 4, 5, ...]"),
    "million-dict": (
        lambda: {f"k{i}": i for i in range(1_000_000)},
        "{'k0': 0, 'k1': 1, 'k2': 2, 'k3': 3, ... (1,000,000 keys)}",
    ),
    "million-set": (lambda: set(range(1_000_000)), "{0, 1, 2, 3, 4, 5, ...}"),
    "self-referential": (self_referential, "[1, 2, [1, 2, [1, 2, [...]]]]"),
    "shared-alias": (python_laughs, "[[[[...], [...], "),
    "deep": (lambda: deeply_nested(100_000), "[[[[...]]]]"),
    "huge-int": (lambda: 7**200_000, "<int of about 169,020 digits>"),
    "unknown-type": (NoRepr, "<NoRepr object>"),
}


@pytest.mark.parametrize("name", sorted(SHORT_REPR_CASES))
def test_short_repr_is_bounded(name):
    make, starts = SHORT_REPR_CASES[name]
    value = make()
    text, peak = measured(short_repr, value)
    assert isinstance(text, str) and 0 < len(text) <= 200, text
    assert text.startswith(starts), text
    assert peak < 1024 * 1024, f"peak {peak / 1e6:.1f} MB: something scaled with the input"
    assert len(short_repr(value, limit=40)) <= 40
    assert not NoRepr.called


def test_short_repr_of_small_values_is_repr():
    for value in ["encoder", 3, 1.5, None, True, [1, "a"], {"a": [1, 2]}, ("x",)]:
        assert short_repr(value) == repr(value)
    assert short_repr("x" * 500).startswith("'xxxx") and short_repr("x" * 500).endswith("...")
    assert short_repr({"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}) == "{'a': 1, 'b': 2, 'c': 3, 'd': 4, ... (5 keys)}"


def test_module_docstring_and_limits_are_documented():
    assert yamlio.__doc__ and "billion laughs" in yamlio.__doc__
    assert sys.modules["textclf.core"].__doc__
