"""Graph data for graph neural networks (PyTorch Geometric), generated or bundled: no downloads.

Node tasks (``karate``, ``sbm``) hold one graph; a split is a set of its nodes. Each split's
loader yields that graph once per epoch as ``(graph, y)``, with ``graph.target_mask`` marking
the split's nodes and ``y`` their labels, so training sees every edge but is scored on its own
nodes only. Graph tasks (``cycles``) hold many small graphs; a split is a set of graphs, and
batches are ``(graphs, y)`` with one label per graph.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader

from trainlab.data.splits import check_fractions, check_int, stratified_indices
from trainlab.errors import ConfigError
from trainlab.extras import require


def _undirected(edges: list[tuple[int, int]]) -> torch.Tensor:
    """``(2, 2E)`` edge index with both directions of every edge."""
    pairs = torch.tensor(edges, dtype=torch.long).t()
    return torch.cat([pairs, pairs.flip(0)], dim=1)


class OneBatch:
    """A loader of one batch, served once per pass (a list would read as many loaders)."""

    def __init__(self, batch: tuple[Any, torch.Tensor]) -> None:
        self.batch = batch

    def __iter__(self) -> Iterator[tuple[Any, torch.Tensor]]:
        yield self.batch

    def __len__(self) -> int:
        return 1


class NodeDataModule(pl.LightningDataModule):
    """One graph whose nodes are classified; subclasses implement :meth:`load`.

    Args:
        val_fraction, test_fraction: shares of the nodes held out (stratified).
        split_seed: seed of the node split.
    """

    modality = "graph"
    task = "classification"

    def __init__(
        self, val_fraction: float = 0.2, test_fraction: float = 0.3, split_seed: int = 0
    ) -> None:
        super().__init__()
        require("graph", f"{type(self).__name__} (graph data)")
        check_fractions(val_fraction, test_fraction)
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.split_seed = check_int("split_seed", split_seed, 0)
        self.graph: Any = None
        self.class_names: list[str] | None = None
        self.masks: dict[str, torch.Tensor] = {}

    def load(self) -> tuple[Any, list[str]]:
        """The graph (a PyG ``Data`` with ``x``, ``edge_index`` and ``y``) and class names."""
        raise NotImplementedError

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (int(self.graph.x.shape[1]),)

    @property
    def num_outputs(self) -> int:
        return len(self.class_names or [])

    def setup(self, stage: str | None = None) -> None:
        if self.graph is not None:
            return
        self.graph, self.class_names = self.load()
        n = self.graph.num_nodes
        split = stratified_indices(
            self.graph.y.numpy(), self.val_fraction, self.test_fraction, self.split_seed
        )
        for name, idx in split.items():
            mask = torch.zeros(n, dtype=torch.bool)
            mask[torch.from_numpy(idx)] = True
            self.masks[name] = mask

    def loader(self, split: str) -> OneBatch:
        """The whole graph, its ``target_mask`` on the split's nodes: one batch."""
        graph = self.graph.clone()
        graph.target_mask = self.masks[split]
        return OneBatch((graph, self.graph.y[self.masks[split]]))

    def train_dataloader(self) -> OneBatch:
        return self.loader("train")

    def val_dataloader(self) -> OneBatch:
        return self.loader("val")

    def test_dataloader(self) -> OneBatch:
        return self.loader("test")

    def predict_dataloader(self) -> OneBatch:
        return self.loader("test")

    def example_input(self) -> Any:
        """Two connected nodes, both targets: what a net is checked with before training."""
        from torch_geometric.data import Data

        x = torch.zeros(2, *self.input_shape)
        mask = torch.ones(2, dtype=torch.bool)
        return Data(x=x, edge_index=_undirected([(0, 1)]), target_mask=mask)


class KarateClubDataModule(NodeDataModule):
    """Zachary's karate club (34 members, 78 friendships; networkx ships it): which of the two
    clubs each member joined after the split. Node features are one-hot identities, as in
    Kipf & Welling's semi-supervised GCN."""

    def load(self) -> tuple[Any, list[str]]:
        import networkx as nx
        from torch_geometric.data import Data

        g = nx.karate_club_graph()
        names = sorted({g.nodes[v]["club"] for v in g.nodes})
        y = torch.tensor([names.index(g.nodes[v]["club"]) for v in g.nodes])
        edges = _undirected(list(g.edges))
        return Data(x=torch.eye(g.number_of_nodes()), edge_index=edges, y=y), names


class BlockModelDataModule(NodeDataModule):
    """A stochastic block model: ``blocks`` communities of ``block_size`` nodes, an edge inside
    a community with probability ``p_in`` and across with ``p_out``. A node's features are its
    community's mean (a random unit vector) plus Gaussian noise of scale ``feature_noise``: the
    larger the noise, the more a net must read the neighbours to classify a node.

    Args:
        blocks, block_size, p_in, p_out, features, feature_noise: the generator's settings.
        seed: seed of the generator (the data, not the training).
        **kwargs: the split settings of :class:`NodeDataModule`.
    """

    def __init__(
        self,
        blocks: int = 4,
        block_size: int = 100,
        p_in: float = 0.05,
        p_out: float = 0.01,
        features: int = 16,
        feature_noise: float = 2.0,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.blocks = check_int("blocks", blocks, 2)
        self.block_size = check_int("block_size", block_size, 5)
        self.features = check_int("features", features, 1)
        for name, p in (("p_in", p_in), ("p_out", p_out)):
            if isinstance(p, bool) or not isinstance(p, int | float) or not 0 <= p <= 1:
                raise ConfigError(f"data.{name} must be a probability in [0, 1], got {p!r}")
        if feature_noise < 0:
            raise ConfigError(f"data.feature_noise must be >= 0, got {feature_noise!r}")
        self.p_in, self.p_out, self.feature_noise, self.seed = p_in, p_out, feature_noise, seed

    def load(self) -> tuple[Any, list[str]]:
        from torch_geometric.data import Data

        rng = np.random.default_rng(self.seed)
        n = self.blocks * self.block_size
        y = np.repeat(np.arange(self.blocks), self.block_size)
        probs = np.where(y[:, None] == y[None, :], self.p_in, self.p_out)
        upper = np.triu(rng.random((n, n)) < probs, k=1)
        edges = list(zip(*np.nonzero(upper), strict=True))
        means = rng.normal(size=(self.blocks, self.features))
        means /= np.linalg.norm(means, axis=1, keepdims=True)
        x = means[y] + self.feature_noise * rng.normal(size=(n, self.features))
        graph = Data(
            x=torch.tensor(x, dtype=torch.float32),
            edge_index=_undirected([(int(a), int(b)) for a, b in edges]),
            y=torch.from_numpy(y),
        )
        return graph, [f"block{i}" for i in range(self.blocks)]


class CyclesDataModule(pl.LightningDataModule):
    """Graph classification: is a random graph a tree, or a tree with one more edge (one cycle)?
    Node features are a constant and the degree; the answer is in the count of edges against
    nodes, so a net must aggregate over the whole graph (``pooling=add`` does exactly that).

    Args:
        samples: graphs generated, half of each class.
        min_nodes, max_nodes: the size range of the graphs.
        batch_size: graphs per batch.
        val_fraction, test_fraction, split_seed: the stratified split of the graphs.
        seed: seed of the generator.
    """

    modality = "graph"
    task = "classification"
    class_names = ["tree", "cycle"]

    def __init__(
        self,
        samples: int = 1000,
        min_nodes: int = 6,
        max_nodes: int = 20,
        batch_size: int = 64,
        val_fraction: float = 0.15,
        test_fraction: float = 0.2,
        split_seed: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        require("graph", f"{type(self).__name__} (graph data)")
        check_fractions(val_fraction, test_fraction)
        self.samples = check_int("samples", samples, 20)
        self.min_nodes = check_int("min_nodes", min_nodes, 3)
        self.max_nodes = check_int("max_nodes", max_nodes, self.min_nodes)
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.split_seed, self.seed = split_seed, seed
        self.graphs: dict[str, list[Any]] = {}

    input_shape = (2,)
    num_outputs = 2

    def setup(self, stage: str | None = None) -> None:
        if self.graphs:
            return
        rng = np.random.default_rng(self.seed)
        graphs = [self._graph(rng, label=i % 2) for i in range(self.samples)]
        labels = np.array([int(g.y) for g in graphs])
        split = stratified_indices(labels, self.val_fraction, self.test_fraction, self.split_seed)
        self.graphs = {name: [graphs[i] for i in np.sort(idx)] for name, idx in split.items()}

    def _graph(self, rng: np.random.Generator, label: int) -> Any:
        from torch_geometric.data import Data

        n = int(rng.integers(self.min_nodes, self.max_nodes + 1))
        edges = [(int(rng.integers(0, v)), v) for v in range(1, n)]  # a random recursive tree
        if label:  # one more edge between two nodes not yet joined: exactly one cycle
            present = set(edges)
            while True:
                a, b = sorted(int(v) for v in rng.choice(n, size=2, replace=False))
                if (a, b) not in present:
                    edges.append((a, b))
                    break
        index = _undirected(edges)
        degree = torch.bincount(index[0], minlength=n).float()
        x = torch.stack([torch.ones(n), degree / 4], dim=1)
        return Data(x=x, edge_index=index, y=torch.tensor(label))

    @staticmethod
    def collate(graphs: list[Any]) -> tuple[Any, torch.Tensor]:
        from torch_geometric.data import Batch

        return Batch.from_data_list(graphs), torch.stack([g.y for g in graphs])

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(
            self.graphs[split],  # type: ignore[arg-type]
            batch_size=self.batch_size,
            shuffle=shuffle,
            collate_fn=self.collate,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def example_input(self) -> Any:
        rng = np.random.default_rng(0)
        return self.collate([self._graph(rng, 0), self._graph(rng, 1)])[0]
