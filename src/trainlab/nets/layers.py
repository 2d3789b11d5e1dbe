"""Small building blocks shared by the networks: layers chosen by name, argument checks."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "elu": nn.ELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
}

ActivationSpec = str | type[nn.Module]


def make_activation(act: ActivationSpec) -> nn.Module:
    """Build an activation from its name (``"relu"``) or its class (``nn.ReLU``).

    Raises:
        ValueError: the name is not one of :data:`ACTIVATIONS`.
        TypeError: the value is neither a name nor an ``nn.Module`` subclass.
    """
    if isinstance(act, str):
        key = act.lower()
        if key not in ACTIVATIONS:
            raise ValueError(
                f"activation {act!r} is unknown; known: {', '.join(sorted(ACTIVATIONS))}"
            )
        return ACTIVATIONS[key]()
    if isinstance(act, type) and issubclass(act, nn.Module):
        return act()
    raise TypeError(f"activation must be a name or an nn.Module class, got {act!r}")


def check_dropout(p: float, name: str = "dropout") -> float:
    """Return ``p`` if it is a valid dropout probability in [0, 1)."""
    if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= p < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1), got {p!r}")
    return float(p)


def check_positive_ints(
    values: Sequence[int] | int, name: str, allow_empty: bool = True
) -> list[int]:
    """Return ``values`` as a list of ints, each > 0 (a single int is accepted too)."""
    items = [values] if isinstance(values, int) and not isinstance(values, bool) else values
    if isinstance(items, str) or not isinstance(items, Sequence):
        raise TypeError(f"{name} must be a list of positive integers, got {values!r}")
    out = list(items)
    if not out and not allow_empty:
        raise ValueError(f"{name} must not be empty")
    for v in out:
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ValueError(f"{name} must be positive integers, got {values!r}")
    return out


def flat_size(shape: Sequence[int]) -> int:
    """Number of features in one sample of ``shape``."""
    return math.prod(shape)


NORMS = ("batch", "layer")


def check_norm(norm: str | None, name: str = "norm") -> str | None:
    """Return ``norm`` if it is ``None`` or one of :data:`NORMS`."""
    if norm is not None and norm not in NORMS:
        raise ValueError(f"{name} {norm!r} is unknown; use one of {NORMS} or null")
    return norm


def make_norm(norm: str, width: int, dims: int = 0) -> nn.Module:
    """Batch or layer normalisation of ``width`` features (``dims=0``), or of ``width``
    channels of feature maps along time (``dims=1``) or of images (``dims=2``), where layer
    norm is one group over the channels and positions."""
    if norm == "batch":
        return nn.BatchNorm2d(width) if dims == 2 else nn.BatchNorm1d(width)
    return nn.LayerNorm(width) if dims == 0 else nn.GroupNorm(1, width)
