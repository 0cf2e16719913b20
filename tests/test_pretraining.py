"""MLE pretraining (`pipelines.stages.pretrain_generator.pretrain`). ``keep: best_valid``:
the epochs train on the training split less a held-out share, and the generator kept is
the one with the lowest NLL on that share; a killed run resumes to the same choice;
LeakGAN's interleaved pretraining refuses it. A run whose weights explode stops before it
writes anything.

In-process on the tiny synthetic experiment, as tests/test_method_stages.py (whose helpers
it uses).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from conftest import REPO_ROOT, working_copy
from test_method_stages import Crash, run_pretraining, tiny_params

pytestmark = pytest.mark.usefixtures("single_thread")


def test_hold_out_sets_aside_a_seeded_share_and_keeps_the_rest_in_order() -> None:
    from seqgan_core.train import hold_out

    data = torch.arange(50).unsqueeze(1).repeat(1, 3)
    rest, held = hold_out(data, 0.1, torch.Generator().manual_seed(4))
    assert len(held) == 5 and len(rest) == 45
    assert sorted(torch.cat([rest, held])[:, 0].tolist()) == list(range(50))  # a partition of the rows
    assert rest[:, 0].tolist() == sorted(rest[:, 0].tolist())
    again, held_again = hold_out(data, 0.1, torch.Generator().manual_seed(4))
    assert torch.equal(held, held_again) and torch.equal(rest, again)
    assert not torch.equal(held, hold_out(data, 0.1, torch.Generator().manual_seed(5))[1])
    assert len(hold_out(data[:3], 0.01, torch.Generator())[1]) == 1  # never nothing, never everything
    with pytest.raises(ValueError, match="at least 2"):
        hold_out(data[:1], 0.5, torch.Generator())


def selecting_params(**pretraining):
    """The tiny profile with a generator large enough to overfit its 512 sequences within
    the epochs: best_valid has an epoch to choose."""
    params = tiny_params(emb_dim=64, hidden_dim=64)
    settings = {"keep": "best_valid", "valid_fraction": 0.2, "epochs": 8, "lr": 0.05, **pretraining}
    return params.model_copy(update={"pretrain_generator": params.pretrain_generator.model_copy(update=settings)})


@pytest.fixture()
def repo(pretrained_tiny, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return working_copy(pretrained_tiny("lstm"), tmp_path, monkeypatch)


def curve(path: Path) -> list[dict[str, str]]:
    header, *rows = path.read_text().splitlines()
    return [dict(zip(header.split(","), row.split(","))) for row in rows]


def test_best_valid_keeps_the_epoch_with_the_lowest_held_out_nll(repo: Path) -> None:
    from pipelines.contract import Artifacts
    from pipelines.datasets import load_dataset
    from pipelines.runtime import seeded_rng
    from seqgan_core import sequence_nll
    from seqgan_core.train import hold_out

    params = selecting_params()
    generator = run_pretraining(params, repo / "out")
    rows = curve(repo / "out/curve.csv")
    valid_nll = [float(row["valid_nll"]) for row in rows]
    kept = valid_nll.index(min(valid_nll)) + 1
    assert 1 < kept < len(rows) == 8  # it overfits: the last epoch is not the best one
    metrics = json.loads((repo / "out/metrics.json").read_text())
    assert metrics["kept_epoch"] == kept and metrics["valid_nll"] == min(valid_nll)
    assert {"nll_test", "nll_oracle"} <= metrics.keys()
    saved = torch.load(repo / "out/generator.pt", weights_only=True)
    assert saved["kept_epoch"] == kept

    # The kept generator is the one that scored that NLL on the held-out rows, and they were
    # not trained on (fewer batches an epoch than the whole split gives).
    dataset = load_dataset(Artifacts("synthetic"), torch.device("cpu"))
    _, held = hold_out(dataset.train, 0.2, seeded_rng(params.seed, "pretrain_generator", "valid_split"))
    assert sequence_nll(generator, held) == min(valid_nll)
    assert metrics["nll_test"] == pytest.approx(sequence_nll(generator, dataset.test))


def test_a_killed_selecting_pretraining_resumes_to_the_same_choice(repo: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture) -> None:
    from pipelines.stages import pretrain_generator

    params = selecting_params()
    whole = run_pretraining(params, repo / "whole")
    real, calls = pretrain_generator.mle_epoch, []

    def crashing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 6:  # past the best epoch of the uninterrupted run
            raise Crash("killed in the sixth epoch")
        return real(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(pretrain_generator, "mle_epoch", crashing)
        with pytest.raises(Crash):
            run_pretraining(params, repo / "resumed")
    capsys.readouterr()
    resumed = run_pretraining(params, repo / "resumed")
    assert "(step 5)" in capsys.readouterr().err
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert (repo / "whole/curve.csv").read_text() == (repo / "resumed/curve.csv").read_text()


def test_last_trains_on_the_whole_split_and_records_no_held_out_nll(repo: Path) -> None:
    params = selecting_params(keep="last")
    run_pretraining(params, repo / "out")
    rows = curve(repo / "out/curve.csv")
    assert len(rows) == 8 and "valid_nll" not in rows[0]
    assert "kept_epoch" not in torch.load(repo / "out/generator.pt", weights_only=True)


def test_leakgan_pretraining_refuses_best_valid() -> None:
    from pipelines.config import ParamsError, parse_params

    raw = yaml.safe_load((REPO_ROOT / "profiles/tiny.yaml").read_text())
    raw["generator"]["kind"] = "leakgan"
    raw["adversarial"]["method"] = "leakgan"
    raw["comparison"]["methods"] = ["mle", "leakgan"]
    raw["pretrain_generator"]["keep"] = "best_valid"
    with pytest.raises(ParamsError, match="keep: best_valid chooses among MLE epochs.*set keep: last"):
        parse_params(raw)


def test_exploding_weights_stop_pretraining_before_anything_is_written(repo: Path) -> None:
    # With a huge rate every loss stayed finite (NLL-test 5.6e31) and the stage exited 0,
    # replacing the generator with weights of 4e30 for the later stages to trip over.
    from seqgan_core.train import TrainingDiverged

    params = selecting_params(keep="last", lr=1e30)
    with pytest.raises(TrainingDiverged, match="Lower pretrain_generator.lr or generator.init_std"):
        run_pretraining(params, repo / "out")
    assert not (repo / "out").exists()
