"""Encoder families: the one registry, :data:`ENCODERS`, behind ``encoder.cell``.

An entry says how to build the encoder (``embedding vectors (B, T, I) and
lengths (B,) -> one vector per text (B, output_size)``) and which of the
``encoder.*`` keys it takes. The config validates ``encoder.cell`` against
this registry, the classifier builds its encoder through it, and the model
folder records the family's name, so a family added here runs in ``textclf
train``, pipelines, tuning and reuse (predict, embed, init_from) like the
others. Adding a family is one entry: ``textclf.register_encoder(name, EncoderFamily(...))``
or the ``textclf.encoders`` entry-point group of an installed package.

Importing this module does not import torch: builders import their module
when called, so validating a config stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from textclf.core.registry import Registry


@dataclass(frozen=True)
class EncoderFamily:
    """One kind of encoder.

    ``build(input_size, hidden_size, layers, bidirectional, dropout, pooling, init)``
    returns an ``nn.Module`` with ``forward(x, lengths) -> (B, output_size)``,
    ``sequence(x, lengths) -> (B, T, output_size)`` and the attributes the
    model folder records: ``output_size``, ``hidden_size``, ``cell``, ``layers``,
    ``bidirectional``, ``dropout``, ``pooling``. ``fixed`` lists ``encoder.*`` keys the family does not take,
    with the only value it accepts (a config asking otherwise is an error).

    ``activations`` is what :mod:`textclf.models.size` charges for training
    memory: floats the backward pass keeps per (text, token, hidden unit,
    layer, direction). The values below are the counts of
    ``torch.autograd.graph.saved_tensors_hooks`` on CPU, rounded up, so the
    estimate errs toward too much (docs/benchmarks.md, "Training memory per cell").
    """

    description: str
    build: Callable[..., Any]
    recurrent: bool = True
    fixed: tuple[tuple[str, Any], ...] = ()
    activations: float = 24.0

    def problems(self, encoder: Any) -> list[str]:
        """Config problems of ``encoder`` (an ``EncoderConfig``) for this family."""
        return [
            f"encoder.{key} must be {value!r} with encoder.cell={encoder.cell!r} (it does not apply to this encoder); got {getattr(encoder, key)!r}"
            for key, value in self.fixed
            if getattr(encoder, key) != value
        ]


def _recurrent(cell: str) -> Callable[..., Any]:
    def build(**kwargs: Any):
        from textclf.models.recurrent import RecurrentEncoder

        return RecurrentEncoder(cell=cell, **kwargs)

    return build


def _cnn(input_size: int, hidden_size: int, **_: Any):
    from textclf.models.cnn import CNNEncoder

    return CNNEncoder(input_size, hidden_size)  # widths 3, 4, 5; hidden_size filters each


ENCODERS: dict[str, EncoderFamily] = Registry(
    "textclf.encoders",
    EncoderFamily,
    {
        "rnn": EncoderFamily("Elman RNN (tanh)", _recurrent("rnn"), activations=5.0),
        "gru": EncoderFamily("gated recurrent unit", _recurrent("gru"), activations=11.0),
        "lstm": EncoderFamily("long short-term memory", _recurrent("lstm"), activations=24.0),
        "cnn": EncoderFamily(
            "Kim (2014) CNN: convolutions of widths 3/4/5 (hidden_size filters each), ReLU, max over time",
            _cnn,
            recurrent=False,
            fixed=(("layers", 1), ("bidirectional", False), ("pooling", "max"), ("init", "standard")),
            activations=4.0,
        ),
    },
)


def build_encoder(cell: str, **kwargs: Any):
    """The encoder of family ``cell`` (a ConfigError names the key when the family is unknown)."""
    from textclf.core.errors import ConfigError

    family = ENCODERS.get(cell) if isinstance(cell, str) else None
    if family is None:
        raise ConfigError(f"encoder.cell must be one of {', '.join(ENCODERS)}. Got {cell!r} instead.")
    for key, value in family.fixed:
        if key in kwargs and kwargs[key] != value:
            raise ConfigError(
                f"encoder.{key} must be {value!r} with encoder.cell={cell!r}. Got {kwargs[key]!r} instead."
            )
    return family.build(**kwargs)


def encoder_parameters(cell: str, **kwargs: Any) -> int:
    """Parameters of an encoder, counted exactly without allocating them (built on torch's meta device)."""
    import torch

    with torch.device("meta"):
        return sum(p.numel() for p in build_encoder(cell, **kwargs).parameters())


def matching_hidden_size(cell: str, target: int, *, limit: int = 16384, **kwargs: Any) -> tuple[int, int]:
    """(hidden_size, parameters) of family ``cell`` whose encoder parameters come closest to ``target``.

    Parameters grow with hidden size, so a bisection finds the crossing; the
    closer of its two neighbours wins.
    """
    lo, hi = 1, limit
    while lo < hi:
        mid = (lo + hi) // 2
        if encoder_parameters(cell, hidden_size=mid, **kwargs) < target:
            lo = mid + 1
        else:
            hi = mid
    candidates = [(h, encoder_parameters(cell, hidden_size=h, **kwargs)) for h in {max(1, lo - 1), lo}]
    return min(candidates, key=lambda hp: (abs(hp[1] - target), hp[0]))
