"""Graph neural networks (PyTorch Geometric): message passing over a graph's edges.

A graph net reads a PyG batch (``x``, ``edge_index``, ``batch``) and returns one row per target:
for node tasks, the nodes the batch marks in ``target_mask`` (the split's nodes); for graph
tasks, one row per graph, pooled over its nodes. PyTorch Geometric is imported only when a
graph net is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from trainlab.extras import require
from trainlab.nets.layers import ActivationSpec, check_dropout, make_activation

CONVS = ("gcn", "gat", "sage", "gin")
POOLS = ("mean", "add", "max")


class GNN(nn.Module):
    """``layers`` message-passing layers ``conv -> act -> dropout``, then a linear head per node,
    or, for graph tasks, a pooling over each graph's nodes and the head.

    Args:
        input_shape: ``(node_features,)``.
        num_outputs: classes (logits) or regression targets, per node or per graph.
        conv: ``"gcn"`` (Kipf & Welling), ``"gat"`` (graph attention), ``"sage"`` (GraphSAGE)
            or ``"gin"`` (graph isomorphism network, sums its neighbours).
        hidden: width of every layer (for ``gat``, split over ``heads``).
        layers: number of message-passing layers (the receptive field in hops).
        heads: attention heads of ``gat``.
        dropout: dropout after every layer, in [0, 1).
        pooling: ``"mean"``, ``"add"`` or ``"max"`` over a graph's nodes (graph tasks only).
        activation: name or ``nn.Module`` class.
        residual: add each layer's input to its output (after the first layer).

    Raises:
        ValueError: an unknown conv or pooling, or a size out of range.
    """

    modalities: ClassVar[frozenset[str]] = frozenset({"graph"})

    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        conv: str = "gcn",
        hidden: int = 64,
        layers: int = 2,
        heads: int = 4,
        dropout: float = 0.5,
        pooling: str = "mean",
        activation: ActivationSpec = "relu",
        residual: bool = False,
    ) -> None:
        super().__init__()
        require("graph", f"net={conv}")
        if len(input_shape) != 1:
            raise ValueError(f"GNN reads (node_features,) per node, got {tuple(input_shape)}")
        if conv not in CONVS:
            raise ValueError(f"conv {conv!r} is unknown; use one of {CONVS}")
        if pooling not in POOLS:
            raise ValueError(f"pooling {pooling!r} is unknown; use one of {POOLS}")
        if hidden <= 0 or layers <= 0:
            raise ValueError(f"hidden and layers must be positive, got {hidden}, {layers}")
        if conv == "gat" and hidden % heads:
            raise ValueError(f"heads ({heads}) must divide hidden ({hidden}) for conv=gat")
        self.dropout = nn.Dropout(check_dropout(dropout))
        self.act = make_activation(activation)
        self.convs = nn.ModuleList(
            _conv(conv, input_shape[0] if i == 0 else hidden, hidden, heads) for i in range(layers)
        )
        self.residual = residual
        self.pooling = pooling
        self.head = nn.Linear(hidden, num_outputs)

    def forward(self, graph: Any) -> torch.Tensor:
        x, edges = graph.x, graph.edge_index  # (nodes, features), (2, edges)
        for i, conv in enumerate(self.convs):
            h = self.dropout(self.act(conv(x, edges)))
            x = h + x if self.residual and i > 0 else h
        mask = getattr(graph, "target_mask", None)
        if mask is not None:  # node task: the split's nodes
            return self.head(x[mask])  # (targets, num_outputs)
        from torch_geometric.nn import global_add_pool, global_max_pool, global_mean_pool

        pool = {"mean": global_mean_pool, "add": global_add_pool, "max": global_max_pool}
        batch = getattr(graph, "batch", None)
        if batch is None:
            batch = torch.zeros(len(x), dtype=torch.long, device=x.device)
        return self.head(pool[self.pooling](x, batch))  # (graphs, num_outputs)


def _conv(kind: str, width: int, out: int, heads: int) -> nn.Module:
    from torch_geometric import nn as gnn

    if kind == "gcn":
        return gnn.GCNConv(width, out)
    if kind == "gat":
        return gnn.GATConv(width, out // heads, heads=heads)
    if kind == "sage":
        return gnn.SAGEConv(width, out)
    mlp = nn.Sequential(nn.Linear(width, out), nn.ReLU(), nn.Linear(out, out))
    return gnn.GINConv(mlp)
