"""Plain ``nn.Module`` networks. Each takes ``input_shape`` and ``num_outputs`` from the data and
declares the data modalities it can read in ``modalities``."""

from trainlab.nets.cnn import CNN
from trainlab.nets.gnn import GNN
from trainlab.nets.linear import LinearNet
from trainlab.nets.mlp import MLP
from trainlab.nets.rnn import RNN
from trainlab.nets.tcn import TCN
from trainlab.nets.transformer import Transformer, ViT

__all__ = ["CNN", "GNN", "MLP", "RNN", "TCN", "LinearNet", "Transformer", "ViT"]
