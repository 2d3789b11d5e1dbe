"""trainlab: train, evaluate and sweep neural networks with Lightning and Hydra."""

from trainlab.errors import ConfigError

__all__ = ["ConfigError"]
__version__ = "0.2.0"
