"""Stage `report` (comparison/dvc.yaml): one table and one plot of every method.

Reads comparison/runs/<experiment>/<method>/{scores.json,curve.csv} for the experiments and
methods in params `comparison` and writes
- comparison/results.csv and comparison/results.md: a row per method, the scores of
  `evaluate` per experiment, with the published numbers beside them for reference;
- comparison/nll_curves.png: NLL-oracle against adversarial batch for every method
  (NLL-test of the corpus when the synthetic experiment is not compared);
and logs all of it to MLflow, experiment `seqgan-comparison`.
"""
from __future__ import annotations

from pathlib import Path

from ..config import Params, load_params
from ..plots import plot_curves, read_csv, write_csv
from ..contract import kind_of
from ..files import read_json, write_text
from ..runtime import run_main
from .compare import COMPARISON_DIR, method_dir

# ../shared/REFERENCE.md. Other oracles, corpora splits and budgets: a guide, not a target.
PUBLISHED = {
    "random": {"nll_oracle": 10.310},
    "mle": {"nll_oracle": 9.038, "bleu2": 0.693},
    "scheduled_sampling": {"nll_oracle": 8.985},
    "pg_bleu": {"nll_oracle": 8.946},
    "seqgan": {"nll_oracle": 8.736, "bleu2": 0.738},
    "maligan_basic": {"bleu2": 0.740},
    "maligan_full": {"bleu2": 0.762},
}
PUBLISHED_SOURCES = {"nll_oracle": "SeqGAN paper, Table 1 (its oracle, length 20)",
                     "bleu2": "MaliGAN paper, 5-character Chinese poems"}
LOWER_IS_BETTER = ("nll_oracle", "nll_test", "self_bleu")
LABELS = {"nll_oracle": "NLL-oracle", "nll_test": "NLL-test"}


def label(metric: str) -> str:
    if metric in LABELS:
        return LABELS[metric]
    name, n = metric.rstrip("0123456789"), metric[len(metric.rstrip("0123456789")):]
    return {"bleu": "BLEU", "self_bleu": "Self-BLEU"}[name] + f"-{n}"


def collect(params: Params) -> dict[str, dict[str, dict]]:
    """{experiment: {method: scores.json}} for everything the comparison trains."""
    c = params.comparison
    return {exp: {m: read_json(method_dir(exp, m) / "scores.json") for m in c.methods} for exp in c.experiments}


def table_rows(results: dict[str, dict[str, dict]], methods: list[str]) -> tuple[list[str], list[dict]]:
    columns = [f"{exp}.{metric}" for exp, by_method in results.items() for metric in next(iter(by_method.values()))["scores"]]
    rows = []
    for method in methods:
        row = {"method": method}
        for exp, by_method in results.items():
            row.update({f"{exp}.{k}": v for k, v in by_method[method]["scores"].items()})
        row.update({f"published.{k}": v for k, v in PUBLISHED.get(method, {}).items()})
        rows.append(row)
    return columns, rows


def markdown(params: Params, results: dict, columns: list[str], rows: list[dict]) -> str:
    published = sorted({k for row in rows for k in row if k.startswith("published.")})
    header = ["method", *(f"{c.split('.')[0]} {label(c.split('.')[1])} {'↓' if c.split('.')[1].startswith(LOWER_IS_BETTER) else '↑'}"
                          for c in columns), *(f"published {label(k.split('.')[1])}" for k in published)]
    best = {c: (min if c.split(".")[1].startswith(LOWER_IS_BETTER) else max)(r[c] for r in rows) for c in columns}
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["method"]]
        cells += [f"**{row[c]:.4f}**" if row[c] == best[c] and len(rows) > 1 else f"{row[c]:.4f}" for c in columns]
        cells += [f"{row[k]:.3f}" if k in row else "" for k in published]
        lines.append("| " + " | ".join(cells) + " |")
    a = params.adversarial
    notes = [
        f"Budget per method: {a.batches} batches x {a.g_steps} generator update(s) of {a.batch_size} sequences, "
        "from the same MLE-pretrained generator and discriminator (`random`: untrained).",
        "Best value per column in bold. Scores as in `evaluate`: "
        + "; ".join(f"{exp}: " + ", ".join(f"{k} {v}" for k, v in next(iter(by_method.values()))["settings"].items())
                    for exp, by_method in results.items()) + ".",
        *(f"Published {label(k.split('.')[1])}: {PUBLISHED_SOURCES[k.split('.')[1]]}." for k in published),
    ]
    return "# Method comparison\n\n" + "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"


def plot(params: Params, png: Path) -> None:
    c = params.comparison
    # The synthetic curves when the oracle is compared (NLL-oracle), else the first corpus's NLL-test.
    kind = next((kind_of(e) for e in c.experiments if kind_of(e).has_oracle), kind_of(c.experiments[0]))
    experiment, key = kind.name, kind.curve_metric
    series, hlines = {}, {}
    for method in c.methods:
        points = [r for r in read_csv(method_dir(experiment, method) / "curve.csv") if key in r]
        if len(points) == 1:  # `random`: no training, one point
            hlines[method] = points[0][key]
        else:
            series[method] = ([r["batch"] for r in points], [r[key] for r in points])
    if kind.has_oracle:
        reference = read_json(kind.artifacts().dataset_spec).get("reference_nll", {})
        if "nll_oracle_data" in reference:
            hlines["oracle samples"] = reference["nll_oracle_data"]
    plot_curves(png, series, title=f"{LABELS[key]} of every method ({experiment})", xlabel="adversarial batch",
                ylabel=f"{LABELS[key]} (nats/token)", hlines=hlines)


def main() -> None:
    from .. import tracking

    params = load_params()
    results = collect(params)
    columns, rows = table_rows(results, params.comparison.methods)
    md, table, png = COMPARISON_DIR / "results.md", COMPARISON_DIR / "results.csv", COMPARISON_DIR / "nll_curves.png"
    write_text(md, markdown(params, results, columns, rows))
    write_csv(table, rows)
    plot(params, png)
    with tracking.summary_run("seqgan-comparison", f"comparison-{tracking.pipeline_key('comparison')}",
                              params.model_dump(), {"seqgan.dvc_stage": "comparison/dvc.yaml:report"}) as tracker:
        tracker.log_metrics({f"{row['method']}.{c}": row[c] for row in rows for c in columns})
        for path in (md, table, png):
            tracker.log_artifact(path, "comparison")


if __name__ == "__main__":
    run_main(main)
