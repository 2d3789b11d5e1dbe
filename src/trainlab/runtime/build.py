"""Build the objects of a run from its config, turning every failure into a message that names
the config key and what would be valid."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import hydra
import torch
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf
from torch import nn

from trainlab.errors import ConfigError
from trainlab.runtime.configs import CONFIG_DIR

HYDRA_KEYS = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_"}


def _accepted_keys(target: Callable[..., Any]) -> set[str] | None:
    """Keyword arguments ``target`` accepts, following ``**kwargs`` up a class's bases;
    None when anything goes."""
    owners = inspect.getmro(target) if inspect.isclass(target) else (target,)
    keys: set[str] = set()
    for owner in owners:
        func = owner.__init__ if inspect.isclass(owner) else owner
        if func is object.__init__:
            continue
        params = inspect.signature(func).parameters.values()
        keys |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return keys - {"self"}
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


@functools.cache
def nets_by_modality() -> dict[str, list[str]]:
    """Net config names under ``conf/net`` that read each data modality."""
    found: dict[str, list[str]] = {}
    for path in sorted((CONFIG_DIR / "net").glob("*.yaml")):
        node = OmegaConf.load(path)
        target = node.get("_target_") if isinstance(node, DictConfig) else None
        cls = hydra.utils.get_class(target) if target else None
        for modality in getattr(cls, "modalities", ()):
            found.setdefault(modality, []).append(path.stem)
    return found


def build_net(
    cfg: DictConfig, input_shape: tuple[int, ...], modality: str, num_outputs: int
) -> nn.Module:
    """Build ``cfg.net`` for data of ``input_shape`` and check it reads that data.

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
        net = factory(input_shape=input_shape, num_outputs=num_outputs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"net: {err}") from err
    check_output_shape(net, input_shape, num_outputs)
    return net


def check_output_shape(net: nn.Module, input_shape: tuple[int, ...], num_outputs: int) -> None:
    """Run two zero samples through ``net`` and check it gives ``(2, num_outputs)``."""
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            out = net(torch.zeros(2, *input_shape))
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


def build_data(cfg: DictConfig) -> Any:
    """Instantiate ``cfg.data`` and load it (splits, normalisation), so shapes are known."""
    from trainlab.data.base import InMemoryDataModule

    dm = instantiate(cfg.data, "data")
    if not isinstance(dm, InMemoryDataModule):
        raise ConfigError(f"data: {type(dm).__name__} is not a trainlab InMemoryDataModule")
    dm.setup("fit")
    return dm


def build_task(cfg: DictConfig, dm: Any, net: nn.Module) -> Any:
    """Instantiate the task module in ``cfg.model`` around ``net`` with what the data knows."""
    from trainlab.models import ClassificationTask, RegressionTask

    cls = hydra.utils.get_class(cfg.model._target_)
    wanted = {ClassificationTask: "classification", RegressionTask: "regression"}
    for task_cls, task in wanted.items():
        if issubclass(cls, task_cls) and dm.task != task:
            raise ConfigError(
                f"model={task} needs {task} data, but data is a {dm.task} task; use model={dm.task}"
            )
    if dm.task == "classification":
        extra: dict[str, Any] = {"num_classes": dm.num_outputs, "class_names": dm.class_names}
    else:
        mean, std = dm.target_stats
        extra = {"target_mean": mean, "target_std": std}
    factory = instantiate(cfg.model, "model")
    try:
        return factory(net=net, **extra)
    except TypeError as err:
        raise ConfigError(f"model: {err}") from err


def build_model(cfg: DictConfig, dm: Any) -> Any:
    """The net for ``dm``'s data, wrapped in the configured task module."""
    net = build_net(cfg, dm.input_shape, dm.modality, dm.num_outputs)
    return build_task(cfg, dm, net)
