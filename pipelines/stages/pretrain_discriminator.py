"""Stage `pretrain_discriminator`: rounds of fresh generator negatives against the real data."""
from __future__ import annotations

from tqdm import tqdm

from seqgan_core.train import adam, discriminator_round

from ..datasets import load_dataset
from ..files import write_json
from ..models import build_discriminator, load_generator, save_model
from ..runtime import experiment_arg, run_main, stage


def main() -> None:
    experiment = experiment_arg("pretrain_discriminator")
    with stage("pretrain_discriminator", experiment) as ctx:
        p = ctx.params.pretrain_discriminator
        dataset = load_dataset(ctx.artifacts, ctx.device)
        generator = load_generator(ctx.artifacts.generator_mle, ctx.device)
        discriminator = build_discriminator(ctx.params, dataset).to(ctx.device)
        optimizer = adam(discriminator.parameters(), p.lr)
        rng = ctx.rng("rounds")
        progress = tqdm(range(p.rounds), desc=f"D pretrain {experiment}", unit="round")
        for round_ in progress:
            negatives = generator.sample(p.negatives, rng=rng)
            metrics = discriminator_round(discriminator, optimizer, dataset.train, negatives,
                                          epochs=p.epochs, batch_size=p.batch_size, rng=rng)
            progress.set_postfix({k: f"{v:.3f}" for k, v in metrics.items()})
            ctx.tracker.log_metrics(metrics, step=round_ + 1)
        save_model(ctx.artifacts.discriminator_pre, discriminator, ctx.params.discriminator.model_dump(), optimizer)
        write_json(ctx.artifacts.metrics("pretrain_discriminator"), metrics)


if __name__ == "__main__":
    run_main(main)
