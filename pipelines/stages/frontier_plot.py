"""Stage `frontier@<experiment>` (comparison/dvc.yaml): the quality-diversity frontier plot.

From comparison/frontier.csv and calibration.json: every method's temperature sweep, the
mean over seeds with one sd of spread on both axes, temperature 1 circled, the data's own
point (calibration) as a star. Writes comparison/frontier_<experiment>.png and logs it to
MLflow (experiment `seqgan-comparison`).

    python -m pipelines.stages.frontier_plot <experiment>
"""
from __future__ import annotations

import csv

import numpy as np

from ..config import load_params
from ..contract import ComparisonReport, better_direction, kind_of
from ..files import read_json, require
from ..plots import FrontierCurve, plot_frontier
from ..runtime import experiment_arg, run_main
from .compare_report import label


def curves(rows: list[dict], experiment: str, methods: list[str], x: str, y: str) -> dict[str, FrontierCurve]:
    out = {}
    for method in methods:
        mine = [r for r in rows if r["experiment"] == experiment and r["method"] == method]
        if not mine:  # every cell of the method failed on a work pool (see compare_report.collect)
            continue
        temperatures = sorted({float(r["temperature"]) for r in mine})
        at = [[r for r in mine if float(r["temperature"]) == t] for t in temperatures]
        xs, ys = ([np.array([float(r[k]) for r in points]) for points in at] for k in (x, y))
        out[method] = FrontierCurve(temperatures, [v.mean() for v in xs], [v.mean() for v in ys],
                                    [v.std(ddof=1) if len(v) > 1 else 0.0 for v in xs],
                                    [v.std(ddof=1) if len(v) > 1 else 0.0 for v in ys])
    return out


def main() -> None:
    from .. import tracking

    experiment = experiment_arg("frontier_plot")
    params, report = load_params(), ComparisonReport()
    with require(report.frontier_csv).open() as f:
        rows = list(csv.DictReader(f))
    x, y = kind_of(experiment).frontier_axes(params)
    data = read_json(report.calibration(experiment))
    arrows = {"lower": "lower is better", "higher": "higher is better"}
    png = report.frontier_png(experiment)
    plot_frontier(png, curves(rows, experiment, params.comparison.methods, x, y),
                  title=f"Quality-diversity over temperatures ({experiment}, {len(params.comparison.seeds)} seeds)",
                  xlabel=f"{label(x)}: diversity ({arrows[better_direction(x)]})",
                  ylabel=f"{label(y)}: quality ({arrows[better_direction(y)]})", star=(data[x], data[y], "the data"))
    with tracking.summary_run("seqgan-comparison", f"frontier-{experiment}-{tracking.pipeline_key('comparison')}",
                              {}, {"seqgan.dvc_stage": f"comparison/dvc.yaml:frontier@{experiment}"}) as tracker:
        tracker.log_artifact(png, "comparison")


if __name__ == "__main__":
    run_main(main)
