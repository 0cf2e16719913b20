"""The DVC pipeline end to end on the tiny profile: real `dvc repro`, real MLflow, real GX."""
from __future__ import annotations

import csv
import json
import math
import random
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import copy_project, dvc, stage_env

pytestmark = pytest.mark.slow

STAGES = ("pretrain_generator", "pretrain_discriminator", "adversarial", "evaluate")


def ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def test_repro_writes_every_output(pipeline_repo: Path) -> None:
    synthetic = json.loads((pipeline_repo / "metrics/synthetic/evaluate.json").read_text())
    for label in ("mle", "adversarial"):
        assert math.isfinite(synthetic[label]["nll_oracle"]) and math.isfinite(synthetic[label]["nll_test"])
    assert synthetic["reference"]["nll_oracle_data"] < synthetic["reference"]["nll_oracle_uniform"]
    real = json.loads((pipeline_repo / "metrics/real/evaluate.json").read_text())
    for n in (2, 3, 4, 5):
        assert 0.0 <= real["adversarial"][f"bleu{n}"] <= 1.0
    assert real["settings"]["self_bleu_sample_size"] == 50
    # The reference is the data scored as the generators are (before: empty for a corpus).
    assert 0.0 < real["reference"]["data"]["bleu2"] <= 1.0 and 0.0 < real["reference"]["data"]["self_bleu2"] <= 1.0
    assert synthetic["reference"]["data"]["nll_oracle"] == pytest.approx(synthetic["reference"]["nll_oracle_data"])
    for experiment, metric in (("synthetic", "nll_oracle"), ("real", "bleu2")):
        with (pipeline_repo / f"plots/{experiment}/frontier.csv").open() as f:
            rows = list(csv.DictReader(f))
        assert [(r["generator"], float(r["temperature"])) for r in rows] == [
            (g, t) for g in ("mle", "adversarial") for t in (0.5, 1.0, 1.5)]
        assert all(math.isfinite(float(r[metric])) and math.isfinite(float(r["nll_test"])) for r in rows)
    for experiment in ("synthetic", "real"):
        assert (pipeline_repo / f"plots/{experiment}/nll_curve.png").stat().st_size > 1000
        assert "## adversarial" in (pipeline_repo / f"reports/{experiment}/samples.md").read_text(encoding="utf-8")
    assert "quatrains5" not in (pipeline_repo / "reports/synthetic/samples.md").read_text()
    status = dvc(pipeline_repo, "status", "dvc.yaml")  # the training pipeline (the comparison is separate)
    assert "up to date" in status.stdout.lower()


def test_mlflow_has_a_parent_run_with_one_nested_run_per_stage(pipeline_repo: Path, monkeypatch) -> None:
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", stage_env(pipeline_repo)["MLFLOW_TRACKING_URI"])
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("seqgan-synthetic")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    children = {r.data.tags["seqgan.stage"]: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id}
    assert set(children) == {"oracle", *STAGES}
    assert parents[0].data.params["methods.seqgan.rollout.n_rollouts"] == "2"
    history = client.get_metric_history(children["pretrain_generator"].info.run_id, "train_nll")
    assert [m.step for m in history] == [1, 2, 3]
    assert children["evaluate"].data.tags["mlflow.source.git.commit"] != "unknown"


def test_registered_challenger_loads_and_generates(pipeline_repo: Path, monkeypatch) -> None:
    import mlflow
    import pandas as pd

    monkeypatch.setenv("MLFLOW_TRACKING_URI", stage_env(pipeline_repo)["MLFLOW_TRACKING_URI"])
    model = mlflow.pyfunc.load_model("models:/seqgan-generator@challenger")
    out = model.predict(pd.DataFrame({"n": [4], "temperature": [1.0], "seed": [0]}))
    assert len(out) == 4
    assert all(0 <= int(t) < 60 for seq in out["sequence"] for t in seq.split())
    poems = mlflow.pyfunc.load_model("models:/seqgan-generator-quatrains5@challenger")
    text = poems.predict(pd.DataFrame({"n": [2], "seed": [1]}))["text"]
    assert all(isinstance(t, str) and t for t in text)


def test_param_change_reruns_only_downstream_stages(pipeline_repo: Path, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    shutil.copytree(pipeline_repo, root, symlinks=True)  # reproduced once for the session
    assert ran(dvc(root, "repro").stdout) == set()  # a copy is up to date
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["adversarial"]["batches"] = 3
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    second = dvc(root, "repro")
    assert ran(second.stdout) == {f"{s}@{e}" for s in ("adversarial", "evaluate") for e in ("synthetic", "real")}

    params["corpus"]["vocab_size"] = 250  # only the real experiment's chain depends on the corpus
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    third = dvc(root, "repro")
    assert ran(third.stdout) == {"preprocess", *(f"{s}@real" for s in STAGES)}


def write_oracle_weights(path: Path, seed: int, vocab: int = 60, emb: int = 8, hidden: int = 8) -> None:
    """Random weights in the paper's npz format, at the tiny profile's oracle sizes."""
    rng = np.random.default_rng(seed)
    shapes = {"embedding": (vocab, emb), "W_out": (hidden, vocab), "b_out": (vocab,)}
    for gate in "ifoc":
        shapes |= {f"W_{gate}": (emb, hidden), f"U_{gate}": (hidden, hidden), f"b_{gate}": (hidden,)}
    np.savez(path, **{name: rng.standard_normal(shape).astype(np.float32) for name, shape in shapes.items()})


def test_new_oracle_weights_rerun_the_oracle_stage(pipeline_repo: Path, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    shutil.copytree(pipeline_repo, root, symlinks=True)
    weights = root / "data/oracle/tiny.npz"
    write_oracle_weights(weights, seed=1)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["oracle"]["weights_file"] = "data/oracle/tiny.npz"
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert "oracle" in ran(dvc(root, "repro", "oracle").stdout)
    first = (root / "data/synthetic/train.npy").read_bytes()

    write_oracle_weights(weights, seed=2)  # same file name and params, new content
    assert "data/oracle" in dvc(root, "status", "oracle").stdout
    assert ran(dvc(root, "repro", "oracle").stdout) == {"oracle"}
    assert (root / "data/synthetic/train.npy").read_bytes() != first


def test_invalid_param_stops_the_stage_naming_key_and_value(tmp_path: Path) -> None:
    root = copy_project(tmp_path / "repo")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["oracle"]["vocab_size"] = -5
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = dvc(root, "repro", "oracle", check=False)
    assert result.returncode != 0
    assert "oracle.vocab_size: value -5 is not allowed" in result.stdout + result.stderr
    assert not (root / "data/synthetic").exists()


def test_corrupt_corpus_fails_the_gate_and_keeps_earlier_outputs(tmp_path: Path) -> None:
    root = copy_project(tmp_path / "repo", corpus_lines=300)
    dvc(root, "repro", "pretrain_generator@real")
    model = (root / "models/real/generator_mle.pt").read_bytes()
    # A corrupted corpus (e.g. a wrong encoding): random characters, so the vocabulary
    # built on the training split covers only a sliver of the tokens.
    noise = random.Random(0)
    lines = ["".join(chr(noise.randint(0x4E00, 0x9FFF)) for _ in range(15)) for _ in range(300)]
    (root / "data/corpora/quatrains5.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = dvc(root, "repro", "preprocess", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "coverage" in output.lower() and "corpus.vocab_size" in output
    assert (root / "models/real/generator_mle.pt").read_bytes() == model
    dvc(root, "checkout", "data/real")  # the last good data are still in the DVC cache
    assert (root / "data/real/train.npy").exists()
