"""Every registered net: forward, backward and no NaN on every compatible data shape."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainlab.nets import CNN, MLP, RNN, TCN, LinearNet, Transformer, ViT
from trainlab.nets.layers import ACTIVATIONS, make_activation

SHAPES = {"tabular": (13,), "image": (1, 8, 8), "sequence": (8, 8)}
NETS: list[type[nn.Module]] = [LinearNet, MLP, CNN, RNN, Transformer, ViT]
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
    known = {*SHAPES, "text"}  # text: token ids
    for net in NETS:
        assert net.modalities and net.modalities <= known, net  # type: ignore[attr-defined]
    assert {m for net in NETS for m in net.modalities} >= set(SHAPES)  # type: ignore[attr-defined]


def test_the_graph_net_reads_graphs_only() -> None:
    from trainlab.nets.gnn import GNN

    assert GNN.modalities == {"graph"}  # a PyG batch


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
        (lambda: MLP((4,), 2, input_norm="group"), "input_norm 'group' is unknown"),
        (lambda: MLP((4,), 2, bottleneck=-1), r"bottleneck must be a width >= 0"),
        (lambda: CNN((1, 8, 8), 2, norm="instance"), "norm 'instance' is unknown"),
        (lambda: CNN((64,), 2), r"CNN needs \(C, H, W\) images"),
        (lambda: CNN((1, 8, 8), 2, kernel_size=2), "kernel_size must be a positive odd"),
        (lambda: RNN((1, 8, 8), 2), r"RNN needs \(T, F\) sequences"),
        (lambda: RNN((8, 8), 2, cell="transformer"), "cell 'transformer' is unknown"),
        (lambda: ViT((1, 8, 8), 2, patch=3), "patch 3 must divide the image sides 8x8"),
        (lambda: ViT((64,), 2), r"ViT reads \(channels, height, width\) images"),
        (lambda: Transformer((8, 8), 2, width=30, heads=4), r"heads \(4\) must divide width"),
        (lambda: Transformer((8, 8), 2, pooling="max"), "pooling 'max' is unknown"),
        (lambda: Transformer((8, 8), 2, vocab_size=50), r"reads \(time_steps,\) of token ids"),
    ],
)
def test_bad_settings_are_named(make: object, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        make()  # type: ignore[operator]


def test_bad_graph_net_settings_are_named() -> None:
    from trainlab.nets.gnn import GNN

    with pytest.raises(ValueError, match=r"GNN reads \(node_features,\) per node"):
        GNN((1, 8, 8), 2)
    with pytest.raises(ValueError, match="conv 'cheb' is unknown"):
        GNN((4,), 2, conv="cheb")
    with pytest.raises(ValueError, match=r"heads \(4\) must divide"):
        GNN((4,), 2, conv="gat", hidden=30, heads=4)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_transformer_tokens_ignore_padding(pooling: str) -> None:
    """Padded positions (id 0) are masked: what sits at them cannot change the output."""
    torch.manual_seed(0)
    net = Transformer((6,), 3, vocab_size=20, width=16, heads=2, pooling=pooling).eval()
    x = torch.tensor([[5, 7, 3, 0, 0, 0], [1, 2, 3, 4, 5, 6]])
    before = net(x)
    with torch.no_grad():  # change what padded positions see; +1 for the class token
        net.encoder.position[:, -3:] += torch.randn(1, 3, 16)
    after = net(x)
    assert torch.allclose(before[0], after[0], atol=1e-5)  # padded at the changed positions
    assert not torch.allclose(before[1], after[1], atol=1e-3)  # the same positions, unpadded


def test_vit_reads_mnist_sized_images_in_patches() -> None:
    assert ViT((1, 28, 28), 10, patch=4, width=32)(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def _zero_weights(net: nn.Module) -> None:
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.Linear | nn.Conv2d):
                module.weight.zero_()
                if module.bias is not None:
                    module.bias.zero_()


@pytest.mark.parametrize("residual", [True, False])
def test_skip_connections_carry_the_input_past_each_block(residual: bool) -> None:
    x = torch.randn(5, 8)
    mlp = MLP((8,), 2, hidden_sizes=[8, 8], residual=residual)
    _zero_weights(mlp)  # each block's own path now outputs relu(0) = 0
    assert torch.equal(mlp.body(x), x if residual else torch.zeros_like(x))

    images = torch.randn(2, 4, 8, 8)
    cnn = CNN((4, 8, 8), 2, channels=[4], norm=None, pool="none", residual=residual)
    _zero_weights(cnn)
    assert torch.equal(cnn.features(images), images if residual else torch.zeros_like(images))


def test_each_component_is_a_switch() -> None:
    plain = MLP((64,), 10, hidden_sizes=[256, 128], dropout=0.3)
    # The default net: today's layers and parameter count.
    assert sum(p.numel() for p in plain.parameters()) == 64 * 256 + 256 + 256 * 128 + 128 + 1290
    full = MLP(
        (64,), 10, dropout=0.3, norm="batch", input_norm="layer", residual=True, bottleneck=16
    )
    kinds = [type(m) for m in full.modules()]
    assert isinstance(full.input_norm, nn.LayerNorm) and kinds.count(nn.BatchNorm1d) == 2
    assert kinds.count(nn.Dropout) == 2 and full.head.in_features == 16
    assert isinstance(MLP((4,), 2, activation="leaky_relu").body[0].layers[1], nn.LeakyReLU)
    cnn = CNN((1, 8, 8), 10, norm="layer", input_norm="batch", residual=True)
    kinds = [type(m) for m in cnn.modules()]
    assert kinds.count(nn.GroupNorm) == 2 and isinstance(cnn.input_norm, nn.BatchNorm2d)
    assert not any(k is nn.BatchNorm2d for k in [type(m) for m in cnn.features.modules()])


@pytest.mark.parametrize("conv", ["gcn", "gat", "sage", "gin"])
def test_graph_nets_answer_per_target_node_or_per_graph(conv: str) -> None:
    from torch_geometric.data import Batch, Data

    from trainlab.nets.gnn import GNN

    torch.manual_seed(0)
    ring = torch.tensor([[0, 1, 2, 3, 1, 2, 3, 0], [1, 2, 3, 0, 0, 1, 2, 3]])
    graph = Data(x=torch.randn(4, 5), edge_index=ring)
    net = GNN((5,), 3, conv=conv, hidden=8, heads=2)
    graph.target_mask = torch.tensor([True, False, True, False])
    out = net(graph)
    assert out.shape == (2, 3)  # the two target nodes
    out.sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    del graph.target_mask
    batch = Batch.from_data_list([graph, graph, graph])
    pooled = net.eval()(batch)
    assert pooled.shape == (3, 3) and torch.allclose(pooled[0], pooled[2], atol=1e-6)


@pytest.mark.parametrize("readout", ["avg", "max", "flatten"])
def test_tcn_reads_sequences_of_any_length_with_every_switch(readout: str) -> None:
    for steps in (1, 7, 2000):
        net = TCN((steps, 3), 4, channels=[4, 8], dilation_growth=2, readout=readout)
        assert net(torch.randn(5, steps, 3)).shape == (5, 4)
    net = TCN((16, 2), 3, [4, 8], norm="layer", input_norm="batch", residual=True, hidden=0)
    kinds = [type(m) for m in net.modules()]
    assert kinds.count(nn.GroupNorm) == 2 and isinstance(net.input_norm, nn.BatchNorm1d)
    assert [
        m.dilation
        for m in TCN((16, 1), 2, channels=[2, 2, 2], dilation_growth=2).modules()
        if isinstance(m, nn.Conv1d) and m.kernel_size != (1,)
    ] == [(1,), (2,), (4,)]
    with pytest.raises(ValueError, match="time_steps, features"):
        TCN((1, 8, 8), 2)
    with pytest.raises(ValueError, match="readout 'last' is unknown"):
        TCN((8, 1), 2, readout="last")


def test_tcn_with_avg_readout_finds_a_pattern_wherever_it_lies() -> None:
    """No pooling, a global average readout: a pattern moved along time (away from the edges)
    gives the same features."""
    net = TCN((32, 1), 2, channels=[4], pool="none", norm=None, hidden=0).eval()
    x = torch.zeros(2, 32, 1)
    x[0, 8:12, 0] = torch.tensor([1.0, -2.0, 3.0, 0.5])
    x[1, 18:22, 0] = torch.tensor([1.0, -2.0, 3.0, 0.5])
    features = net.features(x.transpose(1, 2))
    z = (features - net.features(torch.zeros_like(x).transpose(1, 2))).mean(dim=2)
    assert torch.allclose(z[0], z[1], atol=1e-6)
