"""Build the objects of a run from its config, turning every failure into a message that names
the config key and what would be valid."""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
import lightning.pytorch as pl
import torch
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf
from torch import nn

from trainlab.contracts import DATAMODULE, required
from trainlab.data.base import TASKS
from trainlab.errors import ConfigError
from trainlab.runtime.configs import config_dirs

HYDRA_KEYS = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_"}


def _parameters(target: Callable[..., Any]) -> tuple[set[str], bool]:
    """The named parameters of ``target`` (a class's ``__init__``), and whether it takes
    ``**kwargs``."""
    func = target.__init__ if inspect.isclass(target) else target
    params = inspect.signature(func).parameters.values()
    named = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return named - {"self"}, any(p.kind is p.VAR_KEYWORD for p in params)


def _accepted_keys(target: Callable[..., Any]) -> set[str] | None:
    """Keyword arguments ``target`` accepts, following ``**kwargs`` up a class's bases;
    None when anything goes."""
    owners = inspect.getmro(target) if inspect.isclass(target) else (target,)
    keys: set[str] = set()
    for owner in owners:
        if inspect.isclass(owner) and owner.__init__ is object.__init__:
            continue
        named, takes_any = _parameters(owner)
        keys |= named
        if not takes_any:
            return keys
        if not inspect.isclass(owner):
            return None
    return None


def check_keys(node: DictConfig, key: str) -> None:
    """Fail when ``node`` (and its nested instantiable nodes) sets a key its target lacks."""
    if "_target_" not in node:
        return
    try:
        target = hydra.utils.get_object(node._target_)
    except Exception as err:
        raise ConfigError(f"{key}._target_: cannot import {node._target_!r} ({err})") from err
    accepted = _accepted_keys(target)
    given = sorted(str(k) for k in node if str(k) not in HYDRA_KEYS)
    if accepted is not None and (unknown := sorted(set(given) - accepted)):
        raise ConfigError(
            f"{key}: unknown key(s) {unknown} for {node._target_}; valid keys: {sorted(accepted)}"
        )
    for child in given:
        value = node[child]
        if isinstance(value, DictConfig):
            check_keys(value, f"{key}.{child}")


def instantiate(node: DictConfig, key: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` whose errors name ``key`` and what went wrong."""
    if missing := sorted(OmegaConf.missing_keys(node)):  # full keys, e.g. data.path
        raise ConfigError(
            f"{', '.join(missing)} must be set (??? in the config): add "
            + " ".join(f"{m}=..." for m in missing)
        )
    check_keys(node, key)
    try:
        return hydra.utils.instantiate(node, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, ConfigError):
            raise cause from err
        raise ConfigError(f"{key}: {cause if cause is not None else err}") from err


def instantiate_dict(node: DictConfig | None, key: str) -> list[Any]:
    """Instantiate each entry of a mapping of components (callbacks, loggers); nulls are skipped."""
    if node is None:
        return []
    return [instantiate(v, f"{key}.{k!s}") for k, v in node.items() if v is not None]


def nets_by_modality() -> dict[str, list[str]]:
    """Net config names under each ``conf/net`` of this job (a project's and trainlab's) that
    read each data modality."""
    return _nets_by_modality(config_dirs())


@functools.cache
def _nets_by_modality(dirs: tuple[Path, ...]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    names = sorted({p.stem for d in dirs for p in (d / "net").glob("*.yaml")})
    for name in names:
        target = _net_target(name, dirs)
        cls = hydra.utils.get_class(target) if target else None
        for modality in getattr(cls, "modalities", ()):
            found.setdefault(modality, []).append(name)
    return found


def _net_target(name: str, dirs: tuple[Path, ...]) -> str | None:
    """The ``_target_`` of a net config (the first directory's wins), or of the config its
    defaults list extends."""
    paths = (d / "net" / f"{name}.yaml" for d in dirs)
    node = OmegaConf.load(next(p for p in paths if p.is_file()))
    if not isinstance(node, DictConfig):
        return None
    if target := node.get("_target_"):
        return str(target)
    for parent in node.get("defaults", []):
        if isinstance(parent, str) and parent != "_self_":
            return _net_target(parent, dirs)
    return None


def build_net(
    cfg: DictConfig,
    input_shape: tuple[int, ...],
    modality: str,
    num_outputs: int,
    example: Any = None,
    net_data: dict[str, Any] | None = None,
) -> nn.Module:
    """Build ``cfg.net`` for data of ``input_shape`` and check it reads that data (``example``,
    a batch of two samples; zeros of ``input_shape`` by default). ``net_data`` is what else
    the data tells the net (``vocab_size``).

    Raises:
        ConfigError: the net cannot read this modality, a setting is invalid, or the net's
            output does not have ``num_outputs`` columns.
    """
    target = cfg.net.get("_target_")
    cls = hydra.utils.get_class(target) if target else None
    modalities = getattr(cls, "modalities", None)
    if modalities is not None and modality not in modalities:
        fits = nets_by_modality().get(modality, [])
        raise ConfigError(
            f"net {target} cannot read {modality} data of shape {input_shape}; "
            f"nets that fit this data: {', '.join(f'net={n}' for n in fits)}"
        )
    factory = instantiate(cfg.net, "net")
    try:
        net = factory(input_shape=input_shape, num_outputs=num_outputs, **(net_data or {}))
    except (TypeError, ValueError) as err:
        raise ConfigError(f"net: {err}") from err
    check_output_shape(net, input_shape, num_outputs, example)
    return net


NET_DATA = ("vocab_size",)  # what the data tells a net's constructor where it takes it


def net_arguments(cfg: DictConfig, dm: Any) -> dict[str, Any]:
    """:data:`NET_DATA` the DataModule knows and the net's constructor takes."""
    target = cfg.net.get("_target_")
    if not target:
        return {}
    named, _ = _parameters(hydra.utils.get_object(target))
    return {k: getattr(dm, k) for k in NET_DATA if k in named and getattr(dm, k, None) is not None}


def example_input(dm: Any) -> Any:
    """Two samples of the data as a net reads them: the DataModule's ``example_input()`` where
    it has one (graphs, token ids), else None (zeros of ``input_shape`` serve)."""
    make = getattr(dm, "example_input", None)
    return make() if callable(make) else None


def check_output_shape(
    net: nn.Module, input_shape: tuple[int, ...], num_outputs: int, example: Any = None
) -> None:
    """Run two samples (``example``, or zeros of ``input_shape``) through ``net`` and check it
    gives ``(2, num_outputs)``."""
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            out = net(torch.zeros(2, *input_shape) if example is None else example)
    except RuntimeError as err:
        raise ConfigError(
            f"net fails on inputs of shape (B, {', '.join(map(str, input_shape))}): {err}"
        ) from err
    finally:
        net.train(was_training)
    if tuple(out.shape) != (2, num_outputs):
        raise ConfigError(
            f"net outputs shape {tuple(out.shape[1:])} per sample but the data needs "
            f"({num_outputs},) "
            f"(classes or targets); labels do not fit the net's head"
        )


# What the data can tell a model's constructor; each is passed where the constructor takes it.
DATA_ARGUMENTS = ("task", "num_classes", "class_names", "target_mean", "target_std", "input_shape")


def check_datamodule(dm: Any) -> None:
    """Check the attributes trainlab reads from a set-up DataModule, naming what is missing.

    Raises:
        ConfigError: an attribute is missing or holds a value trainlab cannot use.
    """
    name = type(dm).__name__
    wanted_of = required(DATAMODULE)  # trainlab.contracts: what a DataModule has after setup
    missing = [a for a in wanted_of if getattr(dm, a, None) is None]
    if missing:
        wanted = "; ".join(f"{a}: {wanted_of[a]}".replace("`", "") for a in missing)
        raise ConfigError(
            f"data: {name} lacks {missing} after setup(); a DataModule used with trainlab "
            f"exposes them (see the README, 'Your own DataModule'): {wanted}"
        )
    if dm.task not in TASKS:
        raise ConfigError(f"data: {name}.task is {dm.task!r}; use one of {TASKS}")
    shape = dm.input_shape
    if not isinstance(shape, tuple | list) or not all(isinstance(d, int) and d > 0 for d in shape):
        raise ConfigError(
            f"data: {name}.input_shape must be a tuple of positive ints, got {shape!r}"
        )
    outputs = dm.num_outputs
    if isinstance(outputs, bool) or not isinstance(outputs, int) or outputs < 1:
        raise ConfigError(f"data: {name}.num_outputs must be a positive int, got {outputs!r}")
    names = getattr(dm, "class_names", None)
    if dm.task == "classification" and names is not None and len(names) != outputs:
        raise ConfigError(f"data: {name} has {len(names)} class_names for {outputs} outputs")


def build_data(cfg: DictConfig) -> Any:
    """Instantiate ``cfg.data`` (any ``LightningDataModule``), prepare and set it up so that its
    shapes are known, and check what trainlab reads from it."""
    dm = instantiate(cfg.data, "data")
    if not isinstance(dm, pl.LightningDataModule):
        raise ConfigError(
            f"data: {cfg.data.get('_target_')} built a {type(dm).__name__}, not a "
            "LightningDataModule"
        )
    # Lightning runs prepare_data on one process per node; DDP children start after it ran.
    if os.environ.get("LOCAL_RANK", "0") == "0":
        dm.prepare_data()
    dm.setup("fit")
    check_datamodule(dm)
    return dm


def data_arguments(dm: Any) -> dict[str, Any]:
    """What the data knows that a model's constructor may take (see :data:`DATA_ARGUMENTS`)."""
    found: dict[str, Any] = {"task": dm.task, "input_shape": tuple(dm.input_shape)}
    if dm.task == "classification":
        found["num_classes"] = dm.num_outputs
        found["class_names"] = getattr(dm, "class_names", None)
    else:
        stats = getattr(dm, "target_stats", None)  # the DataModule standardised the target
        found["target_mean"], found["target_std"] = stats if stats is not None else (0.0, 1.0)
    return found


def check_optimizer(optimizer: Callable[..., torch.optim.Optimizer]) -> None:
    """Build ``optimizer`` on a throwaway parameter so bad settings fail before training."""
    lr = getattr(optimizer, "keywords", {}).get("lr")
    if lr is not None and (isinstance(lr, bool) or not isinstance(lr, int | float) or lr <= 0):
        raise ConfigError(f"model.optimizer.lr must be a number > 0, got {lr!r}")
    try:
        optimizer(params=[nn.Parameter(torch.zeros(1))])
    except (ValueError, TypeError) as err:
        raise ConfigError(f"model.optimizer: {err}") from err


def build_model(cfg: DictConfig, dm: Any) -> pl.LightningModule:
    """The LightningModule of ``cfg.model`` for ``dm``'s data.

    Where the model's constructor names a ``net`` parameter, the net of ``cfg.net`` is built
    for the data and injected. Each of :data:`DATA_ARGUMENTS` is passed where the constructor
    names it, or a base class that its ``**kwargs`` reach does; ``monitor`` and ``mode`` (which
    trainlab reads for checkpoints and early stopping) where it names them or takes
    ``**kwargs``.

    Raises:
        ConfigError: the model does not fit the data, or is not a LightningModule.
    """
    from trainlab.models import MODELS

    node = cfg.model
    if "_target_" not in node:
        raise ConfigError("model._target_ must name a LightningModule class or factory")
    try:
        target = hydra.utils.get_object(node._target_)
    except Exception as err:
        raise ConfigError(f"model._target_: cannot import {node._target_!r} ({err})") from err
    for task, model_cls in MODELS.items():
        if inspect.isclass(target) and issubclass(target, model_cls) and dm.task != task:
            raise ConfigError(
                f"model={task} needs {task} data, but data is a {dm.task} task; "
                f"use model={dm.task} or model=auto"
            )
    named, takes_any = _parameters(target)
    # a subclass's **kwargs that reach its base's parameters (num_classes ...) name them too
    named |= _accepted_keys(target) or set()
    if (unnamed := {"monitor", "mode"} - named) and not takes_any:
        # read by trainlab, for checkpoints and early stopping; passed only where named
        kept = OmegaConf.to_container(node, resolve=True)
        assert isinstance(kept, dict)
        node = OmegaConf.create({k: v for k, v in kept.items() if k not in unnamed})
    extra = {k: v for k, v in data_arguments(dm).items() if k in named}
    if "net" in named:
        extra["net"] = build_net(
            cfg,
            tuple(dm.input_shape),
            dm.modality,
            dm.num_outputs,
            example_input(dm),
            net_arguments(cfg, dm),
        )
    factory = instantiate(node, "model")
    if callable(optimizer := getattr(factory, "keywords", {}).get("optimizer")):
        check_optimizer(optimizer)
    try:
        model = factory(**extra)
    except TypeError as err:
        raise ConfigError(f"model: {err}") from err
    if not isinstance(model, pl.LightningModule):
        raise ConfigError(
            f"model: {node._target_} built a {type(model).__name__}, not a LightningModule"
        )
    if "net" not in extra:  # the model is its own network: check its output like a net's
        check_output_shape(model, tuple(dm.input_shape), dm.num_outputs, example_input(dm))
    return model
