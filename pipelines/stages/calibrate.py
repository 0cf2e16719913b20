"""Stage `calibrate@<experiment>` (comparison/dvc.yaml): the data scored exactly as the
generators are (`pipelines.scoring.Scorer.calibration`): what a perfect generator would
score, the star of every frontier plot and the row the published numbers are read against.
Writes comparison/calibration/<experiment>.json.

    python -m pipelines.stages.calibrate <experiment>
"""
from __future__ import annotations

from ..config import load_params
from ..contract import ComparisonReport, kind_of
from ..datasets import load_dataset
from ..files import write_json
from ..runtime import experiment_arg, resolve_device, run_main
from ..scoring import Scorer


def main() -> None:
    experiment = experiment_arg("calibrate")
    params = load_params()
    dataset = load_dataset(kind_of(experiment).artifacts(), resolve_device(params.device))
    write_json(ComparisonReport().calibration(experiment), Scorer(dataset, params).calibration())


if __name__ == "__main__":
    run_main(main)
