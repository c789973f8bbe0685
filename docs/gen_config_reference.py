"""The configuration reference, generated from the pydantic config models so it cannot drift.

MkDocs runs this file as a hook (``hooks:`` in ``mkdocs.yml``): :func:`on_files`
adds the page ``reference/config.md`` to the build in memory, so nothing is
written into the repository and the page always describes the code being
documented. Every key comes from :class:`textclf.pipeline.config.Config` (and,
for pipeline files, :class:`textclf.pipeline.spec.PipelineSpec`); types,
defaults and bounds come from the fields, allowed values from ``Literal`` types
and from the registries that validators check against, descriptions from the
fields' ``description`` or else from the comment beside the key in
``params.yaml``, whose values are shown where they differ from the schema's.

Run it alone to read the page without MkDocs::

    python docs/gen_config_reference.py            # Markdown on stdout
    python docs/gen_config_reference.py out.md     # or into a file
"""

from __future__ import annotations

import json
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any

import annotated_types
import yaml
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

ROOT = Path(__file__).resolve().parent.parent
PAGE = "reference/config.md"

if str(ROOT) not in sys.path:  # the checkout being documented, also when textclf is installed elsewhere
    sys.path.insert(0, str(ROOT))


# --------------------------------------------------------------------------- formatting


def _value(v: Any) -> str:
    """A value as it is written in YAML / ``--set``."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return v
    if isinstance(v, BaseModel):
        v = v.model_dump(mode="json")
    return json.dumps(v)


def _type(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{_value(a)}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type(a) for a in args)
    if origin is list:
        return f"list of {_type(args[0])}" if args else "list"
    if origin is dict:
        return "mapping"
    if annotation is type(None):
        return "null"
    if annotation is typing.Any:
        return "any"
    return getattr(annotation, "__name__", str(annotation))


_BOUNDS = (
    (annotated_types.Ge, "ge", "≥"),
    (annotated_types.Gt, "gt", ">"),
    (annotated_types.Le, "le", "≤"),
    (annotated_types.Lt, "lt", "<"),
)


def _bounds(field: Any) -> str:
    parts = []
    for meta in field.metadata:
        for kind, attr, sign in _BOUNDS:
            if isinstance(meta, kind):
                parts.append(f"{sign} {_value(getattr(meta, attr))}")
        if isinstance(meta, annotated_types.MinLen):
            parts.append(f"at least {meta.min_length} long")
    return ", ".join(parts)


def _default(field: Any) -> Any:
    if field.default is PydanticUndefined:
        return field.default_factory() if field.default_factory else PydanticUndefined
    return field.default


def _rst(text: str) -> str:
    """Docstring markup (``x``, :mod:`x`) as Markdown code spans."""
    return re.sub(r":\w+:`~?([^`]+)`", r"`\1`", str(text).replace("``", "`"))


def _cell(text: str) -> str:
    return " ".join(_rst(text).split()).replace("|", "\\|")


def _doc(model: type, whole: bool = False) -> str:
    """The model's own docstring (or the first paragraph of its module's), as one Markdown paragraph."""
    own = model.__dict__.get("__doc__")
    doc = own or sys.modules[model.__module__].__doc__ or ""
    return " ".join(_rst(doc.strip() if whole and own else doc.strip().split("\n\n")[0]).split())


# Pipeline-file keys carry no field descriptions in the models; these say what each is for.
PIPELINE_KEYS = {
    "name": "The pipeline's name; also the MLflow experiment's.",
    "description": "Markdown shown as the parent run's Description in MLflow.",
    "data": "`data.*` config keys for every variant (e.g. `source: builtin:reviews`).",
    "params": "Config overrides for every variant, nested by section.",
    "seeds": "Training seeds, a list (every variant runs once per seed) or `{min, max[, step, start]}`: as many seeds as the answer needs ([The comparison](../comparison.md#as-many-seeds-as-the-answer-needs)).",
    "baseline": "The variant every other is compared with.",
    "variants": "Variant name -> its config overrides (`{}` or null: the defaults).",
    "grid": "Dotted key -> list of values; every combination becomes a variant.",
    "tasks": "Task name -> one dataset of a multi-task pipeline (below).",
    "tune": "Equal-budget tuning of every variant (below).",
    "contrasts": "Name -> `{a: VARIANT, b: VARIANT}`: the questions the comparison answers (default: derived from the variants).",
    "compare": "How differences are judged: `sesoi`, `alpha`, `allow_test_is_validation` (below).",
}
TASK_KEYS = {
    "description": "What the task is (shown in the report).",
    "data": "`data.*` config keys of this task's dataset.",
    "params": "Config overrides for this task's variants.",
    "variants": "A subset of the pipeline's variants (default: all).",
    "baseline": "This task's baseline (default: the pipeline's).",
    "claim": "What the task tests, judged on its runs (below).",
}


# --------------------------------------------------------------------------- params.yaml


def params_yaml(path: Path = ROOT / "params.yaml") -> tuple[dict[str, Any], dict[str, str]]:
    """The shipped defaults, flattened to dotted keys, and the comment written beside each key."""
    from textclf.pipeline.config import flatten

    values = flatten(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    comments: dict[str, str] = {}
    section, last = None, None
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^(\s*)([A-Za-z_]\w*):(.*)$", line)
        if m:
            indent, key, rest = m.groups()
            if not indent:
                section = key
            dotted = key if not indent else f"{section}.{key}"
            comment = rest.split("#", 1)[1].strip() if "#" in rest else ""
            if comment:
                comments[dotted] = comment
            last = dotted
            continue
        m = re.match(r"^\s+#\s?(.*)$", line)
        if m and last:  # an indented comment line continues the comment of the key above
            comments[last] = (comments.get(last, "") + " " + m.group(1)).strip()
        elif not line.strip() or not line.startswith(" "):
            last = None
    return values, comments


# --------------------------------------------------------------------------- the page


def _allowed_by_validators() -> dict[str, str]:
    """Keys whose allowed values a validator checks against a registry, not a type."""
    from textclf.core.metrics import epoch_metric_names
    from textclf.models.registry import ENCODERS

    return {
        "encoder.cell": "; ".join(f"`{k}` ({_cell(f.description)})" for k, f in ENCODERS.items()),
        "train.early_stopping_metric": " \\| ".join(f"`{m}`" for m in ["loss", *epoch_metric_names()]),
        "train.device": "`auto` \\| `cpu` \\| `cuda` \\| `cuda:N` \\| `mps`",
    }


def leaf_rows(model: type[BaseModel], prefix: str = "") -> list[tuple[str, Any, type[BaseModel]]]:
    """(dotted key, field, owning model) for every leaf of ``model``, sections expanded."""
    rows = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel) and not prefix:
            rows.extend(leaf_rows(ann, f"{name}."))
        else:
            rows.append((f"{prefix}{name}", field, model))
    return rows


def _table(
    rows: list[tuple[str, Any, Any]],
    params: dict[str, Any],
    comments: dict[str, str],
    allowed: dict[str, str],
    notes: dict[str, str] | None = None,
) -> list[str]:
    notes = notes or {}
    out = ["| key | type and allowed values | default | description |", "|---|---|---|---|"]
    for key, field, _model in rows:
        kind = allowed.get(key) or _type(field.annotation)
        bounds = _bounds(field)
        if bounds:
            kind = f"{kind}, {bounds}"
        schema = _default(field)
        default = "required" if schema is PydanticUndefined else f"`{_value(schema)}`"
        if key in params and params[key] != schema and schema is not PydanticUndefined:
            default = f"`{_value(params[key])}` (params.yaml; schema: {default})"
        text = field.description or comments.get(key, "") or notes.get(key, "")
        out.append(f"| `{key}` | {kind} | {default} | {_cell(text)} |")
    return out


def render() -> str:
    from textclf.pipeline import tune_spec
    from textclf.pipeline.config import SECTIONS, Config
    from textclf.pipeline.spec import ClaimSpec, CompareSpec, PipelineSpec, TaskSpec

    params, comments = params_yaml()
    allowed = _allowed_by_validators()
    rows = leaf_rows(Config)
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated by docs/gen_config_reference.py from the pydantic models; do not edit. -->",
        "",
        (
            "Generated from the config models (`textclf/pipeline/config.py` `Config` and the section models "
            "each layer declares) and `params.yaml` when the documentation is built, so it lists exactly "
            "the keys the code accepts. Every key can be set in `params.yaml`, in a pipeline's `params:` or "
            "a variant, or with `--set key=value`; see [Configuration](../configuration.md) for how the "
            "layers combine. An unknown key, a wrong type or a value out of range stops the command before "
            "any work, with exit code 2."
        ),
        "",
    ]
    top = [r for r in rows if "." not in r[0]]
    if top:
        lines += ["## Top level", ""] + _table(top, params, comments, allowed) + [""]
    for section in SECTIONS:
        model = Config.model_fields[section].annotation
        section_rows = [r for r in rows if r[0].startswith(section + ".")]
        note = comments.get(section, "")
        lines += [f"## `{section}`", "", _doc(model) + (f" In params.yaml: {note}." if note else ""), ""]
        lines += _table(section_rows, params, comments, allowed) + [""]
    unlisted = [
        s
        for s in Config.model_fields
        if s not in SECTIONS
        and "." not in s
        and isinstance(Config.model_fields[s].annotation, type)
        and issubclass(Config.model_fields[s].annotation, BaseModel)
    ]
    for section in unlisted:  # a section added to Config but not to SECTIONS still gets documented
        section_rows = [r for r in rows if r[0].startswith(section + ".")]
        lines += [f"## `{section}`", ""] + _table(section_rows, params, comments, allowed) + [""]

    lines += [
        "## Pipeline files",
        "",
        (
            "The top-level keys of a pipeline (`pipelines/*.yaml`). `data` and `params` hold config keys "
            "from the tables above; each variant is a mapping of config keys, and `grid` maps dotted keys to "
            "lists of values (every combination becomes a variant)."
        ),
        "",
    ]
    lines += _table(leaf_rows_flat(PipelineSpec), {}, {}, {}, PIPELINE_KEYS) + [""]
    lines += ["### `compare`", "", _doc(CompareSpec, whole=True), ""]
    lines += _table(leaf_rows_flat(CompareSpec), {}, {}, {}) + [""]
    lines += ["### `tasks.<name>`", "", _doc(TaskSpec, whole=True), ""]
    lines += _table(leaf_rows_flat(TaskSpec), {}, {}, {}, TASK_KEYS) + [""]
    lines += ["### `tasks.<name>.claim`", "", _doc(ClaimSpec, whole=True), ""]
    lines += _table(leaf_rows_flat(ClaimSpec), {}, {}, {}) + [""]

    spec = tune_spec.TuneSpec()
    metrics = " \\| ".join(f"`{m}`" for m in tune_spec.allowed_metrics())
    pruners = " \\| ".join(f"`{p}`" for p in tune_spec.PRUNERS)
    lines += [
        "### `tune`",
        "",
        "Equal-budget tuning (see [Tuning](../tuning.md)); `tune: null` or leaving it out tunes nothing.",
        "",
        "| key | allowed values | default |",
        "|---|---|---|",
        f"| `tune.trials` | integer ≥ 1 (per variant) | `{spec.trials}` |",
        f"| `tune.metric` | {metrics} | `{spec.metric}` |",
        f"| `tune.pruner` | {pruners} | `{spec.pruner}` |",
        (
            "| `tune.space` | dotted config keys of the sections "
            f"{', '.join(f'`{s}`' for s in tune_spec.TUNABLE_SECTIONS)}, each `{{low, high}}` (with `log: true` "
            "or `step`) or `{choices: [...]}` | the default space below |"
        ),
        "",
        "Default space:",
        "",
        "| key | searched |",
        "|---|---|",
    ]
    lines += [f"| `{k}` | `{_value(v)}` |" for k, v in tune_spec.DEFAULT_SPACE.items()]
    lines += ["", "Never searched:", "", "| key | why |", "|---|---|"]
    lines += [f"| `{k}` | {_cell(v)} |" for k, v in tune_spec.NOT_TUNABLE.items()]
    return "\n".join(lines) + "\n"


def leaf_rows_flat(model: type[BaseModel]) -> list[tuple[str, Any, type[BaseModel]]]:
    """(key, field, model) for the fields of ``model`` itself, nested models not expanded."""
    return [(name, field, model) for name, field in model.model_fields.items()]


# --------------------------------------------------------------------------- the MkDocs hook


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    files.append(File.generated(config, PAGE, content=render()))
    return files


if __name__ == "__main__":
    text = render()
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
