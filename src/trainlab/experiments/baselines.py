"""Cheap reference models fitted on the run's own splits: is the network worth its cost?

Every classification or regression run also fits a trivial predictor (the training class
frequencies / the training mean) and a linear one (logistic regression / ridge on the
flattened, standardised inputs), and scores both with the model's own loss and metrics on the
same validation and test batches. Their numbers go into ``metrics.json`` as
``baseline/<name>/<split>/<metric>``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import warnings
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from trainlab.models.base import Model
from trainlab.models.metrics import flatten
from trainlab.models.outputs import split_loader

log = logging.getLogger(__name__)
SCORED = ("val", "test")
NAMES = {"classification": ("majority", "logistic"), "regression": ("mean", "ridge")}
# Linear fits already made in this process, by what they were fit on (see _fitted): the jobs
# of an in-process sweep share their data, and refitting it took a third of a small job's time.
_FITTED: OrderedDict[str, Any] = OrderedDict()
FITTED_KEPT = 2


@dataclass
class Baselines:
    """What the baselines scored, and what a person should know about them."""

    metrics: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    reference: str | None = None  # the strongest baseline fitted: linear where it could be
    verdict: str | None = None  # the network against the reference, in words
    beaten: bool | None = None  # whether the network beat the reference on validation

    def as_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "beaten": self.beaten,
            "verdict": self.verdict,
            "notes": self.notes,
        }


def features(x: Any) -> torch.Tensor | None:
    """What a linear model reads of a batch's inputs: a tensor as it is; the split's node
    features of a graph (``x[target_mask]``); None for inputs without features (whole graphs)."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu()
    mask = getattr(x, "target_mask", None)
    nodes = getattr(x, "x", None)
    if isinstance(nodes, torch.Tensor) and mask is not None:
        return nodes[mask].detach().cpu()
    return None


def collect(
    loader: Iterable[Any], limit: int | None = None
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """The features (see :func:`features`) and targets of a loader's first ``limit`` samples
    (all without a limit)."""
    xs: list[torch.Tensor | None] = []
    ys, n = [], 0
    for batch in loader:
        if not (isinstance(batch, list | tuple) and len(batch) >= 2):
            raise TypeError("baselines need (x, y) batches")
        xs.append(features(batch[0]))
        ys.append(batch[1].detach().cpu())
        n += len(batch[1])
        if limit is not None and n >= limit:
            break
    y = torch.cat(ys)[:limit]
    given = [v for v in xs if v is not None]
    return (torch.cat(given)[:limit] if len(given) == len(xs) else None), y


def fit_baselines(model: Any, dm: Any, max_samples: int = 5000, seed: int = 0) -> Baselines:
    """Fit and score the trivial and the linear baseline for ``model`` on ``dm``'s splits.

    Args:
        model: a trainlab :class:`~trainlab.models.base.Model` (its loss and metrics score
            the baselines); any other LightningModule gets no baselines, with a note.
        dm: the run's DataModule, read through :func:`~trainlab.models.outputs.split_loader`.
        max_samples: at most this many samples of each split are read (as float32): the
            training ones fit the baselines, the validation and test ones score them; memory
            stays bounded whatever the data's size.
        seed: seeds the linear fit.
    """
    found = Baselines()
    task = getattr(dm, "task", None)
    if not isinstance(model, Model) or task not in NAMES:
        found.notes.append(
            f"no baselines for {type(model).__name__} on a {task} task (they need a trainlab "
            "Model for classification or regression)"
        )
        return found
    try:
        x_train, y_train = collect(split_loader(dm, "train"), max_samples)
        scored = {split: collect(split_loader(dm, split), max_samples) for split in SCORED}
    except TypeError as err:
        found.notes.append(f"no baselines: {err}")
        return found
    vocab = getattr(dm, "vocab_size", None)
    if x_train is not None and not x_train.is_floating_point() and isinstance(vocab, int):
        x_train = bag_of_words(x_train, vocab)  # token ids: a linear model reads counts
        scored = {
            s: (bag_of_words(x, vocab) if x is not None else x, y) for s, (x, y) in scored.items()
        }
        found.notes.append("the linear baseline reads bag-of-words counts of the token ids")
    total = _size(dm, "train")
    if total is not None and total > len(y_train):
        found.notes.append(
            f"the linear baseline was fit on {len(y_train)} of {total} training samples "
            f"(baseline_samples={max_samples})"
        )
    for split, (_, y) in scored.items():
        if (total := _size(dm, split)) is not None and total > len(y):
            found.notes.append(
                f"the baselines were scored on the first {len(y)} of {total} {split} samples "
                f"(baseline_samples={max_samples}); the network on all of them"
            )
    trivial, linear = NAMES[task]
    predictors = {trivial: _trivial(task, y_train, model)}
    if x_train is not None and x_train.is_floating_point():
        predictors[linear] = _linear(task, x_train, y_train, model, seed)
    else:
        kind = "graphs" if x_train is None else f"{x_train.dtype} ids"
        found.notes.append(f"no {linear} baseline: the inputs are {kind}, not features")
    for name, predict in predictors.items():
        for split, (x, y) in scored.items():
            for metric, value in _score(model, predict(y if x is None else x), y, split).items():
                found.metrics[f"baseline/{name}/{split}/{metric}"] = value
    found.reference = linear if linear in predictors else trivial
    return found


def bag_of_words(ids: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """``(N, T)`` token ids -> ``(N, vocab_size)`` counts, padding (id 0) left out."""
    counts = torch.zeros(len(ids), vocab_size).scatter_add_(1, ids.long(), torch.ones(ids.shape))
    counts[:, 0] = 0
    return counts


def _size(dm: Any, split: str) -> int | None:
    tensors = getattr(dm, "tensors", None)
    if callable(tensors):
        return len(tensors(split)[0])
    return None


def _trivial(task: str, y: torch.Tensor, model: Model) -> Any:
    """Class frequencies of the training split (their argmax is the majority class), or the
    training mean."""
    if task == "classification":
        k = model.hparams["num_classes"]
        freq = torch.bincount(y.long(), minlength=k).double() / len(y)
        logits = freq.clamp_min(1e-12).log().float()
        return lambda x: logits.expand(len(x), k)
    mean = y.float().mean(dim=0)
    return lambda x: mean.expand(len(x), *mean.shape).reshape(len(x), -1)


def _linear(task: str, x: torch.Tensor, y: torch.Tensor, model: Model, seed: int) -> Any:
    """Logistic regression or ridge on the flattened inputs, standardised on the training
    samples."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features = x.flatten(1).float().numpy()  # float32: half the memory of float64
    if task == "classification":
        estimator = LogisticRegression(max_iter=300, random_state=seed)
        target = y.long().numpy()
    else:
        estimator = Ridge(alpha=1.0)
        target = y.reshape(len(y), -1).double().numpy()
    pipeline = _fitted(make_pipeline(StandardScaler(), estimator), features, target)

    if task == "classification":
        k = model.hparams["num_classes"]
        seen = pipeline.classes_

        def predict(x_new: torch.Tensor) -> torch.Tensor:
            probs = np.full((len(x_new), k), 1e-12)
            probs[:, seen] = pipeline.predict_proba(x_new.flatten(1).float().numpy())
            return torch.from_numpy(np.log(np.clip(probs, 1e-12, None))).float()

        return predict
    return lambda x_new: torch.from_numpy(
        pipeline.predict(x_new.flatten(1).float().numpy()).reshape(len(x_new), -1)
    ).float()


def _fitted(pipeline: Any, features: np.ndarray, target: np.ndarray) -> Any:
    """``pipeline`` fit on ``features`` and ``target``, or the same fit made earlier in this
    process: the key is the exact bytes, shapes and dtypes of both arrays and the pipeline's
    parameters (a seed that the solver ignores, lbfgs's, left out), so a reused fit is the
    fit this call would make. The last :data:`FITTED_KEPT` fits are kept."""
    from sklearn.exceptions import ConvergenceWarning

    params = {k: v for k, v in pipeline.get_params(deep=True).items() if "__" in k}
    if params.get("logisticregression__solver") == "lbfgs":
        params.pop("logisticregression__random_state", None)
    digest = hashlib.sha256(repr(sorted(params.items())).encode())
    for array in (features, target):
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).data)
    key = digest.hexdigest()
    if key in _FITTED:
        _FITTED.move_to_end(key)
        return _FITTED[key]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        pipeline.fit(features, target)
    _FITTED[key] = pipeline
    while len(_FITTED) > FITTED_KEPT:
        _FITTED.popitem(last=False)
    return pipeline


@torch.no_grad()
def _score(model: Model, out: torch.Tensor, y: torch.Tensor, split: str) -> dict[str, float]:
    """The model's own loss and metrics for outputs ``out`` (logits or standardised values)."""
    metrics = model.split_metrics(split).clone().to("cpu")
    metrics.reset()
    for metric in metrics.values():  # rank 0 alone scores baselines: nothing to sync with
        metric.distributed_available_fn = lambda: False
    metrics.update(*model.metric_inputs(out, y))
    values = {"loss": model.loss(out, y), **flatten(metrics.compute(), model.metric_labels())}
    return {k: float(v) for k, v in values.items()}


def judge(metrics: dict[str, float], baselines: Baselines, monitor: str, mode: str) -> None:
    """Whether the network beats the reference baseline on ``monitor`` (validation): fills in
    ``baselines.beaten`` and ``baselines.verdict``."""
    name = baselines.reference
    key = f"baseline/{name}/{monitor}"
    if key not in baselines.metrics or not math.isfinite(metrics.get(monitor, math.nan)):
        return
    net, base = metrics[monitor], baselines.metrics[key]
    baselines.beaten = net > base if mode == "max" else net < base
    if baselines.beaten:
        baselines.verdict = (
            f"the network beats the {name} baseline on {monitor}: {net:.4g} vs {base:.4g}"
        )
    else:
        baselines.verdict = (
            f"the network does not beat the {name} baseline on {monitor}: {net:.4g} vs "
            f"{base:.4g}. A {name} model does as well here; try more data, a better-suited net "
            "or other hyperparameters, or use the simpler model"
        )
