"""Stage `train@<experiment>-<method>-<seed>` (comparison/dvc.yaml): one cell of the sweep.

Trains `method` from its seed's pretrained models with the adversarial stage's loop and
budget (`pipelines.stages.adversarial.train`), then scores the result as `evaluate` does,
at temperature 1 and over `evaluate.temperatures`. Writes
comparison/runs/<experiment>/seed<seed>/<method>/: the generator, its per-batch curve, and
scores.json.

    python -m pipelines.stages.compare <experiment> <method> <seed>
"""
from __future__ import annotations

from ..config import METHODS
from ..contract import SweepCell
from ..datasets import load_dataset
from ..files import write_json
from ..runtime import run_main, seeded_rng, stage, sweep_cell_args
from ..scoring import Scorer
from ..validation import validate_token_sequences
from .adversarial import Outputs, Pretrained, train


def main() -> None:
    args = sweep_cell_args("compare", "method")
    if args.method not in METHODS:
        raise SystemExit(f"error: unknown method {args.method!r}; one of {', '.join(METHODS)}")
    cell = SweepCell(args.experiment, args.seed)
    dvc_stage = f"comparison/dvc.yaml:train@{args.experiment}-{args.method}-{args.seed}"
    with stage("compare", args.experiment, pipeline="comparison", seed=args.seed, dvc_stage=dvc_stage) as ctx:
        out = cell.method(args.method)
        dataset = load_dataset(ctx.artifacts, ctx.device)
        outputs = Outputs(out / "generator.pt", None, cell.curve(args.method), out / "curve.png", out / "training.json",
                          cell.checkpoint(args.method))
        generator = train(ctx, dataset, args.method, Pretrained(cell.generator_mle, cell.discriminator_pre), outputs)

        e, seed = ctx.params.evaluate, ctx.params.seed
        # evaluate's streams for the adversarial generator: at the pipeline's own seed, this
        # cell of the pipeline's method repeats evaluate's numbers exactly.
        samples = generator.sample(e.nll_samples, rng=seeded_rng(seed, "evaluate", "adversarial"))
        validate_token_sequences(samples.cpu().numpy(), suite=f"generated_{args.method}", vocab_size=dataset.vocab_size,
                                 seq_len=dataset.seq_len, expected_rows=e.nll_samples)
        scorer = Scorer(dataset, ctx.params)
        scores = {**scorer.final(generator, samples),
                  **scorer.code_sharpened(generator, seeded_rng(seed, "evaluate", "sharpened", "adversarial"))}
        frontier = scorer.sweep(generator, seeded_rng(seed, "evaluate", "sweep", "adversarial"))
        ctx.tracker.log_metrics(scores)
        for row in frontier:
            ctx.tracker.log_metrics({f"t{row['temperature']:g}.{k}": v for k, v in row.items() if k != "temperature"})
        write_json(cell.scores(args.method), {
            "experiment": args.experiment, "method": args.method, "seed": seed, "scores": scores,
            "frontier": frontier, "settings": scorer.settings(), "data_version": dataset.fingerprint})


if __name__ == "__main__":
    run_main(main)
