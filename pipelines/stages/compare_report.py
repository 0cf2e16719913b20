"""Stage `report` (comparison/dvc.yaml): the sweep's evidence, over seeds and temperatures.

Reads every cell's comparison/runs/<experiment>/seed<seed>/<method>/scores.json and writes
- summary.csv / summary.md: per (experiment, method, metric) at temperature 1, the mean
  over seeds with its Student-t 95% interval, and the paired difference from MLE (same
  seed, same data) with its interval and verdict;
- frontier.csv: every cell's temperature sweep (one row per experiment, method, seed, t);
- results.md: the answer in words (which methods beat MLE at matched diversity, over how
  many seeds, on which profile), the tables, the calibration row (the data scored the same
  way, stage `calibrate`) beside the papers' published numbers;
- nll_curves.png: each method's training curve, the mean over seeds;
and logs all of it to MLflow, experiment `seqgan-comparison`.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from seqgan_core.frontier import matched_gap
from seqgan_core.statistics import paired_difference, summarize

from ..config import PROFILES_DIR, Params, load_params, read_yaml
from ..contract import SHARPENED_MARK, ComparisonReport, SweepCell, better_direction, kind_of
from ..files import read_json, write_text
from ..plots import plot_curves, read_csv, write_csv
from ..runtime import run_main

# ../shared/REFERENCE.md and REFERENCE_MODELS.md (section 7). Other oracles, corpora splits
# and budgets: a guide, not a target.
PUBLISHED = {
    "random": {"nll_oracle": 10.310},
    "mle": {"nll_oracle": 9.038, "bleu2": 0.693},
    "scheduled_sampling": {"nll_oracle": 8.985},
    "pg_bleu": {"nll_oracle": 8.946},
    "seqgan": {"nll_oracle": 8.736, "bleu2": 0.738},
    "maligan_basic": {"bleu2": 0.740},
    "maligan_full": {"bleu2": 0.762},
    "rankgan": {"nll_oracle": 8.247},
    "leakgan": {"nll_oracle": 7.038},
    "relgan": {"nll_oracle": 6.680},
}
PUBLISHED_SOURCES = {
    "nll_oracle": "SeqGAN paper, Table 1 (its oracle, length 20; the oracle's own samples score 5.75 there); "
                  "RankGAN and LeakGAN papers on the same oracle (LeakGAN's scored with its code's 1.5 sharpening, "
                  "our `nll_oracle_sharpened_1.5`); RelGAN paper at beta_max 1, on its own seeded oracle",
    "bleu2": "MaliGAN paper, 5-character Chinese poems (SeqGAN paper: MLE 0.665, SeqGAN 0.739); neither paper says "
             "which sentences were the references",
}
# Keys that change how fast a run goes, not what it computes, and the sweep's own section:
# a sweep with them changed still ran its profile.
NOT_PROFILE_KEYS = ("comparison", "threads", "execution")
LABELS = {"nll_oracle": "NLL-oracle", "nll_test": "NLL-test"}
INTERVAL = "Student t, 95%; differences paired by seed (same data, same initial streams)"


def label(metric: str) -> str:
    base, sharpened, scale = metric.partition(SHARPENED_MARK)
    if sharpened:  # LeakGAN's second figure (`pipelines.scoring.Scorer.code_sharpened`)
        return f"{label(base)} (code's {scale} sharpening)"
    if metric in LABELS:
        return LABELS[metric]
    name, n = metric.rstrip("0123456789"), metric[len(metric.rstrip("0123456789")):]
    return {"bleu": "BLEU", "self_bleu": "Self-BLEU"}[name] + f"-{n}"


Results = dict[str, dict[str, dict[int, dict]]]  # experiment -> method -> seed -> scores.json


def collect(params: Params) -> tuple[Results, list[str]]:
    """Every cell's scores.json, and the cells that have none: a sweep on a work pool reports
    what finished when a cell failed for good (`pipelines.sweep_flows`); `dvc repro` only
    gets here once every cell ran."""
    c, results, missing = params.comparison, {}, []
    for e in c.experiments:
        for m in c.methods:
            for s in c.seeds:
                path = SweepCell(e, s).scores(m)
                if path.exists():
                    results.setdefault(e, {}).setdefault(m, {})[s] = read_json(path)
                else:
                    missing.append(f"train@{e}-{m}-{s}")
    return results, missing


def frontier_rows(results: Results) -> list[dict]:
    """experiment, method, seed, temperature, then the metrics (NLLs, BLEU-n, Self-BLEU-n)."""
    return [{"experiment": e, "method": m, "seed": s, "temperature": row["temperature"],
             **{k: v for k, v in sorted(row.items()) if k != "temperature"}}
            for e, by_method in results.items() for m, by_seed in by_method.items()
            for s, cell in by_seed.items() for row in cell["frontier"]]


def _fmt(value: float, digits: int = 4) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def summary_rows(results: Results) -> list[dict]:
    """Per (experiment, method, metric) at temperature 1: the spread over seeds and the
    paired difference from MLE."""
    rows = []
    for e, by_method in results.items():
        mle = by_method.get("mle", {})
        for m, by_seed in by_method.items():
            for metric in next(iter(by_seed.values()))["scores"]:
                values = {s: cell["scores"][metric] for s, cell in by_seed.items()}
                spread = summarize(list(values.values()))
                row = {"experiment": e, "method": m, "metric": metric, "n_seeds": spread.n, "mean": spread.mean,
                       "sd": spread.sd, "ci_low": spread.ci_low, "ci_high": spread.ci_high}
                if m == "mle":
                    row.update(diff_vs_mle=math.nan, diff_ci_low=math.nan, diff_ci_high=math.nan, verdict="baseline")
                elif paired := [s for s in values if s in mle]:  # seeds whose MLE cell finished too
                    baseline = {s: mle[s]["scores"][metric] for s in paired}
                    diff = paired_difference({s: values[s] for s in paired}, baseline, better=better_direction(metric))
                    row.update(diff_vs_mle=diff.mean_diff, diff_ci_low=diff.ci_low, diff_ci_high=diff.ci_high,
                               verdict=diff.verdict)
                else:
                    row.update(diff_vs_mle=math.nan, diff_ci_low=math.nan, diff_ci_high=math.nan,
                               verdict="not comparable")
                rows.append(row)
    return rows


def matched_rows(results: Results, params: Params) -> list[dict]:
    """Per (experiment, method other than MLE): each seed's quality gap to the same seed's
    MLE frontier at the method's temperature-1 diversity (Caccia et al.), and its spread."""
    rows, c = [], params.comparison
    for e in c.experiments:
        by_method = results.get(e, {})
        diversity, quality = kind_of(e).frontier_axes(params)
        directions = {"diversity_better": better_direction(diversity), "quality_better": better_direction(quality)}
        for m in c.methods:
            if m == "mle":
                continue
            by_seed = by_method.get(m, {})
            gaps = {}
            for s, cell in by_seed.items():
                if s not in by_method.get("mle", {}):
                    continue
                point = next(r for r in cell["frontier"] if r["temperature"] == 1.0)
                mle = by_method["mle"][s]["frontier"]
                gaps[s] = matched_gap(point[diversity], point[quality], [r[diversity] for r in mle],
                                      [r[quality] for r in mle], **directions)
            finite = [g for g in gaps.values() if math.isfinite(g)]
            spread = summarize(finite) if finite else None
            verdict = "not comparable"
            if spread is not None and spread.n >= 2:
                verdict = ("better" if spread.ci_low > 0 else "worse" if spread.ci_high < 0 else "no difference")
            # A cell that failed (diverged, say) counts against its method: `answer` names no
            # winner that won only on the seeds it survived.
            rows.append({"experiment": e, "method": m, "quality": quality, "diversity": diversity,
                         "n_seeds": len(c.seeds), "n_failed": sum(s not in by_seed for s in c.seeds),
                         "n_matched": len(finite),
                         "gap_mean": spread.mean if spread else math.nan,
                         "gap_ci_low": spread.ci_low if spread else math.nan,
                         "gap_ci_high": spread.ci_high if spread else math.nan, "verdict": verdict})
    return rows


def _flat(tree: object, name: str = "") -> dict[str, object]:
    """Every leaf of a params document by its dotted name, without NOT_PROFILE_KEYS."""
    if not isinstance(tree, dict):
        return {name: tree}
    return {leaf: value for key, sub in tree.items() if (child := f"{name}.{key}" if name else str(key))
            not in NOT_PROFILE_KEYS for leaf, value in _flat(sub, child).items()}


def profile_name(params_file: Path = Path("params.yaml"), profiles: Path = PROFILES_DIR) -> str:
    """Which profile params.yaml is, ignoring NOT_PROFILE_KEYS; otherwise the nearest
    profile and the keys that differ from it ("small profile with generator.kind changed")."""
    ours = _flat(read_yaml(params_file))
    changed = {}
    for path in sorted(profiles.glob("*.yaml")):
        theirs = _flat(read_yaml(path))
        changed[path.stem] = sorted(k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k))
    nearest = min(changed, key=lambda name: len(changed[name]))
    keys = changed[nearest]
    if not keys:
        return f"{nearest} profile"
    listed = ", ".join(keys[:6]) + (f" and {len(keys) - 6} more" if len(keys) > 6 else "")
    return f"{nearest} profile with {listed} changed"


def answer(matched: list[dict], params: Params) -> str:
    """The opening paragraph: which methods beat MLE at matched diversity."""
    c = params.comparison
    lines = [f"**The answer** ({profile_name()}; {len(c.seeds)} training seeds {c.seeds}, one data version; "
             f"{params.adversarial.batches} adversarial batches per method). Each method's temperature-1 point is "
             "compared with MLE sampled at the temperature that gives the same diversity, seed by seed "
             "(Caccia et al. 2020): a gain that only comes from sampling colder is no gain."]
    for e in c.experiments:
        rows = [r for r in matched if r["experiment"] == e]
        if not rows:
            continue
        winners = [r["method"] for r in rows if r["verdict"] == "better" and not r["n_failed"]]
        head = (f"beat MLE at matched diversity: {', '.join(winners)}" if winners
                else "no method beats MLE at matched diversity")
        details = "; ".join(_verdict_words(r) for r in rows)
        lines.append(f"- **{e}** ({label(rows[0]['quality'])} against {label(rows[0]['diversity'])}): {head}. {details}.")
    lines.append("A positive gap is better than MLE; \"not comparable\" means the method's diversity lies outside "
                 "the range MLE covers over the temperatures swept, in fewer than two seeds. A failed cell (a "
                 "diverged run) counts against its method: it is no winner on the seeds it survived.")
    return "\n".join(lines)


def _verdict_words(row: dict) -> str:
    """One matched row in words, e.g. 'seqgan worse (BLEU-2 gap -0.028, 95% CI [...], 3/3 seeds
    matched)'. A method with a failed cell is "better on the seeds that finished", never a winner."""
    failed = row["n_failed"]
    return (f"{row['method']} {row['verdict']}{' on the seeds that finished' if failed else ''} "
            f"({label(row['quality'])} gap {_fmt(row['gap_mean'])}, 95% CI [{_fmt(row['gap_ci_low'])}, "
            f"{_fmt(row['gap_ci_high'])}], {row['n_matched']}/{row['n_seeds']} seeds matched"
            f"{f', {failed} failed' if failed else ''})")


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
                      *("| " + " | ".join(r) + " |" for r in rows)])


def missing_line(missing: list[str]) -> str:
    return (f"**Missing cells** (failed; not in these statistics): {', '.join(missing)}.\n\n" if missing else "")


def summary_markdown(rows: list[dict], missing: list[str] = ()) -> str:
    table = markdown_table(
        ["experiment", "method", "metric", "n", "mean", "sd", "95% CI", "diff vs MLE", "diff 95% CI", "verdict"],
        [[r["experiment"], r["method"], label(r["metric"]), str(r["n_seeds"]), _fmt(r["mean"]), _fmt(r["sd"]),
          f"[{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]", _fmt(r["diff_vs_mle"]),
          "" if r["verdict"] == "baseline" else f"[{_fmt(r['diff_ci_low'])}, {_fmt(r['diff_ci_high'])}]", r["verdict"]]
         for r in rows])
    return (f"# Comparison summary (temperature 1)\n\nIntervals: {INTERVAL}. Verdicts against MLE at 95%: lower is "
            "better for NLL and Self-BLEU (more diverse), higher for BLEU.\n\n" + missing_line(missing) + table + "\n")


def results_markdown(params: Params, summary: list[dict], matched: list[dict], calib: dict[str, dict],
                     settings: dict[str, dict], missing: list[str] = ()) -> str:
    parts = ["# Method comparison", "", answer(matched, params), "", *([missing_line(missing)] if missing else [])]
    for e in params.comparison.experiments:
        metrics = list(dict.fromkeys(r["metric"] for r in summary if r["experiment"] == e))
        rows = [[m, *(f"{_fmt(r['mean'])} ± {_fmt(r['sd'], 3)}" for r in summary
                      if r["experiment"] == e and r["method"] == m)]
                for m in params.comparison.methods if m in methods_in(summary, e)]
        rows.append(["*data (calibration)*", *(_fmt(calib[e][k]) if k in calib[e] else "" for k in metrics)])
        compared = [m for m in params.comparison.methods if m in PUBLISHED]
        published = sorted({k for m in compared for k in PUBLISHED[m] if k in metrics})
        for k in published:  # one row per published metric, the papers' figure of each compared method
            cell = "; ".join(f"{m} {PUBLISHED[m][k]:.3f}" for m in compared if k in PUBLISHED[m])
            rows.append([f"*published {label(k)}*", *(cell if x == k else "" for x in metrics)])
        parts += [f"## {e}: mean ± sd over seeds, temperature 1", "",
                  markdown_table(["method", *(label(k) for k in metrics)], rows), "",
                  f"Calibration: {calib[e]['source']}, scored exactly as the generators are. "
                  + "".join(f"Published {label(k)}: {PUBLISHED_SOURCES[k]}. " for k in published)
                  + "Published figures come from other oracles, splits and budgets: read them against the "
                    "calibration row, not against ours.", ""]
    parts += ["## At matched diversity", "", markdown_table(
        ["experiment", "method", "quality gap vs MLE", "95% CI", "seeds matched", "verdict"],
        [[r["experiment"], r["method"], _fmt(r["gap_mean"]), f"[{_fmt(r['gap_ci_low'])}, {_fmt(r['gap_ci_high'])}]",
          f"{r['n_matched']}/{r['n_seeds']}", r["verdict"]] for r in matched]), "",
        f"Per-metric spreads and paired differences: `summary.md` ({INTERVAL}). Every (method, seed, temperature) "
        "point: `frontier.csv`; the curves: `frontier_<experiment>.png`.", "",
        "Settings: " + "; ".join(f"{e}: " + ", ".join(f"{k} {v}" for k, v in s.items()) for e, s in settings.items()),
        ""]
    return "\n".join(parts)


def methods_in(summary: list[dict], experiment: str) -> set[str]:
    return {r["method"] for r in summary if r["experiment"] == experiment}


def plot_training_curves(params: Params, results: Results, png: Path) -> None:
    """Each method's training curve of the headline NLL, the mean over seeds."""
    kind = next((kind_of(e) for e in results if kind_of(e).has_oracle), kind_of(next(iter(results))))
    key, series = kind.curve_metric, {}
    for m, by_seed in results.get(kind.name, {}).items():
        curves = [[r for r in read_csv(SweepCell(kind.name, s).curve(m)) if key in r] for s in by_seed]
        series[m] = ([r["batch"] for r in curves[0]], list(np.mean([[r[key] for r in c] for c in curves], axis=0)))
    plot_curves(png, series, title=f"{LABELS[key]} of every method ({kind.name}, mean over seeds)",
                xlabel="adversarial batch", ylabel=f"{LABELS[key]} (nats/token)")


def main() -> None:
    from .. import tracking

    params = load_params()
    report = ComparisonReport()
    results, missing = collect(params)
    summary, matched = summary_rows(results), matched_rows(results, params)
    calib = {e: read_json(report.calibration(e)) for e in params.comparison.experiments}
    settings = {e: next(iter(next(iter(by_method.values())).values()))["settings"] for e, by_method in results.items()}
    write_csv(report.summary_csv, summary)
    write_text(report.summary_md, summary_markdown(summary, missing))
    write_csv(report.frontier_csv, frontier_rows(results))
    write_text(report.results_md, results_markdown(params, summary, matched, calib, settings, missing))
    plot_training_curves(params, results, report.curves_png)
    with tracking.summary_run("seqgan-comparison", f"comparison-{tracking.pipeline_key('comparison')}",
                              params.model_dump(), {"seqgan.dvc_stage": "comparison/dvc.yaml:report"}) as tracker:
        tracker.log_metrics({f"{r['experiment']}.{r['method']}.{r['metric']}": r["mean"] for r in summary})
        for path in (report.summary_csv, report.summary_md, report.frontier_csv, report.results_md,
                     report.curves_png):
            tracker.log_artifact(path, "comparison")


if __name__ == "__main__":
    run_main(main)
