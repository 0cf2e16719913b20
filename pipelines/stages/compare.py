"""Stage `compare@<experiment>-<method>` (comparison/dvc.yaml): one row of the methods table.

Trains `method` from the training pipeline's pretrained models with the adversarial
stage's loop and budget (`pipelines.stages.adversarial.train`), then scores the result
exactly as `evaluate` scores the pipeline's generators. Writes
comparison/runs/<experiment>/<method>/: the generator, its per-batch curve, and scores.json.

    python -m pipelines.stages.compare <experiment> <method>
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..config import EXPERIMENTS, METHODS
from ..datasets import load_dataset
from ..files import write_json
from ..runtime import run_main, seeded_rng, stage
from ..scoring import final_scores, score_settings
from ..validation import validate_token_sequences
from .adversarial import Outputs, train

COMPARISON_DIR = Path("comparison")


def method_dir(experiment: str, method: str) -> Path:
    return COMPARISON_DIR / "runs" / experiment / method


def main() -> None:
    parser = argparse.ArgumentParser(prog="pipelines.stages.compare")
    parser.add_argument("experiment", choices=EXPERIMENTS)
    parser.add_argument("method", choices=METHODS)
    args = parser.parse_args()
    with stage("compare", args.experiment, pipeline="comparison") as ctx:
        ctx.tracker.set_tags({"seqgan.dvc_stage": f"comparison/dvc.yaml:compare@{args.experiment}-{args.method}"})
        out = method_dir(args.experiment, args.method)
        dataset = load_dataset(ctx.artifacts, ctx.device)
        outputs = Outputs(out / "generator.pt", None, out / "curve.csv", out / "curve.png", out / "training.json",
                          ctx.artifacts.checkpoint(f"compare-{args.method}"))
        generator = train(ctx, dataset, args.method, outputs)

        e = ctx.params.evaluate
        # Scored on evaluate's draw for the adversarial generator, so the row of the
        # pipeline's own method repeats evaluate's numbers exactly.
        samples = generator.sample(e.nll_samples, rng=seeded_rng(ctx.params.seed, "evaluate", "adversarial"))
        validate_token_sequences(samples.cpu().numpy(), suite=f"generated_{args.method}", vocab_size=dataset.vocab_size,
                                 seq_len=dataset.seq_len, expected_rows=e.nll_samples)
        scores = final_scores(generator, dataset, samples, ctx.params)
        ctx.tracker.log_metrics(scores)
        write_json(out / "scores.json", {"experiment": args.experiment, "method": args.method, "scores": scores,
                                         "settings": score_settings(dataset, ctx.params),
                                         "data_version": dataset.fingerprint})


if __name__ == "__main__":
    run_main(main)
