"""The methods added after the papers' tables (pg_constant, RankGAN, SeqGAN's other reward
estimators, LeakGAN, GSGAN, TextGAN, RelGAN on either generator kind) run through the pipeline's
adversarial loop (`pipelines.stages.adversarial.train`) on the tiny profile's synthetic
experiment: finite metrics, a changed generator, the discriminator the method trained in
`discriminator_adv.pt`, a resumed run equal to an uninterrupted one, and the generator-kind
check.

In-process and without MLflow or DVC: the stages' `stage()` is replaced by one that yields
the same context with a tracker that records nothing, and the oracle's data validation
(Great Expectations, tested with the stages in test_pipeline.py) is skipped, so the whole
module takes seconds.
"""
from __future__ import annotations

import importlib
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
import yaml

from conftest import REPO_ROOT, working_copy

pytestmark = pytest.mark.usefixtures("single_thread")


class Crash(RuntimeError):
    """Stands in for the process dying mid-run."""


class Tracker:
    def log_metrics(self, metrics, step: int = 0, *, parent: bool = False) -> None:
        pass

    def set_tags(self, tags, *, parent: bool = False) -> None:
        pass

    def log_artifact(self, path, artifact_path=None) -> None:
        pass


def tiny_params(**generator):
    """The tiny profile, with generator settings replaced by ``generator``."""
    from pipelines.config import parse_params

    raw = yaml.safe_load((REPO_ROOT / "profiles/tiny.yaml").read_text())
    raw["generator"].update(generator)
    own_method = {"rmc": "relgan", "leakgan": "leakgan"}.get(generator.get("kind"))
    if own_method is not None:  # the methods that train that kind
        raw["adversarial"]["method"] = own_method
        raw["comparison"]["methods"] = ["mle", own_method]
    return parse_params(raw)


def fake_stage(params):
    from pipelines.runtime import StageContext

    @contextmanager
    def stage(name: str, experiment: str, *, pipeline: str = "training"):
        torch.manual_seed(params.seed)  # as `pipelines.runtime.stage`
        yield StageContext(name, experiment, params, torch.device("cpu"), pipeline, tracker=Tracker())

    return stage


def pretrain(root: Path, params, monkeypatch: pytest.MonkeyPatch) -> None:
    """The synthetic experiment's oracle data and pretrained models under ``root``."""
    from pipelines.stages import oracle, pretrain_discriminator, pretrain_generator

    monkeypatch.chdir(root)
    monkeypatch.setattr(oracle, "validate_token_sequences", lambda *args, **kwargs: None)
    for module in (oracle, pretrain_generator, pretrain_discriminator):
        monkeypatch.setattr(module, "stage", fake_stage(params))
        if hasattr(module, "experiment_arg"):
            monkeypatch.setattr(module, "experiment_arg", lambda stage_name: "synthetic")
        module.main()


def run_pretraining(params, out: Path) -> torch.nn.Module:
    """`pretrain_generator.pretrain` of the synthetic experiment, writing under ``out``."""
    from pipelines.datasets import load_dataset
    from pipelines.stages import pretrain_generator

    with fake_stage(params)("pretrain_generator", "synthetic") as ctx:
        outputs = pretrain_generator.Outputs(out / "generator.pt", out / "curve.csv", None, out / "metrics.json",
                                             Path(".checkpoints/test/pretrain_generator.pt"))
        return pretrain_generator.pretrain(ctx, load_dataset(ctx.artifacts, ctx.device), outputs)


@pytest.fixture()
def repo(request: pytest.FixtureRequest, pretrained_tiny, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the pretrained experiment of the generator kind the test is parametrised
    with (``kind``), as the working directory."""
    return working_copy(pretrained_tiny(request.node.callspec.params.get("kind", "lstm")), tmp_path, monkeypatch)


def train(out: Path, method: str, params, *, discriminator: bool = True) -> torch.nn.Module:
    from pipelines.datasets import load_dataset
    from pipelines.stages import adversarial

    with fake_stage(params)("adversarial", "synthetic") as ctx:
        dataset = load_dataset(ctx.artifacts, ctx.device)
        outputs = adversarial.Outputs(out / "generator.pt", out / "discriminator.pt" if discriminator else None,
                                      out / "curve.csv", out / "curve.png", out / "metrics.json",
                                      Path(".checkpoints/test/adversarial.pt"))
        pretrained = adversarial.Pretrained(ctx.artifacts.generator_mle, ctx.artifacts.discriminator_pre)
        return adversarial.train(ctx, dataset, method, pretrained, outputs)


def with_settings(params, method: str, **settings):
    """``params`` with ``methods.<method>`` changed (nested sections merged)."""
    raw = params.model_dump()
    for key, value in settings.items():
        section = raw["methods"][method]
        section[key] = {**section[key], **value} if isinstance(value, dict) else value
    from pipelines.config import parse_params

    return parse_params(raw)


CASES = {  # id: (generator kind, method, its settings beyond the tiny profile's)
    "pg_constant": ("lstm", "pg_constant", {}),
    "rankgan": ("lstm", "rankgan", {}),
    "seqgan-partial_d": ("lstm", "seqgan", {"reward_estimator": "partial_d"}),
    "seqgan-critic": ("lstm", "seqgan", {"reward_estimator": "critic"}),
    "gsgan": ("lstm", "gsgan", {}),
    "gsgan-seqgan_cnn": ("lstm", "gsgan", {"discriminator": "seqgan_cnn"}),
    # At the profile's L = 1,000 the soft-argmax rows of the pretrained generator are exact
    # one-hots in float32 and no gradient reaches it (test_relaxed_methods.py): L = 10 here.
    "textgan": ("lstm", "textgan", {"soft_argmax_scale": 10.0}),
    "relgan-lstm": ("lstm", "relgan", {}),
    "relgan-rmc": ("rmc", "relgan", {}),
    "leakgan": ("leakgan", "leakgan", {}),
    "leakgan-code": ("leakgan", "leakgan", {"rank_order": "first_appearance", "cosine_reduction": "batch_mean",
                                            "temperature_trick": "code", "mle_every": 2}),
    "mle-leakgan": ("leakgan", "mle", {}),
}


@pytest.mark.parametrize("kind, method, settings", CASES.values(), ids=CASES.keys())
def test_each_new_method_trains_through_the_pipeline(repo: Path, kind: str, method: str, settings: dict) -> None:
    from pipelines.models import load_generator, load_saved

    params = with_settings(tiny_params(kind=kind), method, **settings)
    before = load_generator(Path("models/synthetic/generator_mle.pt"), torch.device("cpu")).state_dict()
    trained = train(repo / "out", method, params)
    assert trained.kind == kind
    assert any(not torch.equal(before[k], v) for k, v in trained.state_dict().items())
    rows = (repo / "out/curve.csv").read_text().splitlines()
    assert len(rows) == 1 + 1 + params.adversarial.batches and "nan" not in "".join(rows[1:]).lower()

    saved = load_saved(repo / "out/discriminator.pt")
    pretrained = load_saved(Path("models/synthetic/discriminator_pre.pt"))
    if "class" in saved["config"]:  # the method's own discriminator, rebuilt from its config
        config = dict(saved["config"])
        module, name = config.pop("class").rsplit(".", 1)
        rebuilt = getattr(importlib.import_module(module), name)(**config)
        rebuilt.load_state_dict(saved["state_dict"])
    else:  # the pretrained SeqGAN CNN, trained further unless the method has no discriminator
        assert saved["config"] == pretrained["config"]
        changed = any(not torch.equal(saved["state_dict"][k], v) for k, v in pretrained["state_dict"].items())
        assert changed == (method not in ("pg_constant", "mle"))


@pytest.mark.parametrize("kind", ["lstm", "rmc", "leakgan"])
def test_the_pretrained_row_is_the_pretrained_generator_unchanged(repo: Path, kind: str) -> None:
    """`pretrained` runs no adversarial batch: the stage writes the pretrained generator as it
    was, bit for bit, with one evaluated row in its curve (the start)."""
    from pipelines.models import load_generator

    params = tiny_params(kind=kind)
    before = load_generator(Path("models/synthetic/generator_mle.pt"), torch.device("cpu")).state_dict()
    saved = train(repo / "out", "pretrained", params).state_dict()
    assert saved.keys() == before.keys() and all(torch.equal(before[k], v) for k, v in saved.items())
    rows = (repo / "out/curve.csv").read_text().splitlines()
    assert len(rows) == 2 and "nll" in rows[0]


RESUMED = ["seqgan-critic", "relgan-rmc", "leakgan"]


@pytest.mark.parametrize("kind, method, settings", [CASES[case] for case in RESUMED], ids=RESUMED)
def test_a_killed_run_of_a_method_with_its_own_discriminator_resumes_exactly(
        repo: Path, monkeypatch: pytest.MonkeyPatch, kind: str, method: str, settings: dict) -> None:
    from seqgan_core.methods import METHODS

    params = with_settings(tiny_params(kind=kind), method, **settings)
    whole = train(repo / "whole", method, params)

    real_step = METHODS[method].discriminator_step

    def crashing(self, batch: int):
        if batch == 3:  # the tiny profile checkpoints every 2 of its 4 batches
            raise Crash("killed at batch 3")
        return real_step(self, batch)

    with monkeypatch.context() as patch:
        patch.setattr(METHODS[method], "discriminator_step", crashing)
        with pytest.raises(Crash):
            train(repo / "resumed", method, params)
    resumed = train(repo / "resumed", method, params)
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert (repo / "whole/curve.csv").read_text() == (repo / "resumed/curve.csv").read_text()
    whole_d, resumed_d = (torch.load(repo / run / "discriminator.pt", weights_only=True) for run in ("whole", "resumed"))
    for key, value in whole_d["state_dict"].items():
        assert torch.equal(value, resumed_d["state_dict"][key]), key


@pytest.mark.parametrize("kind", ["rmc"])  # read by the `repo` fixture: start from the RMC-pretrained experiment
def test_a_method_refuses_a_pretrained_generator_of_another_kind(repo: Path, kind: str) -> None:
    from pipelines.files import StageError

    # Params refuse seqgan with generator.kind rmc; the stage itself checks the file it loads.
    params = tiny_params(kind="rmc")
    with pytest.raises(StageError, match=r"seqgan trains lstm generators but models/synthetic/generator_mle.pt holds "
                                         r"a rmc generator: set generator.kind: lstm and re-run `dvc repro`"):
        train(repo / "out", "seqgan", params, discriminator=False)
