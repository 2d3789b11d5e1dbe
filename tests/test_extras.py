"""Optional dependencies as extras: what needs one names it in one line when it is missing, and
leaves nothing behind."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli
from trainlab.errors import ConfigError
from trainlab.extras import EXTRAS, missing, require, require_for_loggers


def _uninstall(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Make ``modules`` fail to import, as where their extra is not installed."""
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)


@pytest.mark.parametrize("extra", sorted(EXTRAS))
def test_a_missing_extra_is_named_with_its_install_command(
    extra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not missing(extra):  # installed here (make install takes all but mlflow)
        require(extra, "this")
        _uninstall(monkeypatch, EXTRAS[extra][0])
    with pytest.raises(ConfigError) as caught:
        require(extra, "this")
    assert str(caught.value) == (
        f"this needs the '{extra}' extra ({EXTRAS[extra][0]} not installed): "
        f"pip install 'trainlab[{extra}]'"
    )


def test_each_feature_asks_for_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from trainlab.data.graphs import CyclesDataModule, KarateClubDataModule
    from trainlab.nets.gnn import GNN
    from trainlab.sweeps.optuna import study_lock

    _uninstall(monkeypatch, "torch_geometric", "psycopg2", "mlflow")
    with pytest.raises(ConfigError, match=r"^net=gat needs the 'graph' extra"):
        GNN((4,), 2, conv="gat")
    for data in (KarateClubDataModule, CyclesDataModule):
        with pytest.raises(
            ConfigError, match=rf"^{data.__name__} \(graph data\) needs the 'graph'"
        ):
            data()
    with (
        pytest.raises(ConfigError, match=r"^a PostgreSQL storage needs the 'postgres' extra"),
        study_lock("postgresql+psycopg2://u@127.0.0.1:1/optuna", "study"),
    ):
        pass
    loggers = {"csv": {"_target_": "trainlab.loggers.csv.CSVLogger"}, "ml": None}
    require_for_loggers(loggers)  # the core's loggers need nothing
    loggers["ml"] = {"_target_": "lightning.pytorch.loggers.MLFlowLogger"}
    with pytest.raises(
        ConfigError, match=r"^logger.ml \(lightning.pytorch.loggers.MLFlowLogger\) "
    ):
        require_for_loggers(loggers)


@pytest.mark.slow
def test_the_command_line_says_it_in_one_line_and_writes_nothing(tmp_path: Path) -> None:
    """A package that fails to import stands in for one that is not installed."""
    stub = tmp_path / "stub" / "torch_geometric"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ImportError('not installed')\n")
    run = tmp_path / "run"
    env = {"PYTHONPATH": f"{tmp_path / 'stub'}:{ROOT}"}
    done = run_cli(
        "trainlab.train", "experiment=karate_gcn", f"hydra.run.dir={run}", cwd=tmp_path, env=env
    )
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert (
        lines[-1].startswith("trainlab: error: ") and "pip install 'trainlab[graph]'" in lines[-1]
    )
    assert not run.exists()
