"""Every config file composes, and what it describes instantiates."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from lightning.pytorch import Trainer
from omegaconf import DictConfig, OmegaConf

from tests.helpers import bundled_data, small_data
from trainlab.models import ClassificationModel, RegressionModel
from trainlab.runtime.build import (
    build_data,
    build_model,
    build_net,
    example_input,
    instantiate,
    instantiate_dict,
    net_arguments,
)
from trainlab.runtime.configs import CONFIG_DIR

MakeCfg = Callable[..., DictConfig]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml") if not p.stem.startswith("_"))


GPU_ONLY = {"gpu", "ddp", "ddp_spawn", "fsdp"}


README = (CONFIG_DIR.parent / "README.md").read_text()
SELECTABLE = ["data", "net", "model", "callbacks", "logger", "trainer", "debug", "experiment"]
SELECTABLE += ["hparams_search", "ablation"]


def _readme_options(group: str) -> list[str]:
    """The options the README's "Config groups" table lists for ``group``."""
    table = README[README.index("## Config groups") :]
    row = re.search(rf"^\| `{group}` \| (.*?) \|", table, re.MULTILINE)
    assert row, f"the README's config-groups table has no row for {group}"
    return sorted(re.findall(r"`([^`]+)`", row.group(1)))


@pytest.mark.parametrize("group", SELECTABLE)
def test_the_readme_lists_every_option_of_every_group(group: str) -> None:
    """The table follows conf/: a new net or DataModule is a config file and a README cell."""
    assert options(group), f"conf/{group} has no options"
    assert _readme_options(group) == options(group)


@pytest.mark.parametrize("group", ["data", "net", "model", "callbacks", "logger", "trainer"])
def test_a_value_a_config_file_leaves_to_the_user_stays_required(
    group: str, make_cfg: MakeCfg
) -> None:
    """``???`` in an option's file must survive composition: merged onto a value inherited
    from another option (its defaults list), it would keep that value, and the run would use
    it silently instead of failing for the missing setting."""
    for name in options(group):
        raw = OmegaConf.load(CONFIG_DIR / group / f"{name}.yaml")
        assert isinstance(raw, DictConfig)
        required = {f"{group}.{k}" for k in raw if k != "defaults" and OmegaConf.is_missing(raw, k)}
        if required:
            cfg = make_cfg(f"{group}={name}")
            missing = OmegaConf.missing_keys(cfg[group])  # full keys: data.path
            assert required <= missing, f"{group}={name}: {sorted(required - missing)} not required"


@pytest.mark.parametrize("name", options("data"))
def test_data_configs(
    name: str,
    make_cfg: MakeCfg,
    iris_csv: Path,
    tiny_mnist: Path,
    digits_pngs: Path,
    packed_digits: Path,
) -> None:
    extra = []
    if name == "image_folder":
        extra = [f"data.root={digits_pngs}", "data.num_workers=0"]
    if name == "packed":
        extra = [f"data.path={packed_digits}", "data.num_workers=0"]
    if name == "csv":
        extra = [f"data.path={iris_csv}", "data.target=species"]
    if name == "text_csv":
        texts = iris_csv.with_name("texts.csv")
        rows = [f"{w} movie,{'pos' if w == 'good' else 'neg'}" for w in ["good", "bad"] * 100]
        texts.write_text("review,stars\n" + "\n".join(rows) + "\n")
        extra = [f"data.path={texts}", "data.text=review", "data.target=stars"]
    if name in ("mnist", "fashion_mnist"):
        variant = tiny_mnist / name
        variant.mkdir(exist_ok=True)
        for f in (tiny_mnist / "mnist").iterdir():
            (variant / f.name).write_bytes(f.read_bytes())
        extra = [f"data.root={tiny_mnist}", "data.verify=false"]
    dm = build_data(make_cfg(f"data={name}", *extra))
    x, y = next(iter(dm.train_dataloader()))
    if dm.modality == "graph":  # a graph batch: node features, one target per node or graph
        assert tuple(x.x.shape[1:]) == tuple(dm.input_shape) and len(y) > 0
        return
    assert tuple(x.shape[1:]) == tuple(dm.input_shape) and len(x) == len(y) == dm.batch_size


def _data_for(net: str) -> str:
    """A bundled data option that ``net`` reads."""
    from trainlab.runtime.build import nets_by_modality

    fits = nets_by_modality()
    return next(d for d, modality in bundled_data().items() if net in fits.get(modality, []))


@pytest.mark.parametrize("name", options("net"))
def test_net_configs(name: str, make_cfg: MakeCfg) -> None:
    data = _data_for(name)
    cfg = make_cfg(f"net={name}", f"data={data}", *small_data(data))
    dm = build_data(cfg)
    extra = net_arguments(cfg, dm)  # vocab_size, for a net reading token ids
    net = build_net(cfg, dm.input_shape, dm.modality, dm.num_outputs, example_input(dm), extra)
    x, y = next(iter(dm.val_dataloader()))
    assert net(x).shape == (len(y), dm.num_outputs)


MODEL_DATA = {"auto": "diabetes", "classification": "iris", "regression": "diabetes"}


@pytest.mark.parametrize("name", options("model"))
def test_model_configs(name: str, make_cfg: MakeCfg) -> None:
    cfg = make_cfg(f"model={name}", f"data={MODEL_DATA[name]}")
    dm = build_data(cfg)
    model = build_model(cfg, dm)
    expected = RegressionModel if MODEL_DATA[name] == "diabetes" else ClassificationModel
    assert isinstance(model, expected)
    x, y = dm.tensors("train")
    assert torch.isfinite(model.model_step((x[:8], y[:8]), "train"))


@pytest.mark.parametrize("optimizer", options("model/optimizer"))
@pytest.mark.parametrize("scheduler", options("model/scheduler"))
def test_optimizer_and_scheduler_configs(optimizer: str, scheduler: str, make_cfg: MakeCfg) -> None:
    cfg = make_cfg(f"model/optimizer={optimizer}", f"model/scheduler={scheduler}")
    opt = instantiate(cfg.model.optimizer, "model.optimizer")(
        params=[torch.nn.Parameter(torch.zeros(2))]
    )
    sched = instantiate(cfg.model.scheduler, "model.scheduler")(
        opt, total_steps=100, monitor="val/loss", mode="min"
    )
    assert sched["interval"] in ("step", "epoch") and sched["scheduler"].optimizer is opt


def test_cosine_schedule_warms_up_then_decays(make_cfg: MakeCfg) -> None:
    cfg = make_cfg("model/scheduler=cosine", "model.scheduler.warmup_fraction=0.1")
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = instantiate(cfg.model.scheduler, "s")(
        opt, total_steps=100, monitor="val/loss", mode="min"
    )["scheduler"]
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.1) and max(lrs) == pytest.approx(1.0)
    assert lrs[10] == pytest.approx(1.0) and lrs[-1] < 0.01


@pytest.mark.parametrize("name", options("callbacks"))
def test_callback_configs(name: str, make_cfg: MakeCfg) -> None:
    cfg = make_cfg(f"callbacks={name}")
    callbacks = instantiate_dict(cfg.get("callbacks"), "callbacks")
    assert len(callbacks) == len(cfg.get("callbacks") or {})


@pytest.mark.parametrize("name", options("logger"))
def test_logger_configs(name: str, make_cfg: MakeCfg, monkeypatch: pytest.MonkeyPatch) -> None:
    if name == "mlflow":
        pytest.importorskip("mlflow", reason="the optional mlflow extra is not installed")
    monkeypatch.setenv("WANDB_MODE", "offline")
    loggers = instantiate_dict(make_cfg(f"logger={name}").logger, "logger")
    assert loggers and all(hasattr(lg, "log_metrics") for lg in loggers)
    if name == "many":
        assert len(loggers) == 3


@pytest.mark.parametrize("name", options("trainer"))
def test_trainer_configs(name: str, make_cfg: MakeCfg) -> None:
    if name in GPU_ONLY and not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    if name == "mps" and not torch.backends.mps.is_available():
        pytest.skip("needs Apple MPS")
    trainer = instantiate(make_cfg(f"trainer={name}").trainer, "trainer", logger=False)
    assert isinstance(trainer, Trainer)
    if name == "ddp_cpu":
        assert trainer.num_devices == 2 and type(trainer.strategy).__name__ == "DDPStrategy"


@pytest.mark.parametrize("name", options("debug"))
def test_debug_configs(name: str, make_cfg: MakeCfg) -> None:
    trainer = instantiate(make_cfg(f"debug={name}").trainer, "trainer", logger=False)
    assert isinstance(trainer, Trainer)


@pytest.mark.parametrize("name", options("experiment"))
def test_experiment_configs_compose(name: str, make_cfg: MakeCfg) -> None:
    cfg = make_cfg(f"experiment={name}")
    assert cfg.run_name == name


def test_digits_mlp_is_the_default_run(make_cfg: MakeCfg) -> None:
    default, explicit = make_cfg(), make_cfg("experiment=digits_mlp")
    for key in ("data", "net", "model", "trainer", "callbacks", "seed"):
        assert default[key] == explicit[key]
    assert list(default.net.hidden_sizes) == [256, 128] and default.net.dropout == 0.3
    assert default.model.optimizer.lr == 1e-3 and default.data.batch_size == 64


def test_optuna_search_composes() -> None:
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", ["hparams_search=optuna"], return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_ == "hydra_plugins.trainlab_sweeper.OptunaSweeper"
    assert sweeper.direction == "minimize" and not sweeper.pruner
    assert set(sweeper.params) == {"model.optimizer.lr", "data.batch_size", "net.dropout"}


@pytest.mark.parametrize("pruner", ["median", "successive_halving", "hyperband"])
def test_each_pruner_composes_and_builds(pruner: str) -> None:
    import optuna
    from hydra.utils import instantiate

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(
            "train",
            ["hparams_search=optuna", f"hydra/sweeper/pruner={pruner}", "trainer.max_epochs=9"],
            return_hydra_config=True,
        )
    sweeper = instantiate(cfg.hydra.sweeper)
    assert isinstance(sweeper.pruner, optuna.pruners.BasePruner)
    assert isinstance(sweeper.sampler, optuna.samplers.TPESampler)
    if pruner == "hyperband":
        assert sweeper.pruner._max_resource == 9  # the run's max_epochs


def test_a_hydra_optuna_sweeper_config_runs_on_trainlabs_sweeper() -> None:
    """The keys of hydra-optuna-sweeper's config, as its users wrote them, build trainlab's."""
    import optuna
    from hydra.utils import instantiate

    from trainlab.sweeps.optuna import StudySweeper

    given = [
        "hydra/sweeper=optuna",
        "hydra/sweeper/sampler=random",
        "hydra.sweeper.sampler.seed=123",
        "hydra.sweeper.direction=maximize",
        "hydra.sweeper.study_name=lr",
        "hydra.sweeper.storage=null",
        "hydra.sweeper.n_trials=20",
        "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.max_failure_rate=0.5",
        "hydra.sweeper.params={model.optimizer.lr:'tag(log, interval(0.0001, 0.1))'}",
    ]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", given, return_hydra_config=True)
    sweeper = instantiate(cfg.hydra.sweeper)
    assert isinstance(sweeper, StudySweeper) and sweeper.directions() == ["maximize"]
    assert isinstance(sweeper.sampler, optuna.samplers.RandomSampler)
    assert (sweeper.n_trials, sweeper.n_jobs, sweeper.max_failure_rate) == (20, 2, 0.5)
    space, fixed = sweeper.space(["seed=3"])
    assert space == {
        "model.optimizer.lr": optuna.distributions.FloatDistribution(1e-4, 0.1, log=True)
    }
    assert fixed == {"seed": "3"}


@pytest.mark.parametrize("name", ["eval", "predict"])
def test_eval_and_predict_configs_compose(name: str, make_cfg: MakeCfg) -> None:
    cfg = make_cfg(config_name=name)
    assert cfg.run_dir is None and cfg.ckpt_path is None


def test_unknown_top_level_key_is_refused() -> None:
    with (
        initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"),
        pytest.raises(ConfigCompositionException, match="epochs"),
    ):
        compose("train", ["epochs=3"])


@pytest.mark.parametrize("sampler", ["tpe", "random", "grid", "cmaes"])
def test_each_sampler_composes_and_builds(sampler: str) -> None:
    import functools

    import optuna
    from hydra.utils import instantiate

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(
            "train",
            ["hparams_search=optuna", f"hydra/sweeper/sampler={sampler}"],
            return_hydra_config=True,
        )
    built = instantiate(cfg.hydra.sweeper).sampler
    names = {"tpe": "TPESampler", "random": "RandomSampler", "grid": "GridSampler"}
    expected = names.get(sampler, "CmaEsSampler")
    assert getattr(built, "func", type(built)).__name__ == expected  # not replaced by TPE
    if sampler == "grid":  # the sweeper gives it the grid of the params
        assert isinstance(built, functools.partial)
        built = built({"x": [1, 2]})
    assert isinstance(built, optuna.samplers.BaseSampler)
