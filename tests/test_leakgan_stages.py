"""LeakGAN through the pipeline's stages on the tiny profile's synthetic experiment, with
``generator.kind: leakgan``: the interleaved pretraining (`pretrain_generator.pretrain`)
resumes bit-identically after a kill; `pretrain_discriminator.pretrain` writes out the D
the generator's features were trained against, and `adversarial.train` with method
leakgan starts from exactly that D and its Adam state; the trained generator's checkpoint
loads through `seqgan_core.generators.from_checkpoint` and the packaged (served) model
samples as the trained generator does; the 1.5-sharpened figure is added for LeakGAN
generators only.

In-process and without MLflow or DVC, as tests/test_method_stages.py (whose helpers it uses).
"""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from conftest import working_copy
from test_method_stages import Crash, fake_stage, run_pretraining, tiny_params, train

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture()
def repo(pretrained_tiny, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return working_copy(pretrained_tiny("leakgan"), tmp_path, monkeypatch)


@pytest.mark.parametrize("crash_in", ["discriminator_pass", "pretrain_generator_epoch"])
def test_a_killed_interleaved_pretraining_resumes_exactly(repo: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture, crash_in: str) -> None:
    """Killed in the second round's D pass (step 4 of 6), or in the first round's second
    epoch (step 3): the re-run resumes after the last finished step."""
    from pipelines.stages import pretrain_generator

    params = tiny_params(kind="leakgan")
    assert params.pretrain_generator.leakgan.model_dump() == {"rounds": 2, "d_passes": 1, "g_epochs": 2}
    run_pretraining(params, repo / "whole")
    real = getattr(pretrain_generator, crash_in)
    calls = []

    def crashing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise Crash(f"killed in the second {crash_in}")
        return real(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(pretrain_generator, crash_in, crashing)
        with pytest.raises(Crash):
            run_pretraining(params, repo / "resumed")
    capsys.readouterr()
    run_pretraining(params, repo / "resumed")
    assert f"(step {3 if crash_in == 'discriminator_pass' else 2})" in capsys.readouterr().err
    whole, resumed = (torch.load(repo / run / "generator.pt", weights_only=True) for run in ("whole", "resumed"))
    for key, value in whole["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key
    assert whole["discriminator_metrics"] == resumed["discriminator_metrics"]
    for a, b in zip(whole["discriminator_optimizer"]["state"].values(),
                    resumed["discriminator_optimizer"]["state"].values()):
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert (repo / "whole/curve.csv").read_text() == (repo / "resumed/curve.csv").read_text()
    header, *rows = (repo / "whole/curve.csv").read_text().splitlines()
    assert header.startswith("epoch,round,train_nll,manager_loss,d_loss,d_accuracy") and len(rows) == 4


def test_adversarial_training_starts_from_the_interleaved_discriminator(repo: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.models import load_saved
    from seqgan_core.methods.leakgan import LeakGAN

    generator_file, pre = load_saved(Path("models/synthetic/generator_mle.pt")), \
        load_saved(Path("models/synthetic/discriminator_pre.pt"))
    extractor = {k.removeprefix("feature_extractor."): v for k, v in generator_file["state_dict"].items()
                 if k.startswith("feature_extractor.")}
    assert extractor.keys() == pre["state_dict"].keys()
    assert all(torch.equal(extractor[k], v) for k, v in pre["state_dict"].items())
    assert pre["optimizer"]["state"][0]["step"] == generator_file["discriminator_optimizer"]["state"][0]["step"] > 0

    params = tiny_params(kind="leakgan")
    seen = {}
    real_step = LeakGAN.generator_step

    def first_step(self, batch: int):
        if batch == 0:  # what the method starts from
            seen["d"] = {k: v.clone() for k, v in self.discriminator.state_dict().items()}
            seen["extractor"] = {k: v.clone() for k, v in self.generator.feature_extractor.state_dict().items()}
            seen["d_steps"] = self.d_optimizer.state_dict()["state"][0]["step"].item()
            seen["d_lr"] = self.d_optimizer.param_groups[0]["lr"]
        return real_step(self, batch)

    monkeypatch.setattr(LeakGAN, "generator_step", first_step)
    trained = train(repo / "out", "leakgan", params)
    assert all(torch.equal(seen["d"][k], v) for k, v in pre["state_dict"].items())
    assert all(torch.equal(seen["extractor"][k], v) for k, v in pre["state_dict"].items())
    assert seen["d_steps"] == pre["optimizer"]["state"][0]["step"]  # D's Adam carries on
    assert seen["d_lr"] == params.methods.leakgan.d_lr
    adv = load_saved(repo / "out/discriminator.pt")  # the D trained further, and the generator reading it
    assert any(not torch.equal(adv["state_dict"][k], v) for k, v in pre["state_dict"].items())
    for k, v in adv["state_dict"].items():
        assert torch.equal(trained.feature_extractor.state_dict()[k].cpu(), v), k


def test_a_leakgan_generator_serves_as_trained(repo: Path) -> None:
    """The trained checkpoint alone (generator, its copy of D, config) rebuilds the
    generator, and the packaged pyfunc model samples exactly what it samples."""
    pd = pytest.importorskip("pandas")
    pytest.importorskip("mlflow")
    from pipelines.registry.model import generator_model_class
    from seqgan_core.generators import from_checkpoint

    trained = train(repo / "out", "leakgan", tiny_params(kind="leakgan"))
    checkpoint = torch.load(repo / "out/generator.pt", weights_only=True)
    assert checkpoint["kind"] == "leakgan" and set(checkpoint) == {"kind", "config", "state_dict"}
    rebuilt = from_checkpoint(checkpoint)
    assert torch.equal(rebuilt.sample(50, rng=torch.Generator().manual_seed(3)),
                       trained.sample(50, rng=torch.Generator().manual_seed(3)))
    served = generator_model_class()()
    served.load_context(SimpleNamespace(artifacts={"generator": str(repo / "out/generator.pt")}))
    out = served.predict(None, pd.DataFrame({"n": [7], "temperature": [0.8], "seed": [11]}))
    expected = trained.sample(7, rng=torch.Generator().manual_seed(11), temperature=0.8)
    assert [[int(i) for i in row.split()] for row in out["sequence"]] == expected.tolist()


def test_the_sharpened_figure_is_labelled_and_leakgans_alone(repo: Path) -> None:
    from pipelines.datasets import load_dataset
    from pipelines.models import load_generator
    from pipelines.scoring import Scorer
    from seqgan_core import Generator, sequence_nll

    params = tiny_params(kind="leakgan")
    with fake_stage(params)("evaluate", "synthetic") as ctx:
        dataset = load_dataset(ctx.artifacts, ctx.device)
    scorer = Scorer(dataset, params)
    generator = load_generator(Path("models/synthetic/generator_mle.pt"), torch.device("cpu"))
    scores = scorer.code_sharpened(generator, torch.Generator().manual_seed(5))
    assert set(scores) == {"nll_test_sharpened_1.5", "nll_oracle_sharpened_1.5"}
    samples = generator.sample(params.evaluate.nll_samples, rng=torch.Generator().manual_seed(5), temperature=1 / 1.5)
    assert scores["nll_oracle_sharpened_1.5"] == dataset.oracle.nll(samples)
    assert scores["nll_test_sharpened_1.5"] == sequence_nll(generator, dataset.test, temperature=1 / 1.5)
    assert "_sharpened_1.5" in scorer.settings()["sharpened"]

    lstm_params, lstm = tiny_params(), Generator(dataset.vocab_size, 8, 8, dataset.seq_len)
    assert Scorer(dataset, lstm_params).code_sharpened(lstm, torch.Generator()) == {}
    assert "sharpened" not in Scorer(dataset, lstm_params).settings()
