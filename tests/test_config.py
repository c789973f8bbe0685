"""Config schema, precedence (params.yaml < pipeline < --set), typed overrides,
validation messages, and pipeline files."""

from __future__ import annotations

import pytest
import yaml
from conftest import REPO

from textclf.core.errors import ConfigError
from textclf.pipeline.config import (
    Config,
    deep_merge,
    defaults,
    load_config,
    parse_overrides,
    parse_value,
    read_yaml,
    validate,
)
from textclf.pipeline.spec import expand_dotted, grid_name, load_pipeline


def write_yaml(path, doc) -> str:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(path)


def problems(exc: pytest.ExceptionInfo) -> list[str]:
    return [line[4:] for line in str(exc.value).splitlines() if line.startswith("  - ")]


# --------------------------------------------------------------------------- params.yaml and pipelines/


def test_repository_params_yaml_validates_and_has_every_section():
    raw = read_yaml(REPO / "params.yaml")
    for section in ("data", "tokenizer", "embedding", "encoder", "train", "evaluate", "tfidf"):
        assert isinstance(raw.get(section), dict), f"params.yaml lacks section {section}"
    cfg = load_config(params_file=REPO / "params.yaml")
    # Every key written in params.yaml made it into the resolved config unchanged
    # (embedding.dim: null is filled in: 100 without pretrained vectors).
    resolved = cfg.to_dict()
    assert raw["embedding"]["dim"] is None and resolved["embedding"]["dim"] == 100
    for section, values in raw.items():
        if isinstance(values, dict):
            for key, value in values.items():
                if (section, key) != ("embedding", "dim"):
                    assert resolved[section][key] == value, f"{section}.{key}"
        else:
            assert resolved[section] == values


def test_every_pipeline_in_the_repository_loads_and_validates():
    files = sorted((REPO / "pipelines").glob("*.y*ml"))
    failures = {}
    for path in files:
        try:
            pipe = load_pipeline(path, params_file=REPO / "params.yaml")
        except ConfigError as exc:
            failures[path.name] = str(exc)
            continue
        assert pipe.variants, path.name
        assert pipe.seeds, path.name
        if pipe.baseline:
            assert pipe.baseline in pipe.variants, path.name
        for variant in pipe.variants.values():
            assert isinstance(variant.config, Config)
            # The data section of a pipeline reaches every variant.
            raw = read_yaml(path)
            for key, value in (raw.get("data") or {}).items():
                assert getattr(variant.config.data, key) == value, (path.name, key)
    assert not failures, failures


# --------------------------------------------------------------------------- precedence


def test_precedence_params_then_pipeline_then_set(tmp_path):
    params = write_yaml(tmp_path / "p.yaml", {"encoder": {"layers": 2, "hidden_size": 32}, "train": {"epochs": 4}})
    pipe = write_yaml(
        tmp_path / "pipe.yaml",
        {"name": "t", "params": {"encoder": {"layers": 3}}, "variants": {"a": {"train": {"epochs": 5}}}},
    )
    base = load_config(params_file=params)
    assert (base.encoder.layers, base.encoder.hidden_size, base.train.epochs) == (2, 32, 4)
    assert base.encoder.cell == Config().encoder.cell  # untouched keys keep the schema default

    cfg = load_pipeline(pipe, params_file=params).variants["a"].config
    assert (cfg.encoder.layers, cfg.encoder.hidden_size, cfg.train.epochs) == (3, 32, 5)

    cfg = load_pipeline(pipe, params_file=params, overrides=["encoder.layers=4", "train.epochs=6"]).variants["a"].config
    assert (cfg.encoder.layers, cfg.encoder.hidden_size, cfg.train.epochs) == (4, 32, 6)


def test_params_yaml_in_the_working_directory_is_picked_up(tmp_path):
    write_yaml(tmp_path / "params.yaml", {"train": {"batch_size": 7}})
    assert load_config().train.batch_size == 7
    assert load_config(overrides=["train.batch_size=9"]).train.batch_size == 9


def test_missing_params_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="params file not found"):
        load_config(params_file=tmp_path / "nope.yaml")


def test_deep_merge_keeps_siblings_and_does_not_mutate():
    base = {"encoder": {"cell": "lstm", "layers": 1}, "train": {"lr": 0.1}}
    merged = deep_merge(base, {"encoder": {"layers": 2}})
    assert merged == {"encoder": {"cell": "lstm", "layers": 2}, "train": {"lr": 0.1}}
    assert base["encoder"]["layers"] == 1


# --------------------------------------------------------------------------- --set typing


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2", 2),
        ("-3", -3),
        ("0.5", 0.5),
        ("1e-3", 1e-3),
        ("2.5E+2", 250.0),
        ("true", True),
        ("false", False),
        ("null", None),
        ("[1, 2, 3]", [1, 2, 3]),
        ("[a, b]", ["a", "b"]),
        ("lstm", "lstm"),
        ("'2'", "2"),
        ("reviews.csv", "reviews.csv"),
        ("builtin:reviews", "builtin:reviews"),
        ("hf:glue:sst2", "hf:glue:sst2"),
        ("my file: v2.csv", "my file: v2.csv"),
        ("{size: 30}", {"size": 30}),
        ("", ""),
    ],
)
def test_parse_value_types(text, expected):
    value = parse_value(text)
    assert value == expected
    assert type(value) is type(expected)


def test_parse_overrides_nests_dotted_keys():
    assert parse_overrides(["encoder.layers=2", "encoder.cell=gru", "train.lr=1e-3", "kind=tfidf"]) == {
        "encoder": {"layers": 2, "cell": "gru"},
        "train": {"lr": 1e-3},
        "kind": "tfidf",
    }
    # The value may itself contain '='.
    assert parse_overrides(["data.source=a=b.csv"]) == {"data": {"source": "a=b.csv"}}


def test_parse_overrides_reports_every_bad_item():
    with pytest.raises(ConfigError) as exc:
        parse_overrides(["encoder.layers", "9x.y=1", "train.lr=[1,", "encoder=3", "encoder.cell=gru"])
    msg = str(exc.value)
    for bad in ("'encoder.layers'", "'9x.y=1'", "'train.lr=[1,'", "'encoder.cell=gru'"):
        assert bad in msg
    assert "expected KEY=VALUE" in msg


def test_set_values_are_typed_in_the_config():
    cfg = load_config(
        overrides=[
            "encoder.bidirectional=true",
            "train.lr=5e-4",
            "train.num_threads=2",
            "data.max_examples=null",
            "data.options={size: 30}",
        ]
    )
    assert cfg.encoder.bidirectional is True
    assert cfg.train.lr == pytest.approx(5e-4)
    assert cfg.train.num_threads == 2
    assert cfg.data.max_examples is None
    assert cfg.data.options == {"size": 30}


# --------------------------------------------------------------------------- validation


def test_one_error_lists_every_problem_with_key_value_and_allowed():
    raw = deep_merge(
        defaults(),
        {
            "encoder": {"layrs": 2, "cell": "transformer"},
            "train": {"lr": "fast", "epochs": 0},
            "tokenizer": {"kind": "sentencepiece"},
        },
    )
    with pytest.raises(ConfigError) as exc:
        validate(raw)
    lines = problems(exc)
    assert len(lines) == 5
    assert "5 problems" in str(exc.value)
    by_key = {line.split(":")[0]: line for line in lines}
    assert set(by_key) == {"encoder.layrs", "encoder.cell", "train.lr", "train.epochs", "tokenizer.kind"}
    # unknown key: the closest key is suggested and the allowed keys listed
    assert "Did you mean 'encoder.layers'" in by_key["encoder.layrs"]
    assert "hidden_size" in by_key["encoder.layrs"] and "2" in by_key["encoder.layrs"]
    # literal: the allowed values and the value given
    assert "'transformer'" in by_key["encoder.cell"]
    assert all(v in by_key["encoder.cell"] for v in ("'rnn'", "'gru'", "'lstm'"))
    assert all(
        v in by_key["tokenizer.kind"]
        for v in ("'word'", "'bpe'", "'wordpiece'", "'unigram'", "'char'", "'sentencepiece'")
    )
    # wrong type and out of range name the value given
    assert "'fast'" in by_key["train.lr"] and "number" in by_key["train.lr"]
    assert "greater than or equal to 1" in by_key["train.epochs"] and "Got 0" in by_key["train.epochs"]


def test_unknown_section_suggests_and_lists_sections():
    with pytest.raises(ConfigError) as exc:
        load_config(overrides=["encodr.layers=2"])
    (line,) = problems(exc)
    assert line.startswith("encodr:")
    assert "Did you mean 'encoder'" in line
    assert "tokenizer" in line and "evaluate" in line


@pytest.mark.parametrize(
    "override, key",
    [
        ("encoder.layers=true", "encoder.layers"),
        ("train.lr=yes", "train.lr"),
        ("tfidf.C=false", "tfidf.C"),
        ("encoder.layers=2.5", "encoder.layers"),
        ("encoder.hidden_size=[1, 2]", "encoder.hidden_size"),
        ("data.source=3", "data.source"),
        ("encoder.dropout=1.0", "encoder.dropout"),
        ("data.val_fraction=-0.1", "data.val_fraction"),
        ("train.device=gpu", "train.device"),
        ("data.on_invalid=skip", "data.on_invalid"),
        ("encoder=3", "encoder"),
    ],
)
def test_wrong_type_or_range_is_rejected(override, key):
    with pytest.raises(ConfigError) as exc:
        load_config(overrides=[override])
    (line,) = problems(exc)
    assert line.startswith(f"{key}:")
    given = override.partition("=")[2]
    assert "Got" in line and repr(parse_value(given)) in line


def test_fractions_must_leave_room_for_training():
    with pytest.raises(ConfigError, match=r"val_fraction \+ data.test_fraction must be < 1"):
        load_config(overrides=["data.val_fraction=0.5", "data.test_fraction=0.5"])
    with pytest.raises(ConfigError, match="not both"):
        load_config(overrides=["data.source=a.csv", "data.train=b.csv"])


def test_malformed_yaml_names_the_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nvariants: {a: [1,\n")
    with pytest.raises(ConfigError, match=r"malformed YAML at line \d+"):
        load_pipeline(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(listy)


# --------------------------------------------------------------------------- pipelines


def test_grid_and_dotted_variants_expand(tmp_path):
    path = write_yaml(
        tmp_path / "g.yaml",
        {
            "name": "g",
            "seeds": [1, 2],
            "baseline": "rnn",
            "variants": {"rnn": {"encoder.cell": "rnn"}, "tfidf": {"kind": "tfidf"}},
            "grid": {"encoder.cell": ["gru", "lstm"], "encoder.bidirectional": [False, True], "encoder.layers": [1, 2]},
        },
    )
    pipe = load_pipeline(path)
    grid_names = {
        grid_name({"encoder.cell": c, "encoder.bidirectional": b, "encoder.layers": n})
        for c in ("gru", "lstm")
        for b in (False, True)
        for n in (1, 2)
    }
    assert len(grid_names) == 8
    assert set(pipe.variants) == grid_names | {"rnn", "tfidf"}
    assert pipe.variants["rnn"].config.encoder.cell == "rnn"
    assert pipe.variants["tfidf"].config.kind == "tfidf"
    bilstm2 = pipe.variants[
        grid_name({"encoder.cell": "lstm", "encoder.bidirectional": True, "encoder.layers": 2})
    ].config.encoder
    assert (bilstm2.cell, bilstm2.bidirectional, bilstm2.layers) == ("lstm", True, 2)
    # Per-seed configs differ only in train.seed.
    v = pipe.variants["rnn"]
    a, b = v.for_seed(1), v.for_seed(2)
    assert (a.train.seed, b.train.seed) == (1, 2)
    assert {k: x for k, x in a.flat().items() if k != "train.seed"} == {
        k: x for k, x in b.flat().items() if k != "train.seed"
    }
    assert v.config.train.seed == Config().train.seed  # for_seed copies


def test_only_selects_variants_and_unknown_variant_is_named(tmp_path):
    path = write_yaml(tmp_path / "o.yaml", {"name": "o", "variants": {"a": {}, "b": {"encoder.layers": 2}}})
    assert set(load_pipeline(path, only=["b"]).variants) == {"b"}
    with pytest.raises(ConfigError, match=r"Unknown variant\(s\) \['c'\]"):
        load_pipeline(path, only=["c"])


def test_pipeline_problems_are_collected_and_shared_ones_reported_once(tmp_path):
    path = write_yaml(
        tmp_path / "bad.yaml",
        {
            "name": "bad",
            "params": {"train": {"epochz": 3}},
            "baseline": "nope",
            "variants": {"a": {}, "b": {"encoder": {"layers": 0}}, "c": {"encoder": {"cell": "transformer"}}},
        },
    )
    with pytest.raises(ConfigError) as exc:
        load_pipeline(path)
    msg = str(exc.value)
    assert str(path) in msg
    lines = problems(exc)
    assert len(lines) == 4
    assert sum("train.epochz" in line for line in lines) == 1
    assert any(line.startswith("every variant: train.epochz") for line in lines)
    assert any(line.startswith("variant 'b': encoder.layers") for line in lines)
    assert any(line.startswith("variant 'c': encoder.cell") and "'transformer'" in line for line in lines)
    assert any(line.startswith("baseline: 'nope'") for line in lines)


@pytest.mark.parametrize(
    "doc, fragment",
    [
        ({"name": "x", "seedz": [1]}, "Did you mean 'seeds'"),
        ({"name": "x", "seeds": [1, 1]}, "seeds must be unique"),
        ({"name": "x", "seeds": []}, "seeds"),
        ({"name": "x", "variants": ["a", "b"]}, "variants"),
        ({"variants": {"a": {}}}, "name"),
        ({"name": "x", "grid": {"train.lr": [0.1, 0.1]}}, "twice"),
        ({"name": "x", "variants": {"lr=0.1": {}}, "grid": {"train.lr": [0.1]}}, "clashes"),
        ({"name": "x", "params": {"encoder": 3, "encoder.cell": "rnn"}}, "used as a section"),
    ],
)
def test_bad_pipeline_files(tmp_path, doc, fragment):
    path = write_yaml(tmp_path / "p.yaml", doc)
    with pytest.raises(ConfigError) as exc:
        load_pipeline(path)
    assert fragment in str(exc.value)
    assert str(path) in str(exc.value)


def test_pipeline_found_by_name_with_suggestion(tmp_path):
    (tmp_path / "pipelines").mkdir()
    write_yaml(tmp_path / "pipelines" / "mine.yaml", {"name": "mine"})
    assert load_pipeline("mine").name == "mine"
    with pytest.raises(ConfigError, match="Did you mean 'mine'"):
        load_pipeline("mien")
    with pytest.raises(ConfigError, match="not found"):
        load_pipeline("missing.yaml")


def test_expand_dotted_merges_nested_and_dotted_forms():
    assert expand_dotted({"encoder.cell": "rnn", "encoder": {"layers": 2}, "data": {"options": {"a.b": 1}}}) == {
        "encoder": {"cell": "rnn", "layers": 2},
        "data": {"options": {"a.b": 1}},
    }


def test_named_vectors_with_the_wrong_dim_fail_at_config_time():
    # No vectors are loaded (the [glove] extra need not be installed): the size of glove-6b-50d is known.
    with pytest.raises(
        ConfigError,
        match=r"embedding.dim is 100 but glove-6b-50d vectors have 50 dimensions; set --set embedding.dim=50",
    ):
        load_config(overrides=["embedding.pretrained=glove-6b-50d", "embedding.dim=100"])
    assert load_config(overrides=["embedding.pretrained=glove-6b-50d", "embedding.dim=50"]).embedding.dim == 50


def test_embedding_dim_defaults_to_the_vectors_size(tmp_path):
    assert load_config().embedding.dim == 100
    assert load_config(overrides=["embedding.pretrained=glove-6b-50d"]).embedding.dim == 50
    (tmp_path / "g.txt").write_text("the 0.1 0.2 0.3\nmovie 1 2 3\n")
    (tmp_path / "w.txt").write_text("2 4\nthe 0.1 0.2 0.3 0.4\nmovie 1 2 3 4\n")
    assert load_config(overrides=[f"embedding.pretrained={tmp_path / 'g.txt'}"]).embedding.dim == 3
    assert load_config(overrides=[f"embedding.pretrained={tmp_path / 'w.txt'}"]).embedding.dim == 4  # word2vec header
    with pytest.raises(
        ConfigError, match=r"embedding.dim is 8 but .*g.txt vectors have 3 dimensions; set --set embedding.dim=3"
    ):
        load_config(overrides=[f"embedding.pretrained={tmp_path / 'g.txt'}", "embedding.dim=8"])
