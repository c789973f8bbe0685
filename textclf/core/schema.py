"""The base of every config section, and how validation errors are reported.

Each layer declares the section of the config it reads (``data.config``,
``text.config``, ``models.config``, ``training.config``) on top of
:class:`Section`; :func:`describe_errors` turns pydantic's errors into one
line per problem that names the dotted key, the value given (bounded in
length) and what is allowed, with a "did you mean" for typos.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from textclf.core.errors import short_repr

# numpy's and scikit-learn's seeds are unsigned 32-bit integers: a seed outside this range
# passed validation and failed in the middle of a run (a FAILED run for a typo).
SEED_MAX = 2**32 - 1


def check_seed(value: int) -> int:
    """``value`` if it is a seed numpy, torch and scikit-learn all accept; else a ValueError saying the range."""
    if not 0 <= value <= SEED_MAX:
        raise ValueError(
            f"a seed must be an integer in [0, {SEED_MAX}] (2**32 - 1, what numpy and scikit-learn accept)"
        )
    return value


Seed = Annotated[int, AfterValidator(check_seed)]


def _accepted_types(annotation: Any) -> tuple[Any, ...]:
    args = typing.get_args(annotation)
    return args if args and typing.get_origin(annotation) in (typing.Union, types.UnionType) else (annotation,)


class Section(BaseModel):
    # extra="forbid" turns a typo into an error instead of a silently ignored key.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_as_number(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic's lax mode reads `layers: true` as 1 and `lr: yes` as 1.0; a
        # boolean where a number belongs is a mistake, so report it.
        if isinstance(value, bool):
            accepted = _accepted_types(cls.model_fields[info.field_name].annotation)
            if bool not in accepted and any(t in (int, float) for t in accepted):
                kind = "an integer" if float not in accepted else "a number"
                raise ValueError(f"expected {kind}, not true/false")
        return value


def _allowed_keys(root: type[BaseModel], loc: tuple) -> list[str]:
    """Field names valid at ``loc`` (a path of section names)."""
    model: type[BaseModel] = root
    for part in loc:
        field = model.model_fields.get(str(part))
        ann = getattr(field, "annotation", None) if field else None
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
        else:
            return []
    return list(model.model_fields)


def _describe(root: type[BaseModel], err: dict[str, Any]) -> str:
    loc = tuple(err["loc"])
    key = ".".join(str(p) for p in loc) or "(top level)"
    kind = err["type"]
    value = err.get("input")
    if kind == "extra_forbidden":
        allowed = _allowed_keys(root, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.6)
        hint = f" Did you mean '{'.'.join(map(str, loc[:-1] + (close[0],)))}'?" if close else ""
        return f"{key}: unknown key (given {short_repr(value)}).{hint} Allowed keys here: {', '.join(allowed)}."
    if kind == "literal_error":
        allowed = err.get("ctx", {}).get("expected", "")
        return f"{key}: must be one of {allowed}. Got {short_repr(value)} instead."
    msg = err["msg"]
    if kind.startswith("value_error"):
        msg = msg.removeprefix("Value error, ")
        if key == "(top level)" or isinstance(value, dict):
            return f"{msg}."
        return f"{key}: {msg}. Got {short_repr(value)} instead."
    return f"{key}: {msg}. Got {short_repr(value)} instead."


def describe_errors(root: type[BaseModel], exc: ValidationError) -> list[str]:
    """One message per problem of a failed ``root.model_validate``."""
    return [_describe(root, e) for e in exc.errors()]
