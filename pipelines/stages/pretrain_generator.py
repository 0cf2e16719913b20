"""Stage `pretrain_generator`: MLE (teacher forcing) on the training data.

Resumable: a killed run continues from its last checkpoint in `.checkpoints/`.
`pretrain` is also what the comparison sweep runs for each of its seeds, writing elsewhere.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from seqgan_core.train import adam, mle_epoch

from ..contract import Artifacts
from ..datasets import Dataset, load_dataset
from ..files import write_json
from ..models import build_generator, save_generator
from ..plots import plot_curves, write_csv
from ..resume import Checkpointer, fingerprint
from ..runtime import StageContext, experiment_arg, run_main, seeded_rng, stage
from ..scoring import nll_scores


@dataclass(frozen=True)
class Outputs:
    generator: Path
    curve: Path  # CSV, one row per epoch
    plot: Path | None  # PNG; None: not drawn
    metrics: Path | None  # JSON of the last epoch; None: not written
    checkpoint: Path

    @classmethod
    def of_stage(cls, artifacts: Artifacts) -> "Outputs":
        """Where the pipeline's `pretrain_generator` stage writes (dvc.yaml's outs)."""
        return cls(artifacts.generator_mle, artifacts.curve("pretrain_generator"),
                   artifacts.curve_png("pretrain_generator"), artifacts.metrics("pretrain_generator"),
                   artifacts.checkpoint("pretrain_generator"))


def pretrain(ctx: StageContext, dataset: Dataset, outputs: Outputs) -> torch.nn.Module:
    """MLE-pretrain a generator from params and write `outputs`; returns it. Its random
    streams are named for this stage whatever runs it, so a sweep seed equal to the
    pipeline's seed gives the pipeline's generator, bit for bit."""
    p = ctx.params.pretrain_generator
    torch.manual_seed(ctx.params.seed)  # the generator's initial weights
    generator = build_generator(ctx.params, dataset).to(ctx.device)
    optimizer = adam(generator.parameters(), p.lr)
    rng, eval_rng = (seeded_rng(ctx.params.seed, "pretrain_generator", stream) for stream in ("batches", "eval"))
    history: list[dict] = []
    checkpoints = Checkpointer(
        outputs.checkpoint,
        fingerprint(ctx.params.seed, ctx.params.generator.model_dump(), p.model_dump(), dataset.fingerprint),
    )
    objects, rngs = {"model": generator, "optimizer": optimizer}, {"rng": rng, "eval_rng": eval_rng}
    start, history = checkpoints.restore(objects, rngs) or (0, history)

    progress = tqdm(range(start, p.epochs), desc=f"MLE {ctx.experiment}", unit="epoch", initial=start, total=p.epochs)
    for epoch in progress:
        row = {"epoch": epoch + 1, "train_nll": mle_epoch(generator, optimizer, dataset.train, batch_size=p.batch_size,
                                                       grad_clip=p.grad_clip, rng=rng)}
        if (epoch + 1) % p.eval_every == 0 or epoch + 1 == p.epochs:
            row.update(nll_scores(generator, dataset, p.eval_samples, eval_rng))
        history.append(row)
        progress.set_postfix({k: f"{v:.3f}" for k, v in row.items() if k != "epoch"})
        ctx.tracker.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=epoch + 1)
        checkpoints.save(epoch + 1, history, objects, rngs)

    save_generator(outputs.generator, generator)
    write_csv(outputs.curve, history)
    if outputs.metrics is not None:
        write_json(outputs.metrics, {k: v for k, v in history[-1].items() if k != "epoch"})
    if outputs.plot is not None:
        evaluated = [r for r in history if "nll_test" in r]
        series = {key: ([r["epoch"] for r in evaluated], [r[key] for r in evaluated])
                  for key in ("nll_oracle", "nll_test") if key in evaluated[0]}
        series["train_nll"] = ([r["epoch"] for r in history], [r["train_nll"] for r in history])
        plot_curves(outputs.plot, series, title=f"MLE pretraining ({ctx.experiment})", xlabel="epoch",
                    ylabel="NLL (nats/token)")
        ctx.tracker.log_artifact(outputs.plot, "plots")
    checkpoints.clear()
    return generator


def main() -> None:
    experiment = experiment_arg("pretrain_generator")
    with stage("pretrain_generator", experiment) as ctx:
        pretrain(ctx, load_dataset(ctx.artifacts, ctx.device), Outputs.of_stage(ctx.artifacts))


if __name__ == "__main__":
    run_main(main)
