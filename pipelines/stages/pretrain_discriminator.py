"""Stage `pretrain_discriminator`: rounds of fresh generator negatives against the real data.
`pretrain` is also what the comparison sweep runs for each of its seeds, writing elsewhere."""
from __future__ import annotations

from pathlib import Path

import torch
from tqdm import tqdm

from seqgan_core.train import adam, discriminator_round

from ..datasets import Dataset, load_dataset
from ..files import write_json
from ..models import build_discriminator, load_generator, save_model
from ..runtime import StageContext, experiment_arg, run_main, seeded_rng, stage


def pretrain(ctx: StageContext, dataset: Dataset, generator_path: Path, out: Path, metrics_path: Path | None) -> None:
    """Pretrain D against the generator at `generator_path`; save it (with its optimiser's
    state, which adversarial training continues) to `out`. Seeded as its own stage would be."""
    p = ctx.params.pretrain_discriminator
    generator = load_generator(generator_path, ctx.device)
    torch.manual_seed(ctx.params.seed)  # D's initial weights and its dropout
    discriminator = build_discriminator(ctx.params, dataset).to(ctx.device)
    optimizer = adam(discriminator.parameters(), p.lr)
    rng = seeded_rng(ctx.params.seed, "pretrain_discriminator", "rounds")
    progress = tqdm(range(p.rounds), desc=f"D pretrain {ctx.experiment}", unit="round")
    for round_ in progress:
        negatives = generator.sample(p.negatives, rng=rng)
        metrics = discriminator_round(discriminator, optimizer, dataset.train, negatives,
                                      epochs=p.epochs, batch_size=p.batch_size, rng=rng,
                                      execution=ctx.params.execution)
        progress.set_postfix({k: f"{v:.3f}" for k, v in metrics.items()})
        ctx.tracker.log_metrics(metrics, step=round_ + 1)
    save_model(out, discriminator, ctx.params.discriminator.model_dump(), optimizer)
    if metrics_path is not None:
        write_json(metrics_path, metrics)


def main() -> None:
    experiment = experiment_arg("pretrain_discriminator")
    with stage("pretrain_discriminator", experiment) as ctx:
        a = ctx.artifacts
        pretrain(ctx, load_dataset(a, ctx.device), a.generator_mle, a.discriminator_pre,
                 a.metrics("pretrain_discriminator"))


if __name__ == "__main__":
    run_main(main)
