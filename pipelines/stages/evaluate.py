"""Stage `evaluate`: score the MLE and the adversarial generator side by side, write
samples and the combined NLL curve, and register the adversarial generator as the
registry's `challenger`.

Scores: NLL-oracle (synthetic), NLL-test, and for corpora BLEU-n against the test set
and Self-BLEU-n, in Texygen's convention (seqgan_core.bleu). Every setting that changes a
score (sample sizes, orders, smoothing) is written next to it.
"""
from __future__ import annotations

import csv

import torch

from seqgan_core import sequence_nll
from seqgan_core.bleu import BLEU, SelfBLEU
from seqgan_core.corpus import EOS_ID

from ..plots import plot_curves
from ..runtime import Dataset, experiment_arg, load_dataset, load_generator, run_main, stage, write_json, write_text
from ..validation import validate_token_sequences

GENERATORS = {"mle": "generator_mle.pt", "adversarial": "generator_adv.pt"}


def strip_padding(tokens: torch.Tensor) -> list[list[int]]:
    """Token rows up to their first <eos>: what BLEU compares for a corpus."""
    rows = []
    for row in tokens.tolist():
        rows.append(row[: row.index(EOS_ID)] if EOS_ID in row else row)
    return rows


def score(generator, dataset: Dataset, samples: torch.Tensor, params) -> dict[str, float]:
    e = params.evaluate
    scores = {"nll_test": sequence_nll(generator, dataset.test)}
    if dataset.oracle is not None:
        scores["nll_oracle"] = dataset.oracle.nll(samples)
    else:
        hypotheses = strip_padding(samples[: e.bleu_hypotheses])
        bleu = BLEU(strip_padding(dataset.test), max_n=max(e.bleu_orders))
        self_bleu = SelfBLEU(strip_padding(samples), max_n=max(e.bleu_orders), sample_size=e.self_bleu_size, seed=params.seed)
        for n in e.bleu_orders:
            scores[f"bleu{n}"] = bleu.corpus_mean(hypotheses, n)
            scores[f"self_bleu{n}"] = self_bleu.mean(n)
    return scores


def settings(dataset: Dataset, params) -> dict:
    e = params.evaluate
    common = {"nll_test_sequences": len(dataset.test), "nll_units": "nats per token"}
    if dataset.oracle is not None:
        return {**common, "nll_oracle_samples": e.nll_samples}
    return {**common, "bleu": "Texygen: sentence_bleu vs whole test set, uniform cumulative weights, smoothing method1",
            "bleu_orders": e.bleu_orders, "bleu_hypotheses": min(e.bleu_hypotheses, e.nll_samples),
            "bleu_references": len(dataset.test), "self_bleu_sample_size": e.self_bleu_size,
            "tokenization": dataset.tokenizer, "padding": "stripped at first <eos>"}


def read_curve(path) -> list[dict[str, float]]:
    with path.open() as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def plot_nll_curve(ctx, dataset: Dataset) -> None:
    """Pretraining epochs, then adversarial batches, on one axis, with the oracle's floor."""
    pre = [r for r in read_curve(ctx.paths.plots / "pretrain_generator.csv") if "nll_test" in r]
    adv = [r for r in read_curve(ctx.paths.plots / "adversarial.csv") if "nll_test" in r]
    key = "nll_oracle" if dataset.oracle is not None else "nll_test"
    offset = pre[-1]["epoch"]
    png = ctx.paths.plots / "nll_curve.png"
    plot_curves(
        png,
        {"MLE pretraining": ([r["epoch"] for r in pre], [r[key] for r in pre]),
         "adversarial": ([offset + r["batch"] for r in adv], [r[key] for r in adv])},
        title=f"{key} ({ctx.experiment})", xlabel="MLE epoch, then adversarial batch", ylabel=f"{key} (nats/token)",
        hlines={"oracle samples": dataset.reference_nll["nll_oracle_data"]} if key == "nll_oracle" else {},
        vlines={"adversarial start": offset},
    )
    ctx.tracker.log_artifact(png, "plots")


def main() -> None:
    experiment = experiment_arg("evaluate")
    with stage("evaluate", experiment) as ctx:
        e = ctx.params.evaluate
        dataset = load_dataset(ctx.paths, ctx.device)
        results, texts = {}, []
        for label, filename in GENERATORS.items():
            generator = load_generator(ctx.paths.models / filename, ctx.device)
            samples = generator.sample(e.nll_samples, rng=ctx.rng(label))
            validate_token_sequences(samples.cpu().numpy(), suite=f"generated_{label}", vocab_size=dataset.vocab_size,
                                     seq_len=dataset.seq_len, expected_rows=e.nll_samples)
            results[label] = score(generator, dataset, samples, ctx.params)
            texts.append(f"## {label}\n\n" + "\n".join(f"- {t}" for t in dataset.decode(samples[: e.text_samples])))
        metrics = {**results, "reference": dataset.reference_nll, "settings": settings(dataset, ctx.params)}
        write_json(ctx.paths.metrics / "evaluate.json", metrics)
        samples_md = ctx.paths.reports / "samples.md"
        write_text(samples_md, f"# Samples ({experiment})\n\n" + "\n\n".join(texts) + "\n")
        plot_nll_curve(ctx, dataset)

        flat = {f"{label}.{k}": v for label, scores in results.items() for k, v in scores.items()}
        ctx.tracker.log_metrics(flat, parent=True)
        ctx.tracker.log_artifact(samples_md, "samples")
        ctx.tracker.set_tags({"seqgan.data_version": dataset.fingerprint}, parent=True)

        from ..registry import register_generator

        version = register_generator(
            run_id=ctx.tracker.parent_run_id, model_name=ctx.params.model_name(experiment),
            checkpoint=ctx.paths.models / GENERATORS["adversarial"],
            vocab=ctx.paths.data / "vocab.json" if dataset.vocab is not None else None,
            tokenizer=dataset.tokenizer, metrics=results["adversarial"], data_version=dataset.fingerprint,
            experiment_kind=experiment,
        )
        write_json(ctx.paths.reports / "registry.json", {"model": ctx.params.model_name(experiment), "version": version,
                                                         "alias": "challenger", "data_version": dataset.fingerprint})
        ctx.tracker.finish_pipeline()


if __name__ == "__main__":
    run_main(main)
