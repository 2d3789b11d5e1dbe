"""The extension points a fork fills, written once: what trainlab reads of each.

A DataModule of one's own, a LightningModule of one's own, a net, and a callback that reports
into ``metrics.json`` or ``diagnostics.json``. Each is a table of :class:`Member` (required or
optional, and what trainlab does with it) and, for the required part, a ``Protocol``. The code
reads nothing else of these objects (``tests/test_contracts.py`` scans ``src/`` for it), and the
README's tables are these tables (``python -m trainlab.contracts`` prints them; a test checks
the README holds them; ``--json`` gives the :func:`snapshot` a project records, and
:func:`changes` what an upgrade changed). A thin project also calls and subclasses a few of
trainlab's functions and classes (:data:`API`); the snapshot holds their signatures. Everything
else in trainlab is its own business.
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class Member:
    """One thing trainlab reads of an extension: an attribute, or a method with its arguments
    (``example_input()``)."""

    name: str
    required: bool
    meaning: str

    @property
    def attribute(self) -> str:
        return self.name.split("(")[0]


DATAMODULE: tuple[Member, ...] = (
    Member("task", True, '`"classification"` or `"regression"`'),
    Member(
        "input_shape", True, "the shape of one sample, e.g. `(1, 28, 28)`: the net is built for it"
    ),
    Member(
        "modality",
        True,
        '`"tabular"`, `"image"`, `"sequence"`, `"text"` or `"graph"`: which nets may read it',
    ),
    Member("num_outputs", True, "the number of classes, or 1 for regression"),
    Member("class_names", False, "names in class-index order (classification)"),
    Member(
        "target_stats", False, "`(mean, std)` when the DataModule standardised a regression target"
    ),
    Member("vocab_size", False, "token ids: given to a net whose constructor takes it"),
    Member(
        "example_input()",
        False,
        "two samples as the net reads them (token ids, a graph batch); the net is checked on "
        "them before training (zeros of `input_shape` otherwise)",
    ),
    Member("save_artifacts(run_dir)", False, "files the run keeps (a vocabulary)"),
    Member(
        "tensors(split)",
        False,
        "a split's `(x, y)` tensors: the baselines fit on them and `data.json` fingerprints them",
    ),
    Member("transform(x)", False, "raw feature rows as the net reads them: `predict input_csv=`"),
    Member("encode_frame(frame)", False, "text rows as token ids: `predict input_csv=`"),
    Member(
        "target", False, "the target column's name: `predict input_csv=` scores rows that have it"
    ),
    Member("normalization", False, "`(mean, std)` of the inputs, folded into an exported model"),
    Member("permute", False, "true when the positions are shuffled: export refuses"),
    Member("leakage_counts", False, "inputs shared between splits, for `diagnostics.json`"),
    Member("eval_batch_size", False, "the batch size of `eval` and `predict` (256 otherwise)"),
    Member(
        "datasets",
        False,
        "the splits' datasets; with `files` (or `names`, relative UTF-8 bytes) and `labels`, "
        "`data.json` fingerprints them",
    ),
    Member("root", False, "the folder those files are relative to"),
)

MODEL: tuple[Member, ...] = (
    Member(
        "__init__(...)",
        True,
        "gets `net` (built from `net=` for the data) where it names a `net` parameter, each of "
        "`num_classes`, `class_names`, `target_mean`, `target_std`, `input_shape` and `task` "
        "that it names, and `monitor` and `mode` each where it names it (or takes `**kwargs`)",
    ),
    Member(
        "forward(x)",
        True,
        "`(B, num_outputs)`, checked on two samples before training: logits (classification; "
        "calibration and `predict` apply softmax) or the prediction (regression)",
    ),
    Member(
        "validation_step",
        True,
        "logs `model.monitor`; the run stops after the sanity check, naming what was logged, "
        "if it does not",
    ),
    Member("test_step", True, "the test after training, and `eval split=test`"),
    Member("predict_outputs(out)", False, '`{"pred": ...}` (and more columns) for `predict`'),
    Member("net", False, "the `nn.Module` that `export` writes (with calibration folded in)"),
)

NET: tuple[Member, ...] = (
    Member(
        "modalities",
        False,
        'a class attribute, e.g. `frozenset({"image"})`: the data it reads; other data '
        "fails before training, naming the nets that fit (without it, any data is tried)",
    ),
    Member(
        "__init__(input_shape, num_outputs, ...)",
        True,
        "the data supplies both (`_partial_: true` in its config); `vocab_size` where it names it",
    ),
    Member("forward(x)", True, "`(B, num_outputs)`, checked on two samples before training"),
)

CALLBACK: tuple[Member, ...] = (
    Member(
        "report_metrics()",
        False,
        "`{name: float}` after the test, merged into `metrics.json` (the run's metrics)",
    ),
    Member(
        "report_summary()",
        False,
        "`{key: value}` after the test, put into `metrics.json` beside `metrics` (the "
        "baselines' verdict and notes are `baselines`); the run's own keys win",
    ),
    Member(
        "diagnostics()",
        False,
        "`{key: value}` merged into `diagnostics.json`, read once training ends (before the test)",
    ),
    Member(
        "stop_reason",
        False,
        "a string when the callback stopped training; `metrics.json` records it",
    ),
)

CONTRACTS: dict[str, tuple[Member, ...]] = {
    "DataModule": DATAMODULE,
    "LightningModule": MODEL,
    "net": NET,
    "callback": CALLBACK,
}


@runtime_checkable
class DataModuleContract(Protocol):
    """What every DataModule has after ``setup("fit")`` (the optional members are in
    :data:`DATAMODULE`)."""

    task: str
    input_shape: Sequence[int]
    modality: str
    num_outputs: int


@runtime_checkable
class ReportingCallback(Protocol):
    """A callback whose numbers go into ``metrics.json``."""

    def report_metrics(self) -> dict[str, float]: ...


def required(members: tuple[Member, ...]) -> dict[str, str]:
    """The required attributes of a contract, with their meaning."""
    return {m.attribute: m.meaning for m in members if m.required}


def markdown(members: tuple[Member, ...]) -> str:
    """The contract as the README's table."""
    lines = ["| member | required | what trainlab does with it |", "|---|---|---|"]
    for m in members:
        lines.append(f"| `{m.name}` | {'yes' if m.required else 'no'} | {m.meaning} |")
    return "\n".join(lines) + "\n"


# What a thin project calls, subclasses or overrides of trainlab's code (its template does each):
# an upgrade compares their signatures.
API = (
    "trainlab.project.main",
    "trainlab.testing.compose",
    "trainlab.testing.check_parts",
    "trainlab.testing.check_learns",
    "trainlab.data.base.InMemoryDataModule",
    "trainlab.data.base.InMemoryDataModule.load",
    "trainlab.data.base.Loaded",
    "trainlab.models.ClassificationModel",
    "trainlab.models.RegressionModel",
    "trainlab.models.base.Model.loss",
    "trainlab.errors.ConfigError",
)


def _resolve(dotted: str) -> Any:
    """The object a dotted name of :data:`API` names (a module's member, or a member's)."""
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module = ".".join(parts[:cut])
        try:
            found: Any = importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:  # a module it imports is missing: say so
                raise
            continue
        for name in parts[cut:]:
            found = getattr(found, name)
        return found
    raise ImportError(dotted)


def call_shape(name: str, obj: Any) -> dict[str, object]:
    """``{"name", "signature", "parameters"}`` of a function or class (by its constructor): each
    parameter as ``[name, kind, has_default]``."""
    signature = inspect.signature(obj.__init__ if isinstance(obj, type) else obj)  # type: ignore[misc]
    params = [p for p in signature.parameters.values() if p.name != "self"]
    shown = [
        str(p.replace(annotation=inspect.Parameter.empty))
        for p in params  # without annotations: what a caller writes
    ]
    return {
        "name": name,
        "signature": f"({', '.join(shown)})",
        "parameters": [[p.name, p.kind.name, p.default is not p.empty] for p in params],
    }


def _flat(value: Any, prefix: str = "") -> dict[str, str]:
    """A config's keys, dotted, each with its default as JSON (``"???"``: one must be given)."""
    if isinstance(value, dict) and value:
        found: dict[str, str] = {}
        for key, inner in value.items():
            found.update(_flat(inner, f"{prefix}.{key}" if prefix else str(key)))
        return found
    return {prefix: json.dumps(value, sort_keys=True, default=str)}


def config_surface() -> list[dict[str, object]]:
    """trainlab's configs as a project meets them: each config (``train``, ``net/cnn``, one per
    file of ``conf/``, its group the folder) with its keys and their defaults (the defaults
    list apart). Read as ``pkg://trainlab.conf`` serves them (also from a wheel on the path);
    nothing is composed."""
    from importlib.resources import files
    from importlib.resources.abc import Traversable

    import yaml

    def walk(folder: Traversable, prefix: str) -> list[tuple[str, Traversable]]:
        found = []
        for entry in folder.iterdir():
            if entry.is_dir() and not entry.name.startswith(("_", ".")):
                found += walk(entry, f"{prefix}{entry.name}/")
            elif entry.name.endswith(".yaml"):
                found.append((prefix + entry.name.removesuffix(".yaml"), entry))
        return found

    surface: list[dict[str, object]] = []
    for name, entry in sorted(walk(files("trainlab.conf"), "")):
        loaded = yaml.safe_load(entry.read_text()) or {}
        if isinstance(loaded, dict):
            loaded.pop("defaults", None)
            surface.append({"name": name, "keys": _flat(loaded) if loaded else {}})
    return surface


def snapshot() -> dict[str, list[dict[str, object]]]:
    """Every contract as plain data, the signatures of :data:`API` and the config surface:
    what a project records of the trainlab it was made with, so that an upgrade can say what
    changed (``scripts/thin_project.py``)."""
    found: dict[str, list[dict[str, object]]] = {
        name: [{"name": m.name, "required": m.required, "meaning": m.meaning} for m in members]
        for name, members in CONTRACTS.items()
    }
    found["api"] = [call_shape(name, _resolve(name)) for name in API]
    found["config"] = config_surface()
    return found


def _still_calls(old: list[list[Any]], new: list[list[Any]]) -> bool:
    """Whether every call that fit parameters ``old`` still fits ``new``: no parameter gone or
    of another kind, none that had a default lost it, and every new one has a default."""
    before = {name: (kind, default) for name, kind, default in old}
    after = {name: (kind, default) for name, kind, default in new}
    for name, (kind, default) in before.items():
        if name not in after and "VAR_" not in kind:
            return False
        if name in after and (after[name][0] != kind or (default and not after[name][1])):
            return False
    return all(
        default or "VAR_" in kind for name, (kind, default) in after.items() if name not in before
    )


def _api_changes(
    old: list[dict[str, Any]], new: list[dict[str, Any]]
) -> tuple[list[str], list[str]]:
    before = {str(e["name"]): e for e in old}
    after = {str(e["name"]): e for e in new}
    breaking: list[str] = []
    other: list[str] = []
    for name in sorted(set(before) | set(after)):
        was, now = before.get(name), after.get(name)
        if now is None:
            breaking.append(f"api: `{name}` removed")
        elif was is None:
            other.append(f"api: `{name}{now['signature']}` added")
        elif was["signature"] != now["signature"]:
            line = f"api: `{name}{was['signature']}` is now `{name}{now['signature']}`"
            fits = _still_calls(was["parameters"], now["parameters"])
            (other if fits else breaking).append(line)
    return breaking, other


def _option(name: str) -> str:
    """``net/cnn`` as a command line chooses it (``net=cnn``); a primary config by its name."""
    group, _, option = name.rpartition("/")
    return f"{group}={option}" if group else name


def _config_changes(
    old: list[dict[str, Any]], new: list[dict[str, Any]]
) -> tuple[list[str], list[str]]:
    """Breaking: a config or a key gone (what chose or set it fails), a key that must now be
    given (``???``). Otherwise: a config or key added, a default changed (a run that relied on
    it trains differently)."""
    before = {str(c["name"]): c["keys"] for c in old}
    after = {str(c["name"]): c["keys"] for c in new}
    breaking: list[str] = []
    other: list[str] = []
    groups_before = {n.rpartition("/")[0] for n in before} - {""}
    groups_after = {n.rpartition("/")[0] for n in after} - {""}
    breaking += [f"config: group `{g}` removed" for g in sorted(groups_before - groups_after)]
    other += [f"config: group `{g}` added" for g in sorted(groups_after - groups_before)]
    for name in sorted(set(before) | set(after)):
        was, now, option = before.get(name), after.get(name), _option(name)
        if now is None:
            breaking.append(f"config: `{option}` removed")
            continue
        if was is None:
            other.append(f"config: `{option}` added")
            continue
        for key in sorted(set(was) | set(now)):
            if key not in now:
                breaking.append(f"config: `{option}` key `{key}` removed (setting it fails)")
            elif now[key] == '"???"' and was.get(key) != '"???"':
                breaking.append(f"config: `{option}` key `{key}` must now be given")
            elif key not in was:
                other.append(f"config: `{option}` key `{key}` added, default {now[key]}")
            elif was[key] != now[key]:
                other.append(f"config: `{option}` key `{key}` default {was[key]} -> {now[key]}")
    return breaking, other


def changes(
    old: dict[str, list[dict[str, object]]], new: dict[str, list[dict[str, object]]]
) -> list[str]:
    """What differs between two :func:`snapshot`s, one line each, the breaking ones first: a
    member that becomes required, a call that no longer fits, a config or key gone. A member
    trainlab stops reading breaks nothing: the project's code is simply not called."""
    breaking: list[str] = []
    other: list[str] = []
    if "api" in old and "api" in new:
        breaking, other = _api_changes(old["api"], new["api"])
    elif "api" in new:  # a project made before signatures were recorded
        other.append("api: the old version recorded no signatures; the commits say what changed")
    if "config" in old and "config" in new:
        config_breaking, config_other = _config_changes(old["config"], new["config"])
        breaking += config_breaking
        other += config_other
    elif "config" in new:
        other.append("config: the old version recorded no config surface")
    for point in sorted((set(old) | set(new)) - {"api", "config"}):
        before = {str(m["name"]): m for m in old.get(point, [])}
        after = {str(m["name"]): m for m in new.get(point, [])}
        for name in sorted(set(before) | set(after)):
            was, now = before.get(name), after.get(name)
            if now is None:
                other.append(f"{point}: `{name}` no longer read by trainlab (yours may stay)")
            elif was is None:
                kind = "required" if now["required"] else "optional"
                line = f"{point}: `{name}` added, {kind}: {now['meaning']}"
                (breaking if now["required"] else other).append(line)
            elif was["required"] != now["required"]:
                if now["required"]:
                    breaking.append(f"{point}: `{name}` is now required: {now['meaning']}")
                else:
                    other.append(f"{point}: `{name}` is now optional")
            elif was["meaning"] != now["meaning"]:
                other.append(f"{point}: `{name}` now means: {now['meaning']}")
    return [f"breaking: {line}" for line in breaking] + other


def main() -> None:
    if sys.argv[1:] == ["--json"]:
        print(json.dumps(snapshot(), indent=1))
        return
    for name, members in CONTRACTS.items():
        print(f"{name}:\n\n{markdown(members)}")


if __name__ == "__main__":
    main()
