"""Stage `evaluate`: score the MLE and the adversarial generator side by side, write
samples and the combined NLL curve, and register the adversarial generator as the
registry's `challenger`, with the MLE generator's scores as its baseline (the gate's guard
when there is no champion yet).

Scores (pipelines.scoring.final_scores): NLL-oracle (synthetic), NLL-test, and for
corpora BLEU-n against the test set and Self-BLEU-n, in Texygen's convention, each with
the settings that produced it.
"""
from __future__ import annotations

from pathlib import Path

from ..contract import UNIFORM_NLL_METRIC, uniform_nll
from ..datasets import Dataset, load_dataset
from ..files import unusable, write_json, write_text
from ..models import load_generator
from ..plots import plot_curves, read_csv, write_csv
from ..runtime import experiment_arg, run_main, stage
from ..scoring import Scorer
from ..validation import validate_token_sequences


def scored_rows(curve: Path) -> list[dict[str, float]]:
    """The rows of a training curve at which the generator was scored."""
    rows = [r for r in read_csv(curve) if "nll_test" in r]
    if not rows:
        raise unusable(curve, "has no row with an nll_test score")
    return rows


def plot_nll_curve(png: Path, pre: list[dict[str, float]], adv: list[dict[str, float]], dataset: Dataset) -> None:
    """Pretraining epochs, then adversarial batches, on one axis, with the oracle's floor."""
    key = dataset.kind.curve_metric
    offset = pre[-1]["epoch"]
    plot_curves(
        png,
        {"MLE pretraining": ([r["epoch"] for r in pre], [r[key] for r in pre]),
         "adversarial": ([offset + r["batch"] for r in adv], [r[key] for r in adv])},
        title=f"{key} ({dataset.experiment})", xlabel="MLE epoch, then adversarial batch",
        ylabel=f"{key} (nats/token)",
        hlines={"oracle samples": dataset.reference_nll["nll_oracle_data"]} if dataset.kind.has_oracle else {},
        vlines={"adversarial start": offset},
    )


def main() -> None:
    """Everything that can fail (reading the inputs, scoring, MLflow) comes before the first
    output is written: the metrics and the frontier are not cached by DVC, so a run that
    failed after rewriting them would leave files that match neither dvc.lock nor a finished
    run. Only the artifacts' upload to MLflow, which needs the files, follows them."""
    experiment = experiment_arg("evaluate")
    with stage("evaluate", experiment) as ctx:
        a, e = ctx.artifacts, ctx.params.evaluate
        dataset = load_dataset(a, ctx.device)
        curves = scored_rows(a.curve("pretrain_generator")), scored_rows(a.curve("adversarial"))
        scorer = Scorer(dataset, ctx.params)
        results, frontier, texts = {}, [], []
        generators = {"mle": a.generator_mle, "adversarial": a.generator_adv}
        for label, path in generators.items():
            generator = load_generator(path, ctx.device)
            samples = generator.sample(e.nll_samples, rng=ctx.rng(label))
            validate_token_sequences(samples.cpu().numpy(), suite=f"generated_{label}", vocab_size=dataset.vocab_size,
                                     seq_len=dataset.seq_len, expected_rows=e.nll_samples)
            results[label] = {**scorer.final(generator, samples),
                              **scorer.code_sharpened(generator, ctx.rng("sharpened", label))}
            frontier += [{"generator": label, **row} for row in scorer.sweep(generator, ctx.rng("sweep", label))]
            texts.append(f"## {label}\n\n" + "\n".join(f"- {t}" for t in dataset.decode(samples[: e.text_samples])))
        # The data scored as the generators are (calibration), and the uniform-token ceiling.
        reference = {**dataset.reference_nll, UNIFORM_NLL_METRIC: uniform_nll(dataset.vocab_size),
                     "data": scorer.calibration()}

        ctx.tracker.log_metrics({f"{label}.{k}": v for label, scores in results.items() for k, v in scores.items()},
                                parent=True)
        ctx.tracker.set_tags({"seqgan.data_version": dataset.fingerprint}, parent=True)
        from ..registry import register_generator

        model_name = ctx.kind.model_name(ctx.params)
        version = register_generator(
            run_id=ctx.tracker.parent_run_id, model_name=model_name, checkpoint=a.generator_adv,
            vocab=None if ctx.kind.has_oracle else a.vocab, tokenizer=dataset.tokenizer,
            metrics={**results["adversarial"], UNIFORM_NLL_METRIC: uniform_nll(dataset.vocab_size)},
            data_version=dataset.fingerprint, experiment_kind=experiment,
            scoring_version=scorer.version(), scoring_settings=scorer.final_settings(), baseline=results["mle"],
        )

        plot_nll_curve(a.nll_curve_png, *curves, dataset)  # the one output whose making can fail: first
        write_json(a.metrics("evaluate"), {**results, "reference": reference, "settings": scorer.settings()})
        write_csv(a.frontier, frontier)
        write_text(a.samples_report, f"# Samples ({experiment})\n\n" + "\n\n".join(texts) + "\n")
        write_json(a.registry_record, {"model": model_name, "version": version, "alias": "challenger",
                                       "data_version": dataset.fingerprint})
        ctx.tracker.log_artifact(a.samples_report, "samples")
        ctx.tracker.log_artifact(a.nll_curve_png, "plots")
        ctx.tracker.finish_pipeline()


if __name__ == "__main__":
    run_main(main)
