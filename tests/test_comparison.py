"""The comparison sweep (comparison/dvc.yaml) on the tiny profile: a real `seqgan sweep` of
2 seeds x {mle, seqgan} x both experiments, its statistics, frontiers and calibration, all
tracked in MLflow, and its stage graph re-running only what a change touches."""
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

EXPERIMENTS, METHODS, SEEDS = ("synthetic", "real"), ("mle", "seqgan"), (0, 1)
# What conftest's `sweep_repo` (`seqgan sweep` on the tiny profile) runs.
SWEEP = ({f"comparison/dvc.yaml:pretrain@{e}-{s}" for e in EXPERIMENTS for s in SEEDS}
         | {f"comparison/dvc.yaml:train@{e}-{m}-{s}" for e in EXPERIMENTS for m in METHODS for s in SEEDS}
         | {f"comparison/dvc.yaml:{stage}@{e}" for stage in ("calibrate", "frontier") for e in EXPERIMENTS}
         | {"comparison/dvc.yaml:report"})


def ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def test_only_the_sweep_ran(sweep_repo) -> None:
    assert ran(sweep_repo[1]) == SWEEP, "only the sweep runs: the data stages were up to date"


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_progress_is_printed(sweep_repo) -> None:
    _, out = sweep_repo
    total = len(SWEEP) + 2  # and the data stages, unchanged
    assert re.search(rf"\[sweep {total}/{total}\] comparison/dvc.yaml:\S+ \(running\); [0-9.]+ min so far", out)
    assert f"[sweep 1/{total}] oracle (unchanged)" in out or f"[sweep 1/{total}] preprocess (unchanged)" in out
    assert "sweep done: comparison/results.md" in out


def test_summary_has_a_row_per_experiment_method_and_metric(sweep_repo) -> None:
    root, _ = sweep_repo
    rows = read_csv(root / "comparison/summary.csv")
    assert list(rows[0]) == ["experiment", "method", "metric", "n_seeds", "mean", "sd", "ci_low", "ci_high",
                             "diff_vs_mle", "diff_ci_low", "diff_ci_high", "verdict"]
    expected = {("synthetic", m, k) for m in METHODS for k in ("nll_oracle", "nll_test")} | {
        ("real", m, k) for m in METHODS for k in ("nll_test", *(f"{b}{n}" for b in ("bleu", "self_bleu") for n in (2, 3, 4, 5)))}
    assert {(r["experiment"], r["method"], r["metric"]) for r in rows} == expected
    for r in rows:
        assert r["n_seeds"] == "2" and float(r["ci_low"]) <= float(r["mean"]) <= float(r["ci_high"])
        assert r["verdict"] == "baseline" if r["method"] == "mle" else r["verdict"] in ("better", "worse", "no difference")
    assert "Student t, 95%" in (root / "comparison/summary.md").read_text()


def test_frontier_has_every_cell_at_every_temperature(sweep_repo) -> None:
    root, _ = sweep_repo
    rows = read_csv(root / "comparison/frontier.csv")
    assert list(rows[0])[:4] == ["experiment", "method", "seed", "temperature"]
    assert len(rows) == len(EXPERIMENTS) * len(METHODS) * len(SEEDS) * 3  # the tiny profile's 3 temperatures
    synthetic = [r for r in rows if r["experiment"] == "synthetic"]
    assert all(math.isfinite(float(r["nll_oracle"])) and math.isfinite(float(r["nll_test"])) for r in synthetic)
    for experiment in EXPERIMENTS:
        assert (root / f"comparison/frontier_{experiment}.png").stat().st_size > 5000


def test_the_cell_at_the_pipelines_seed_repeats_its_evaluate_exactly(sweep_repo) -> None:
    """Seed 0 is the training pipeline's seed and SeqGAN its method: the sweep's cell pretrains
    with the same code and streams, so it reproduces evaluate's scores and frontier exactly."""
    root, _ = sweep_repo
    for experiment in EXPERIMENTS:
        cell = json.loads((root / f"comparison/runs/{experiment}/seed0/seqgan/scores.json").read_text())
        evaluated = json.loads((root / f"metrics/{experiment}/evaluate.json").read_text())["adversarial"]
        assert cell["scores"] == pytest.approx(evaluated, rel=1e-12)
        pipeline = [r for r in read_csv(root / f"plots/{experiment}/frontier.csv") if r["generator"] == "adversarial"]
        for mine, theirs in zip(cell["frontier"], pipeline, strict=True):
            assert all(mine[k] == pytest.approx(float(theirs[k]), rel=1e-12) for k in mine)


def test_calibration_scores_the_data_as_generators_are_scored(sweep_repo) -> None:
    from seqgan_core.bleu import BLEU, SelfBLEU
    from seqgan_core.corpus import strip_eos
    import numpy as np

    root, _ = sweep_repo
    real = json.loads((root / "comparison/calibration/real.json").read_text())
    train, test = (np.load(root / f"data/real/{split}.npy") for split in ("train", "test"))
    params = yaml.safe_load((root / "params.yaml").read_text())["evaluate"]
    bleu = BLEU(strip_eos(test.tolist()), max_n=5)
    assert real["bleu2"] == pytest.approx(bleu.corpus_mean(strip_eos(train[: params["bleu_hypotheses"]].tolist()), 2))
    self_bleu = SelfBLEU(strip_eos(train.tolist()), max_n=5, sample_size=params["self_bleu_size"], seed=0)
    assert real["self_bleu3"] == pytest.approx(self_bleu.mean(3))
    synthetic = json.loads((root / "comparison/calibration/synthetic.json").read_text())
    reference = json.loads((root / "metrics/synthetic/evaluate.json").read_text())["reference"]
    assert synthetic["nll_oracle"] == pytest.approx(reference["nll_oracle_data"])
    results = (root / "comparison/results.md").read_text(encoding="utf-8")
    assert results.startswith("# Method comparison\n\n**The answer** (tiny profile; 2 training seeds [0, 1]")
    assert "*data (calibration)*" in results and "*published BLEU-2*" in results


def test_everything_is_tracked_in_mlflow(sweep_repo, monkeypatch) -> None:
    import mlflow

    root, _ = sweep_repo
    monkeypatch.setenv("MLFLOW_TRACKING_URI", stage_env(root)["MLFLOW_TRACKING_URI"])
    client = mlflow.MlflowClient()
    summary = client.search_runs([client.get_experiment_by_name("seqgan-comparison").experiment_id])
    report = next(r for r in summary if r.info.run_name.startswith("comparison-"))
    artifacts = {a.path for a in client.list_artifacts(report.info.run_id, "comparison")}
    assert artifacts == {f"comparison/{n}" for n in ("summary.csv", "summary.md", "frontier.csv", "results.md",
                                                     "nll_curves.png")}
    assert {r.info.run_name.split("-")[1] for r in summary if r.info.run_name.startswith("frontier-")} == set(EXPERIMENTS)
    runs = client.search_runs([client.get_experiment_by_name("seqgan-synthetic").experiment_id])
    cells = [r for r in runs if r.data.tags.get("seqgan.stage") == "compare"]
    assert sorted((r.data.tags["seqgan.method"], r.data.tags["seqgan.seed"]) for r in cells) == sorted(
        (m, str(s)) for m in METHODS for s in SEEDS)


def test_a_changed_seed_or_method_reruns_only_its_cells(sweep_repo, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    shutil.copytree(sweep_repo[0], root, symlinks=True)  # test_cluster compares its cells with the original
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["comparison"]["experiments"] = ["synthetic"]  # the real experiment out (half the cost)
    params["comparison"]["seeds"] = [0, 2]  # seed 1 out, seed 2 in
    params["methods"]["seqgan"]["rollout"]["n_rollouts"] = 3  # SeqGAN's own settings only
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = dvc(root, "repro", "comparison/dvc.yaml")
    seed2 = {"comparison/dvc.yaml:pretrain@synthetic-2"} | {f"comparison/dvc.yaml:train@synthetic-{m}-2" for m in METHODS}
    seqgan0 = {"comparison/dvc.yaml:train@synthetic-seqgan-0"}
    after = {"comparison/dvc.yaml:report", "comparison/dvc.yaml:frontier@synthetic"}
    assert ran(result.stdout) == seed2 | seqgan0 | after  # not seed 0's pretraining, not its MLE cells
    rows = read_csv(root / "comparison/frontier.csv")
    assert {r["seed"] for r in rows} == {"0", "2"} and {r["experiment"] for r in rows} == {"synthetic"}
