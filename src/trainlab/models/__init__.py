"""LightningModules for tasks; each receives a plain ``nn.Module`` net by injection."""

from trainlab.models.classification import ClassificationTask
from trainlab.models.regression import RegressionTask
from trainlab.models.task import Task

__all__ = ["ClassificationTask", "RegressionTask", "Task"]
