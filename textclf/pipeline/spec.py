"""Pipeline files: which data, which variants, which seeds.

A pipeline (``pipelines/*.yaml``) names the data, the seeds, the baseline
variant and the variants, as an explicit map and/or a grid over dotted keys::

    name: compare
    data: {source: builtin:reviews}
    params: {train: {epochs: 8}}      # optional: overrides for every variant
    seeds: [1, 2, 3]
    baseline: rnn
    variants:
      rnn:    {encoder: {cell: rnn}}
      tfidf:  {kind: tfidf}
    grid:                             # optional: every combination becomes a variant
      encoder.cell: [gru, lstm]
      encoder.layers: [1, 2]
    tune: {trials: 12}                # optional: tune each variant, equal budget (tune_spec.py)

Each variant's config is ``params.yaml ⊕ pipeline data/params ⊕ variant ⊕ --set``
(see :func:`textclf.config.resolve`); every variant is validated before
anything runs, and all problems are reported together.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from textclf.core.bounded import short_repr
from textclf.core.errors import ConfigError
from textclf.core.schema import SEED_MAX
from textclf.pipeline.config import Config, deep_merge, read_yaml, resolve

DEFAULT_PIPELINE = "compare"


class PipelineSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        ..., min_length=1, max_length=500
    )  # the MLflow experiment's name: MLflow takes at most 500 characters
    description: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    seeds: list[int] | dict[str, Any] = Field(default_factory=lambda: [1])  # a list, or {min, max[, step, start]}
    baseline: str | None = None
    variants: dict[str, dict[str, Any] | None] = Field(default_factory=dict)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    tasks: dict[str, TaskSpec] = Field(default_factory=dict)
    tune: Any = None  # checked by textclf.pipeline.tune_spec.parse, with every variant problem
    contrasts: dict[str, ContrastSpec] | None = None  # None: derived from the variants (analysis/contrasts.py)
    compare: CompareSpec = Field(default_factory=lambda: CompareSpec())

    @field_validator("seeds")
    @classmethod
    def _unique(cls, v: list[int] | dict[str, Any]) -> list[int] | dict[str, Any]:
        if isinstance(v, dict):  # as many seeds as the answer needs (analysis/sequential.py)
            from textclf.analysis.sequential import schedule_from

            schedule_from(v)
            return v
        if not v:
            raise ValueError("seeds must list at least one seed, e.g. seeds: [1, 2, 3], or be {min: 3, max: 9}")
        if len(set(v)) != len(v):
            raise ValueError(f"seeds must be unique, got {v}")
        bad = [s for s in v if not 0 <= s <= SEED_MAX]
        if bad:
            raise ValueError(
                f"seed {short_repr(bad[0])} is out of range; every seed must be an integer in [0, {SEED_MAX}] (2**32 - 1, what numpy and scikit-learn accept)"
            )
        return v


class ContrastSpec(BaseModel):
    """One question the comparison answers: variant ``a`` against variant ``b`` (delta = a − b)."""

    model_config = ConfigDict(extra="forbid")

    a: str = Field(..., min_length=1)
    b: str = Field(..., min_length=1)

    @model_validator(mode="after")
    def _two(self) -> ContrastSpec:
        if self.a == self.b:
            raise ValueError(f"a contrast compares two different variants; a and b are both {self.a!r}")
        return self


class CompareSpec(BaseModel):
    """How differences are judged (:mod:`textclf.analysis.contrasts`).

    ``sesoi``: the smallest difference that matters, in points of the primary
    metric (default 2; see the contrasts module for why); ``alpha``: the
    family-wise error rate of the verdicts; ``allow_test_is_validation``: run
    even when the test set would be the validation set (every verdict then
    carries a warning).
    """

    model_config = ConfigDict(extra="forbid")

    sesoi: float = Field(2.0, gt=0.0, lt=100.0)
    alpha: float = Field(0.05, gt=0.0, lt=0.5)
    allow_test_is_validation: bool = False


class ClaimSpec(BaseModel):
    """What a diagnostic task claims, judged by :mod:`textclf.analysis.verdicts`.

    ``better``: variants expected to beat the task's baseline; ``same``: a
    negative control, variants expected not to differ from it. ``threshold``:
    test accuracy that counts as solving the task (success rate);
    ``min_effect``: the smallest advantage worth claiming; ``measure``: what
    the verdict tests, named in advance: ``accuracy`` (mean test accuracy)
    or ``successes`` (seeds reaching the threshold: for bimodal tasks).
    """

    model_config = ConfigDict(extra="forbid")

    text: str = Field(..., min_length=1)
    better: list[str] | None = None
    same: list[str] | None = None
    threshold: float = Field(0.95, gt=0.0, le=1.0)
    min_effect: float = Field(0.02, ge=0.0, lt=1.0)
    measure: Literal["accuracy", "successes"] = "accuracy"
    seeds: list[int] | None = None  # the seeds the claim is judged on; other seeds make the verdict exploratory
    alpha: float = Field(0.05, gt=0.0, lt=0.5)
    alternative: Literal["two-sided", "one-sided"] = "two-sided"
    require: Literal["all"] | None = None  # better: every named variant must beat the baseline

    @model_validator(mode="after")
    def _one_kind(self) -> ClaimSpec:
        if bool(self.better) == bool(self.same):
            raise ValueError(
                "a claim lists either the variants expected to be better (better: [...]) or those expected not to differ (same: [...])"
            )
        if self.better and len(self.better) > 1 and self.require != "all":
            raise ValueError(
                f"a better claim names the one variant it is about, or requires every named variant; "
                f"it names {self.better}: keep one, or add require: all"
            )
        return self


class TaskSpec(BaseModel):
    """One dataset of a multi-task pipeline (e.g. a diagnostic at one distance).

    Each task is compared on its own (its own test set, its own baseline).
    """

    model_config = ConfigDict(extra="forbid")

    description: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    variants: list[str] | None = None  # a subset of the pipeline's variants (default: all)
    baseline: str | None = None  # default: the pipeline's baseline
    claim: ClaimSpec | None = None  # what the task tests, judged on its runs


PipelineSpec.model_rebuild()


@dataclass
class Variant:
    name: str
    overrides: dict[str, Any]  # what this variant changes, nested
    config: Config  # fully resolved; train.seed is replaced per seed at run time
    task: str | None = None  # the task of a multi-task pipeline

    @property
    def key(self) -> str:
        return f"{self.task}/{self.name}" if self.task else self.name

    def for_seed(self, seed: int) -> Config:
        cfg = self.config.model_copy(deep=True)
        cfg.train.seed = seed
        return cfg


@dataclass
class Pipeline:
    spec: PipelineSpec
    path: Path | None
    variants: dict[str, Variant]
    tune: Any = None  # textclf.pipeline.tune_spec.TuneSpec, or None: no tuning

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def schedule(self):
        """The :class:`~textclf.analysis.sequential.SeedSchedule` of ``seeds: {min, max}``; None for a list of seeds."""
        from textclf.analysis.sequential import schedule_from

        return schedule_from(self.spec.seeds) if isinstance(self.spec.seeds, dict) else None

    @property
    def seeds(self) -> list[int]:
        """The seeds every variant trains first: the list, or a schedule's first ``min``."""
        schedule = self.schedule
        return schedule.seeds(schedule.min) if schedule is not None else list(self.spec.seeds)

    @property
    def baseline(self) -> str | None:
        return self.spec.baseline

    def baseline_for(self, task: str | None) -> str | None:
        if task and self.spec.tasks[task].baseline:
            return self.spec.tasks[task].baseline
        return self.spec.baseline


def expand_dotted(d: dict[str, Any] | None) -> dict[str, Any]:
    """``{"encoder.cell": "rnn"}`` -> ``{"encoder": {"cell": "rnn"}}`` (nested dicts pass through)."""
    out: dict[str, Any] = {}
    for key, value in (d or {}).items():
        if isinstance(value, dict) and key != "options":
            value = expand_dotted(value)
        node, parts = out, str(key).split(".")
        for i, p in enumerate(parts[:-1]):
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                section = ".".join(parts[: i + 1])
                raise ConfigError(f"{key}: {section!r} is set to a value ({node!r}) and also used as a section.")
        node[parts[-1]] = (
            deep_merge(node.get(parts[-1], {}), value)
            if isinstance(value, dict) and isinstance(node.get(parts[-1]), dict)
            else value
        )
    return out


def grid_name(assignment: dict[str, Any]) -> str:
    """A readable variant name: ``bilstm-x2`` for the encoder keys, ``key=value`` for the rest."""
    a = dict(assignment)
    cell = a.pop("encoder.cell", None)
    layers = a.pop("encoder.layers", None)
    bi = a.pop("encoder.bidirectional", None)
    parts = []
    if cell is not None or bi is not None:
        parts.append(("bi" if bi else "") + (str(cell) if cell is not None else "enc"))
    if layers is not None:
        parts.append(f"x{layers}")
    parts += [f"{k.split('.')[-1]}={v}" for k, v in a.items()]
    return "-".join(parts) if parts else "default"


# A grid is a product: a few keys of a few dozen values each are millions of variants,
# and expanding them (even for `config show`) would exhaust memory before saying so.
MAX_GRID_VARIANTS = 1000


def check_grid_size(grid: dict[str, list[Any]], where) -> None:
    """Refuse an empty value list or a grid of more than :data:`MAX_GRID_VARIANTS` variants, before expanding it."""
    empty = [k for k, values in grid.items() if not values]
    if empty:
        raise ConfigError(
            f"{where}: grid key(s) {', '.join(map(repr, empty))} list no values, so the grid yields no variant. "
            "Give each grid key at least one value, or remove it from 'grid'."
        )
    total = 1
    for values in grid.values():
        total *= len(values)
    if total > MAX_GRID_VARIANTS:
        counts = " × ".join(f"{k} ({len(v)})" for k, v in grid.items())
        raise ConfigError(
            f"{where}: the grid yields {total:,} variants ({counts}), more than the limit of {MAX_GRID_VARIANTS:,}. "
            "Shorten the value lists or split the grid over several pipelines; to search a large space, use a 'tune:' section instead."
        )


def check_shared_test_sets(variants: list[Variant]) -> list[str]:
    """Problems (as lines) where variants compared with each other would be scored on different test sets.

    The comparison pairs the variants' predictions example by example, so every
    variant of a task (of the pipeline, without tasks) must read and split the
    same data: the whole ``data`` section, except ``slice_columns`` (extra
    columns read for the report), must agree.
    """
    problems = []
    by_task: dict[str | None, list[Variant]] = {}
    for v in variants:
        by_task.setdefault(v.task, []).append(v)
    for task, group in by_task.items():
        first = group[0]
        ref = {k: v for k, v in first.config.data.model_dump(mode="json").items() if k != "slice_columns"}
        for v in group[1:]:
            mine = {k: x for k, x in v.config.data.model_dump(mode="json").items() if k != "slice_columns"}
            diff = [k for k in ref if ref[k] != mine.get(k)]
            if diff:
                shown = "; ".join(f"data.{k}: {short_repr(ref[k])} vs {short_repr(mine.get(k))}" for k in diff)
                where = f"task {task!r}: " if task else ""
                problems.append(
                    f"{where}variants {first.name!r} and {v.name!r} would be tested on different data ({shown}), "
                    "and the comparison pairs their predictions on one test set. Set the data in the pipeline's "
                    "'data:' (or the task's), not per variant; to compare datasets, make each one a task ('tasks:')."
                )
    return problems


MATCH_TOLERANCE = 0.05


def _match_params(variants: dict[str, Variant], declared: dict[str, Any], resolve_other) -> list[str]:
    """Set hidden_size of every variant with ``encoder.match_params``; problems as lines (a variant it names must exist)."""
    from textclf.models.registry import encoder_parameters, matching_hidden_size

    problems = []
    for v in variants.values():
        name = v.config.encoder.match_params
        if not name:
            continue
        target = variants.get(f"{v.task}/{name}" if v.task else name)
        where = f"variant {v.key!r}: encoder.match_params={name!r}"
        if name not in declared:
            problems.append(f"{where} is not a variant. Variants: {', '.join(declared)}.")
            continue
        if target is None:  # left out by --variant: its config still says how big it is
            target = Variant(name=name, overrides=declared[name], config=resolve_other(name, v.task), task=v.task)
        if target.config.kind != "neural":
            problems.append(f"{where} is a TF-IDF baseline: it has no encoder to match. Name a neural variant.")
        elif target is v:
            problems.append(f"{where} names the variant itself. Name another variant.")
        elif v.config.kind != "neural":
            problems.append(f"{where}: a TF-IDF variant has no hidden_size to choose. Drop encoder.match_params.")
        else:
            t, e = target.config.encoder, v.config.encoder
            common = {"input_size": v.config.embedding.dim, "dropout": 0.0}
            want = encoder_parameters(
                t.cell,
                input_size=target.config.embedding.dim,
                hidden_size=t.hidden_size,
                layers=t.layers,
                bidirectional=t.bidirectional,
                pooling=t.pooling,
                dropout=0.0,
            )
            size, got = matching_hidden_size(
                e.cell, want, layers=e.layers, bidirectional=e.bidirectional, pooling=e.pooling, **common
            )
            if abs(got - want) > MATCH_TOLERANCE * want:
                problems.append(
                    f"{where}: no hidden_size brings its {got:,} encoder parameters within 5% of {name}'s {want:,}."
                )
            else:
                v.config.encoder.hidden_size = size
    return problems


def _contrast_problems(spec: PipelineSpec, all_declared: dict[str, Any], run: dict[str, Any]) -> list[str]:
    """Every declared contrast names two variants that this run trains."""
    problems = []
    for name, c in (spec.contrasts or {}).items():
        for side in ("a", "b"):
            v = getattr(c, side)
            if v not in all_declared:
                problems.append(
                    f"contrasts.{name}.{side}: {v!r} is not a variant. Variants: {', '.join(all_declared)}."
                )
            elif v not in run:
                problems.append(
                    f"contrasts.{name}.{side}: {v!r} is left out by --variant. Run it too, or drop the contrast."
                )
    return problems


def _test_is_validation(variants) -> list[str]:
    """A comparison whose test set would be its validation set, refused before anything trains.

    Known from the config only where the split structure is: a hub source
    (``hf:``) may bring its own test split, which the data stage then uses.
    """
    for v in variants:
        d = v.config.data
        if d.test is None and d.test_fraction == 0 and not str(d.source or "").startswith("hf:"):
            return [
                f"variant {v.key!r}: data.test_fraction is 0 and there is no data.test, so the test set would be the "
                "validation set that chose the epochs and the best variant, and every difference would be optimistic. "
                "Set data.test_fraction (e.g. 0.1) or give data.test; to run anyway, set compare.allow_test_is_validation: true "
                "(every verdict then carries a warning)."
            ]
    return []


def find_pipeline(ref: str | Path | None) -> Path:
    """A path, or the name of a file in ``./pipelines`` (then the repository's ``pipelines/``)."""
    ref = str(ref or DEFAULT_PIPELINE)
    p = Path(ref)
    roots = [Path.cwd() / "pipelines", Path(__file__).resolve().parents[2] / "pipelines"]
    if p.suffix in (".yaml", ".yml") or p.is_file():
        if p.is_file():
            return p
        # A bare file name ("rt-slices.yaml") not in the current folder: a shipped pipeline of that name.
        shipped = [root / p.name for root in roots if p.name == ref and (root / p.name).is_file()]
        if shipped:
            return shipped[0]
        raise ConfigError(f"Pipeline file not found: {p}.")
    for root in roots:
        for ext in (".yaml", ".yml"):
            if (root / f"{ref}{ext}").is_file():
                return root / f"{ref}{ext}"
    known = sorted({q.stem for r in roots if r.is_dir() for q in r.glob("*.y*ml")})
    import difflib

    close = difflib.get_close_matches(ref, known, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise ConfigError(
        f"Unknown pipeline {ref!r}.{hint} Known pipelines: {', '.join(known) or 'none'}; or pass a path to a YAML file."
    )


def load_pipeline(
    ref: str | Path | None = None,
    *,
    overrides: list[str] | None = None,
    params_file: str | Path | None = None,
    only: list[str] | None = None,
    seeds: list[int] | None = None,
) -> Pipeline:
    """Read, expand and validate a pipeline; every variant's config is resolved. ``seeds`` replaces the file's."""
    from textclf.pipeline.tune_spec import take_overrides

    path = find_pipeline(ref)
    raw, overrides = take_overrides(read_yaml(path, "pipeline"), overrides)
    if seeds is not None:
        raw = {**raw, "seeds": list(seeds)}
    try:
        spec = PipelineSpec.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for e in exc.errors():
            key = ".".join(map(str, e["loc"]))
            if e["type"] == "extra_forbidden":
                import difflib

                close = difflib.get_close_matches(key, list(PipelineSpec.model_fields), n=1)
                hint = f" Did you mean '{close[0]}'?" if close else ""
                lines.append(
                    f"{key}: unknown pipeline key (given {short_repr(e.get('input'))}).{hint} Allowed: {', '.join(PipelineSpec.model_fields)}."
                )
            else:
                lines.append(f"{key}: {e['msg'].removeprefix('Value error, ')}. Got {short_repr(e.get('input'))}.")
        raise ConfigError(f"Invalid pipeline {path}:\n" + "\n".join(f"  - {x}" for x in lines)) from None
    return build_pipeline(spec, path=path, overrides=overrides, params_file=params_file, only=only)


def build_pipeline(spec: PipelineSpec, *, path=None, overrides=None, params_file=None, only=None) -> Pipeline:
    where = path or spec.name
    try:
        return _build(spec, where, path=path, overrides=overrides, params_file=params_file, only=only)
    except ConfigError as exc:
        if str(where) in str(exc):
            raise
        raise ConfigError(f"Invalid pipeline {where}: {exc}") from None


def _build(spec: PipelineSpec, where, *, path, overrides, params_file, only) -> Pipeline:
    declared: dict[str, dict[str, Any]] = {name: expand_dotted(v) for name, v in spec.variants.items()}
    if spec.grid:
        keys = list(spec.grid)
        check_grid_size(spec.grid, where)
        for values in itertools.product(*(spec.grid[k] for k in keys)):
            assignment = dict(zip(keys, values))
            name = grid_name(assignment)
            if name in spec.variants:
                raise ConfigError(
                    f"{where}: grid variant {name!r} clashes with a variant of the same name in 'variants'."
                )
            if name in declared:
                raise ConfigError(
                    f"{where}: the grid yields variant {name!r} twice; remove the repeated value from 'grid'."
                )
            declared[name] = expand_dotted(assignment)
    if not declared:
        declared = {"default": {}}
    if only:
        unknown = [v for v in only if v not in declared]
        if unknown:
            raise ConfigError(f"Unknown variant(s) {unknown}. Variants of {spec.name}: {', '.join(declared)}.")
        all_declared = declared
        declared = {k: v for k, v in declared.items() if k in only}
    else:
        all_declared = declared
    base = deep_merge(expand_dotted(spec.params), {"data": expand_dotted(spec.data)} if spec.data else {})
    jobs: list[tuple[str | None, str, dict[str, Any], dict[str, Any]]] = []  # (task, variant, task layer, overrides)
    task_problems = []
    for task, t in (spec.tasks or {None: None}).items():
        names = list(declared)
        layer: dict[str, Any] = {}
        if t is not None:
            layer = deep_merge(expand_dotted(t.params), {"data": expand_dotted(t.data)} if t.data else {})
            if t.variants is not None:
                unknown = [v for v in t.variants if v not in declared and not only]
                if unknown:
                    task_problems.append(
                        f"tasks.{task}.variants: {unknown} are not variants. Variants: {', '.join(declared)}."
                    )
                names = [v for v in t.variants if v in declared]
            b = t.baseline or spec.baseline
            if b and b not in names and not only:
                task_problems.append(f"tasks.{task}: baseline {b!r} is not among its variants {names}.")
            if t.claim is not None and not only:
                named = (t.claim.better or []) + (t.claim.same or [])
                if not b:
                    task_problems.append(
                        f"tasks.{task}.claim: a claim is judged against the task's baseline; set tasks.{task}.baseline."
                    )
                stray = [n for n in named if n not in names or n == b]
                if stray:
                    task_problems.append(
                        f"tasks.{task}.claim: {stray} must be variants of the task other than its baseline {b!r} (variants: {names})."
                    )
        jobs += [(task, name, layer, declared[name]) for name in names]
    variants: dict[str, Variant] = {}
    failed: dict[str, list[str]] = {}  # one problem line -> the variants that have it
    for task, name, layer, ov in jobs:
        try:
            cfg = resolve(deep_merge(base, layer), ov, params_file=params_file, overrides=overrides, source="config")
        except ConfigError as exc:
            # resolve lists one problem per "  - " line; a problem shared by several
            # variants (a typo in params or --set) is reported once, naming them.
            lines = [x.removeprefix("  - ") for x in str(exc).splitlines() if x.startswith("  - ")] or [str(exc)]
            for line in lines:
                failed.setdefault(line, []).append(f"{task}/{name}" if task else name)
            continue
        v = Variant(name=name, overrides=ov, config=cfg, task=task)
        if v.key in variants:  # task "t" + variant "a/b" and task "t/a" + variant "b"
            task_problems.append(
                f"task {task!r}, variant {name!r}: its key {v.key!r} is also another task's variant. Rename one of them."
            )
            continue
        variants[v.key] = v

    def resolve_other(name: str, task: str | None) -> Config:
        """A variant left out by --variant, resolved only to count the parameters another variant matches."""
        layer = {}
        if task is not None:
            t = spec.tasks[task]
            layer = deep_merge(expand_dotted(t.params), {"data": expand_dotted(t.data)} if t.data else {})
        return resolve(
            deep_merge(base, layer), all_declared[name], params_file=params_file, overrides=overrides, source="config"
        )

    from textclf.pipeline import tune_spec

    tune, tune_problems = tune_spec.parse(spec.tune)
    if isinstance(spec.seeds, dict) and (spec.tasks or spec.tune is not None):
        task_problems.append(
            "seeds: {min, max} adds seeds only where a contrast is still inconclusive, which a single comparison "
            f"without tune: has; this pipeline has {'tasks' if spec.tasks else 'tune:'}. Give a list of seeds instead."
        )
    problems = list(task_problems) + tune_problems + _match_params(variants, all_declared, resolve_other)
    problems += check_shared_test_sets(list(variants.values()))
    if tune is not None and variants and not failed:
        problems += tune_spec.check_variants(tune, list(variants.values()))
    for line, names in failed.items():
        who = (
            "every variant"
            if len(names) == len(jobs) > 1
            else ("variant " if len(names) == 1 else "variants ") + ", ".join(map(repr, names))
        )
        problems.append(f"{who}: {line}")
    if spec.baseline and spec.baseline not in declared and not only and not spec.tasks:
        problems.append(f"baseline: {spec.baseline!r} is not a variant. Variants: {', '.join(declared)}.")
    problems += _contrast_problems(spec, all_declared, declared)
    if not spec.compare.allow_test_is_validation:
        problems += _test_is_validation(variants.values())
    if problems:
        n = len(problems)
        raise ConfigError(
            f"Invalid pipeline {where} ({n} problem{'s' if n > 1 else ''}):\n" + "\n".join(f"  - {x}" for x in problems)
        )
    return Pipeline(spec=spec, path=Path(path) if path else None, variants=variants, tune=tune)
