"""The ``tune:`` section of a pipeline: the budget, the validation metric, the search space, the pruner.

::

    tune:
      trials: 12                 # per variant: every variant gets exactly this budget
      metric: val_accuracy       # a validation metric; test data is never looked at
      space:                     # dotted config keys -> a range or a list of choices
        train.lr: {low: 0.0003, high: 0.01, log: true}
        encoder.hidden_size: {choices: [64, 128, 256]}
      pruner: median             # none | median | successive_halving

The same keys work as ``--set tune.trials=8``, ``--set tune.space.train.lr={low: 1e-4, high: 1e-2}``
and ``--set tune=null`` (no tuning). Without ``space``, :data:`DEFAULT_SPACE` is searched.

Validation follows the rest of the config: every problem (an unknown key, a key
outside the schema or not a training setting, an empty or inverted range, a
value the schema refuses, a trial count below 1, a metric that is not a
validation metric) is one line of one :class:`~textclf.core.errors.ConfigError`,
reported before anything trains.
"""

from __future__ import annotations

import copy
import difflib
import math
import typing
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from textclf.core.bounded import short_repr
from textclf.core.errors import ConfigError
from textclf.pipeline.config import Config, parse_value

PRUNERS = ("none", "median", "successive_halving")
KEYS = ("trials", "metric", "space", "pruner")
DEFAULT_TRIALS = 20

# The settings that matter most for recurrent text classifiers (Melis et al. 2018 tune
# these): the learning rate first, then regularisation (dropouts, weight decay) and width.
DEFAULT_SPACE: dict[str, dict[str, Any]] = {
    "train.lr": {"low": 3e-4, "high": 1e-2, "log": True},
    "train.weight_decay": {"low": 1e-3, "high": 0.3, "log": True},
    "embedding.dropout": {"low": 0.0, "high": 0.5},
    "encoder.output_dropout": {"low": 0.0, "high": 0.6},
    "encoder.dropout": {"low": 0.0, "high": 0.5},  # between stacked layers: searched only where layers > 1
    "encoder.hidden_size": {"choices": [64, 128, 256]},
}
# Sections a trial may change: what the tokenize and train stages read (the data and the test set stay fixed).
TUNABLE_SECTIONS = ("tokenizer", "embedding", "encoder", "train")
NOT_TUNABLE = {
    "train.seed": "the final runs use the pipeline's seeds; trials train with the first of them",
    "train.device": "a machine setting, not a hyper-parameter",
    "train.num_threads": "a machine setting, not a hyper-parameter",
    "encoder.init_from": "which model to start from is a variant, not a hyper-parameter",
    "encoder.match_params": "it sets encoder.hidden_size itself",
}


@dataclass
class Dimension:
    """One searched setting: a range (int or float, maybe log-scaled, maybe stepped) or a list of choices."""

    key: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: list[Any] | None = None
    integer: bool = False

    def suggest(self, trial) -> Any:
        """The value an Optuna trial draws for this setting."""
        if self.choices is not None:
            return trial.suggest_categorical(self.key, self.choices)
        if self.integer:
            return trial.suggest_int(self.key, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.key, float(self.low), float(self.high), step=self.step, log=self.log)

    def to_dict(self) -> dict[str, Any]:
        if self.choices is not None:
            return {"choices": list(self.choices)}
        d: dict[str, Any] = {"low": self.low, "high": self.high}
        if self.log:
            d["log"] = True
        if self.step is not None:
            d["step"] = self.step
        return d


@dataclass
class TuneSpec:
    trials: int = DEFAULT_TRIALS
    metric: str = "val_accuracy"
    pruner: str = "median"
    space: dict[str, Dimension] = field(default_factory=dict)
    default_space: bool = True  # space left out: DEFAULT_SPACE, adapted per variant

    @property
    def direction(self) -> str:
        from textclf.core.metrics import METRICS

        name = self.metric.removeprefix("val_")
        return "minimize" if name == "loss" or not METRICS[name].higher_is_better else "maximize"

    def space_for(self, cfg: Config) -> dict[str, Dimension]:
        """The dimensions searched for one variant.

        Dropout between layers is not searched for a 1-layer encoder (it has no
        effect there); the default space also leaves out hidden_size under
        encoder.match_params, which chooses it.
        """
        # Dropout between layers does nothing in a 1-layer encoder: a dimension with no effect only adds noise to the search.
        skip = {"encoder.dropout"} if cfg.encoder.layers == 1 else set()
        if (
            self.default_space and cfg.encoder.match_params
        ):  # its hidden_size is chosen to match another variant's parameters
            skip.add("encoder.hidden_size")
        return {k: d for k, d in self.space.items() if k not in skip}

    def to_dict(self) -> dict[str, Any]:
        return {
            "trials": self.trials,
            "metric": self.metric,
            "pruner": self.pruner,
            "space": {k: d.to_dict() for k, d in self.space.items()},
            "default_space": self.default_space,
        }


def allowed_metrics() -> list[str]:
    from textclf.core.metrics import epoch_metric_names

    return [f"val_{m}" for m in epoch_metric_names()] + ["val_loss"]


# --------------------------------------------------------------------------- --set tune.*


def take_overrides(raw: dict[str, Any], overrides: list[str] | None) -> tuple[dict[str, Any], list[str]]:
    """Move ``--set tune...`` items into the pipeline's ``tune`` section; return (raw, the other overrides).

    ``--set compare.<key>=...`` and ``--set contrasts.<name>.a=...`` go to
    those pipeline sections the same way.

    ``tune.space.<dotted config key>=<mapping>`` sets one dimension (the rest of
    the key after ``tune.space.`` is the config key); ``tune=null`` turns tuning off.
    """
    rest: list[str] = []
    raw = copy.deepcopy(raw)
    for item in overrides or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if sep and key.split(".")[0] in ("compare", "contrasts") and key not in ("compare", "contrasts"):
            # Pipeline-level sections judged once per comparison, not per variant: --set compare.sesoi=1.5,
            # --set contrasts.depth.a=lstm-x2
            node = raw
            parts = key.split(".")
            for part in parts[:-1]:
                node[part] = dict(node[part]) if isinstance(node.get(part), dict) else {}
                node = node[part]
            node[parts[-1]] = parse_value(text, source=f"--set {key}")
            continue
        if not sep or not (key == "tune" or key.startswith("tune.")):
            rest.append(item)
            continue
        value = parse_value(text, source=f"--set {key}")
        if key == "tune":
            if value is None:
                raw.pop("tune", None)
            else:
                raw["tune"] = value
            continue
        section = raw.get("tune")
        section = dict(section) if isinstance(section, dict) else {}
        name = key[len("tune.") :]
        if name.startswith("space."):
            space = section.get("space")
            space = dict(space) if isinstance(space, dict) else {}
            space[name[len("space.") :]] = value
            section["space"] = space
        else:
            section[name] = value
        raw["tune"] = section
    return raw, rest


# --------------------------------------------------------------------------- validation


def parse(raw: Any) -> tuple[TuneSpec | None, list[str]]:
    """A ``tune:`` section -> (spec, problems); the spec is None when there is no section (or it is not a mapping)."""
    if raw is None:
        return None, []
    if not isinstance(raw, dict):
        return None, [f"tune: expected a mapping (trials:, metric:, space:, pruner:). Got {short_repr(raw)} instead."]
    problems: list[str] = []
    spec = TuneSpec()
    for key in raw:
        if key not in KEYS:
            close = difflib.get_close_matches(str(key), KEYS, n=1)
            hint = f" Did you mean 'tune.{close[0]}'?" if close else ""
            problems.append(
                f"tune.{key}: unknown key (given {short_repr(raw[key])}).{hint} Allowed keys here: {', '.join(KEYS)}."
            )
    trials = raw.get("trials", DEFAULT_TRIALS)
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        problems.append(
            f"tune.trials: must be an integer >= 1 (the trials each variant gets). Got {short_repr(trials)} instead."
        )
    else:
        spec.trials = trials
    metric = raw.get("metric", spec.metric)
    if metric not in allowed_metrics():
        why = (
            " Tuning chooses on validation data only; test data is scored once, at the end."
            if str(metric).startswith("test_")
            else ""
        )
        problems.append(
            f"tune.metric: must be a validation metric, one of {', '.join(allowed_metrics())}. Got {short_repr(metric)} instead.{why}"
        )
    else:
        spec.metric = metric
    pruner = raw.get("pruner", spec.pruner)
    if pruner is None or pruner is False:
        pruner = "none"
    if pruner not in PRUNERS:
        problems.append(f"tune.pruner: must be one of {', '.join(PRUNERS)}. Got {short_repr(pruner)} instead.")
    else:
        spec.pruner = pruner
    space = raw.get("space")
    if space is None:
        space, spec.default_space = DEFAULT_SPACE, True
    elif not isinstance(space, dict) or not space:
        problems.append(
            f"tune.space: expected a mapping of dotted config keys to ranges or choices "
            f"(e.g. train.lr: {{low: 0.0003, high: 0.01, log: true}}). Got {short_repr(space)} instead."
        )
        space = {}
    else:
        spec.default_space = False
    for key, value in space.items():
        dim, why = _dimension(str(key), value)
        problems += why
        if dim is not None:
            spec.space[dim.key] = dim
    return spec, problems  # the spec holds what was valid, so the space is also checked against the variants


def _field(key: str) -> tuple[Any, str | None]:
    """(the pydantic field of a dotted config key, or None; why it cannot be tuned, or None)."""
    parts = key.split(".")
    if len(parts) != 2 or parts[0] not in Config.model_fields:
        sections = ", ".join(f"{s}.*" for s in TUNABLE_SECTIONS)
        return None, f"not a config key; tune.space takes dotted keys of {sections} (e.g. train.lr)"
    section_type = Config.model_fields[parts[0]].annotation
    fields = section_type.model_fields if isinstance(section_type, type) and issubclass(section_type, BaseModel) else {}
    if parts[1] not in fields:
        close = difflib.get_close_matches(parts[1], list(fields), n=1)
        hint = f" Did you mean '{parts[0]}.{close[0]}'?" if close else ""
        return None, f"not a key of the {parts[0]} section.{hint} Keys there: {', '.join(fields)}"
    if parts[0] not in TUNABLE_SECTIONS:
        return (
            None,
            f"only what a trial trains can be tuned ({', '.join(s + '.*' for s in TUNABLE_SECTIONS)}); the data and the test set stay fixed",
        )
    if key in NOT_TUNABLE:
        return None, f"cannot be tuned: {NOT_TUNABLE[key]}"
    return fields[parts[1]], None


def _is_int_field(f) -> bool:
    args = typing.get_args(f.annotation) or (f.annotation,)
    return int in args and float not in args


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _dimension(key: str, value: Any) -> tuple[Dimension | None, list[str]]:
    where = f"tune.space.{key}"
    f, why = _field(key)
    if why:
        return None, [f"{where}: {why}."]
    if not isinstance(value, dict):
        return None, [
            f"{where}: expected {{low: .., high: ..}} (log: true, step: ..) or {{choices: [..]}}. Got {short_repr(value)} instead."
        ]
    allowed = ("choices",) if "choices" in value else ("low", "high", "log", "step")
    unknown = [k for k in value if k not in allowed]
    if unknown:
        return None, [
            f"{where}: unknown key(s) {unknown}; a range takes low, high, log, step and a list takes choices, not both."
        ]
    if "choices" in value:
        choices = value["choices"]
        if not isinstance(choices, list) or not choices:
            return None, [f"{where}.choices: expected a non-empty list of values. Got {short_repr(choices)} instead."]
        if any(isinstance(c, (dict, list)) for c in choices):
            return None, [f"{where}.choices: each choice must be a single value (number, string, true/false, null)."]
        return Dimension(key, choices=list(choices)), []
    low, high, log, step = value.get("low"), value.get("high"), value.get("log", False), value.get("step")
    problems = [
        f"{where}.{name}: expected a number. Got {short_repr(v)} instead."
        for name, v in (("low", low), ("high", high))
        if not _number(v)
    ]
    if not isinstance(log, bool):
        problems.append(f"{where}.log: expected true or false. Got {short_repr(log)} instead.")
    if step is not None and (not _number(step) or step <= 0):
        problems.append(f"{where}.step: expected a number > 0. Got {short_repr(step)} instead.")
    if problems:
        return None, problems
    integer = _is_int_field(f)
    if integer and not all(isinstance(v, int) for v in (low, high, step or 1)):
        return None, [
            f"{where}: {key} is an integer; low, high (and step) must be integers. Got low={low}, high={high}."
        ]
    if low > high:
        return None, [f"{where}: inverted range: low ({low}) > high ({high}). Swap them."]
    if low == high:
        return None, [
            f"{where}: empty range: low == high ({low}). To fix a value, set it in params: instead of tuning it."
        ]
    if log and low <= 0:
        return None, [f"{where}: a log-scaled range needs low > 0. Got low={low}."]
    if log and step is not None:
        return None, [f"{where}: log and step cannot be combined."]
    return Dimension(key, low=low, high=high, log=log, step=step, integer=integer), []


def apply(cfg: Config, params: dict[str, Any]) -> Config:
    """``cfg`` with the dotted ``params`` set, validated like any config.

    Each value of the space was checked alone before the search; a combination
    the schema refuses (rare: e.g. two keys whose values exclude each other)
    stops the search with a ConfigError naming it.
    """
    new, problems = _with(cfg, params)
    if problems:
        raise ConfigError(
            f"tune.space: the sampled combination {params} is not a valid config: {'; '.join(problems)}. "
            "Narrow tune.space so that every combination is allowed."
        )
    return new


def _with(cfg: Config, params: dict[str, Any]) -> tuple[Config | None, list[str]]:
    """(``cfg`` with ``params`` set, or None; the schema's problems with it)."""
    from textclf.core.schema import describe_errors

    d = cfg.to_dict()
    for key, value in params.items():
        section, name = key.split(".")
        d[section][name] = value
    try:
        return Config.model_validate(d), []
    except ValidationError as exc:
        return None, describe_errors(Config, exc)


def check_variants(spec: TuneSpec, variants) -> list[str]:
    """Problems of the space against each variant's resolved config: values the schema refuses, clashes."""
    problems: list[str] = []
    neural = [v for v in variants if v.config.kind == "neural"]
    if not neural:
        return ["tune: no neural variant to tune (TF-IDF variants choose C on validation already)."]
    for v in neural:
        for key, dim in spec.space_for(v.config).items():
            if key == "encoder.hidden_size" and v.config.encoder.match_params:
                problems.append(
                    f"variant {v.key!r}: tune.space.encoder.hidden_size clashes with encoder.match_params "
                    f"(which sets hidden_size). Drop one of them."
                )
                continue
            values = dim.choices if dim.choices is not None else [dim.low, dim.high]
            for value in values:
                _, why = _with(v.config, {key: value})
                if why:
                    problems.append(
                        f"tune.space.{key}: {short_repr(value)} is not allowed for variant {v.key!r}: {'; '.join(why)}"
                    )
    return list(dict.fromkeys(problems))  # a problem every variant shares, once
