"""The method comparison (comparison/dvc.yaml) on the tiny profile: real `dvc repro` of
every method on both experiments, one table, one plot, all tracked in MLflow."""
from __future__ import annotations

import csv
import json
import math
import re
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import dvc, stage_env

pytestmark = pytest.mark.slow

METHODS = ["random", "mle", "scheduled_sampling", "pg_bleu", "seqgan", "maligan_basic", "maligan_full"]


@pytest.fixture(scope="module")
def comparison_repo(pipeline_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the reproduced tiny pipeline (so other tests see it unchanged), with the
    comparison run on top."""
    root = tmp_path_factory.mktemp("comparison") / "repo"
    shutil.copytree(pipeline_repo, root, symlinks=True)
    result = dvc(root, "repro", "comparison/dvc.yaml")
    ran = set(re.findall(r"Running stage '([^']+)'", result.stdout))
    assert ran == {f"comparison/dvc.yaml:compare@{e}-{m}" for e in ("synthetic", "real") for m in METHODS} | {
        "comparison/dvc.yaml:report"}, "the training stages were up to date and must not re-run"
    return root


def table(root: Path) -> dict[str, dict[str, str]]:
    with (root / "comparison/results.csv").open() as f:
        return {row["method"]: row for row in csv.DictReader(f)}


def test_one_row_per_method_with_every_experiments_scores(comparison_repo: Path) -> None:
    rows = table(comparison_repo)
    assert list(rows) == METHODS
    for row in rows.values():
        assert math.isfinite(float(row["synthetic.nll_oracle"])) and math.isfinite(float(row["real.nll_test"]))
        for n in (2, 3, 4, 5):
            assert 0.0 <= float(row[f"real.bleu{n}"]) <= 1.0 and 0.0 <= float(row[f"real.self_bleu{n}"]) <= 1.0
    assert float(rows["seqgan"]["published.nll_oracle"]) == 8.736
    md = (comparison_repo / "comparison/results.md").read_text(encoding="utf-8")
    assert all(f"| {m} |" in md for m in METHODS) and "NLL-oracle" in md and "BLEU-2" in md
    assert (comparison_repo / "comparison/nll_curves.png").stat().st_size > 5000


def test_the_untrained_generator_is_the_worst_on_nll_oracle(comparison_repo: Path) -> None:
    rows = table(comparison_repo)
    random_nll = float(rows["random"]["synthetic.nll_oracle"])
    assert all(random_nll > float(rows[m]["synthetic.nll_oracle"]) for m in METHODS if m != "random")


def test_seqgan_row_repeats_the_training_pipelines_evaluate_exactly(comparison_repo: Path) -> None:
    rows = table(comparison_repo)
    for experiment in ("synthetic", "real"):
        evaluated = json.loads((comparison_repo / f"metrics/{experiment}/evaluate.json").read_text())["adversarial"]
        for metric, value in evaluated.items():
            assert float(rows["seqgan"][f"{experiment}.{metric}"]) == pytest.approx(value, rel=1e-12), metric


def test_methods_that_train_move_away_from_the_mle_start(comparison_repo: Path) -> None:
    for method in METHODS[1:]:
        curve = (comparison_repo / f"comparison/runs/synthetic/{method}/curve.csv").read_text().splitlines()
        assert len(curve) == 1 + 1 + 4  # header, batch 0, the tiny profile's 4 batches
        scores = json.loads((comparison_repo / f"comparison/runs/synthetic/{method}/scores.json").read_text())
        assert scores["method"] == method and scores["settings"]["nll_oracle_samples"] > 0
    maligan = (comparison_repo / "comparison/runs/synthetic/maligan_full/curve.csv").read_text()
    assert "prefix_len" in maligan.splitlines()[0]


def test_everything_is_tracked_in_mlflow(comparison_repo: Path, monkeypatch) -> None:
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", stage_env(comparison_repo)["MLFLOW_TRACKING_URI"])
    client = mlflow.MlflowClient()
    summary = client.search_runs([client.get_experiment_by_name("seqgan-comparison").experiment_id])
    assert len(summary) == 1
    artifacts = {a.path for a in client.list_artifacts(summary[0].info.run_id, "comparison")}
    assert artifacts == {"comparison/results.md", "comparison/results.csv", "comparison/nll_curves.png"}
    assert "synthetic.nll_oracle" in {k.split(".", 1)[1] for k in summary[0].data.metrics if k.startswith("seqgan.")}
    runs = client.search_runs([client.get_experiment_by_name("seqgan-synthetic").experiment_id])
    parent = next(r for r in runs if r.info.run_name.startswith("comparison-"))
    nested = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.data.tags["seqgan.method"] for r in nested) == sorted(METHODS)


def test_changing_one_methods_settings_reruns_the_comparison_not_training(comparison_repo: Path) -> None:
    params = yaml.safe_load((comparison_repo / "params.yaml").read_text())
    params["comparison"]["methods"] = ["mle", "seqgan"]
    (comparison_repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = dvc(comparison_repo, "repro", "comparison/dvc.yaml")
    assert set(re.findall(r"Running stage '([^']+)'", result.stdout)) == {"comparison/dvc.yaml:report"}
    assert list(table(comparison_repo)) == ["mle", "seqgan"]
