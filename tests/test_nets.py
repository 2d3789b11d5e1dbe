"""Every registered net: forward, backward and no NaN on every compatible data shape."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainlab.nets import CNN, MLP, RNN, LinearNet
from trainlab.nets.layers import ACTIVATIONS, make_activation

SHAPES = {"tabular": (13,), "image": (1, 8, 8), "sequence": (8, 8)}
NETS: list[type[nn.Module]] = [LinearNet, MLP, CNN, RNN]
CASES = [(net, m) for net in NETS for m in SHAPES if m in net.modalities]  # type: ignore[attr-defined]


@pytest.mark.parametrize(("net_cls", "modality"), CASES, ids=lambda v: getattr(v, "__name__", v))
def test_forward_backward_without_nan(net_cls: type[nn.Module], modality: str) -> None:
    torch.manual_seed(0)
    shape = SHAPES[modality]
    net = net_cls(input_shape=shape, num_outputs=5)
    x = torch.randn(4, *shape)
    out = net(x)
    assert out.shape == (4, 5)
    out.pow(2).mean().backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads if g is not None)


def test_every_net_reads_some_modality() -> None:
    assert {m for net in NETS for m in net.modalities} == set(SHAPES)  # type: ignore[attr-defined]


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_rnn_cells_and_directions(cell: str, bidirectional: bool) -> None:
    net = RNN((8, 8), 3, cell=cell, num_layers=2, bidirectional=bidirectional, dropout=0.1)
    assert net(torch.randn(2, 8, 8)).shape == (2, 3)


@pytest.mark.parametrize("norm", [None, "batch", "layer"])
def test_mlp_norms(norm: str | None) -> None:
    assert MLP((10,), 2, hidden_sizes=[4], norm=norm)(torch.randn(3, 10)).shape == (3, 2)


def test_cnn_fits_mnist_sized_images() -> None:
    assert CNN((1, 28, 28), 10, channels=[8, 8, 8])(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_activation_by_name_or_class() -> None:
    assert isinstance(make_activation("gelu"), nn.GELU)
    assert isinstance(make_activation(nn.Tanh), nn.Tanh)
    with pytest.raises(ValueError, match="known: " + ", ".join(sorted(ACTIVATIONS))):
        make_activation("relu6")
    with pytest.raises(TypeError, match=r"name or an nn\.Module class"):
        make_activation(3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: MLP((4,), 2, dropout=1.0), r"dropout must be a number in \[0, 1\)"),
        (lambda: MLP((4,), 2, dropout=-0.1), r"dropout must be a number in \[0, 1\)"),
        (lambda: MLP((4,), 2, hidden_sizes=[8, 0]), "hidden_sizes must be positive"),
        (lambda: MLP((4,), 2, hidden_sizes="abc"), "hidden_sizes must be a list"),  # type: ignore[arg-type]
        (lambda: MLP((4,), 2, norm="group"), "norm 'group' is unknown"),
        (lambda: CNN((64,), 2), r"CNN needs \(C, H, W\) images"),
        (lambda: CNN((1, 8, 8), 2, kernel_size=2), "kernel_size must be a positive odd"),
        (lambda: RNN((1, 8, 8), 2), r"RNN needs \(T, F\) sequences"),
        (lambda: RNN((8, 8), 2, cell="transformer"), "cell 'transformer' is unknown"),
    ],
)
def test_bad_settings_are_named(make: object, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        make()  # type: ignore[operator]
