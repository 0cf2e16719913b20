"""Stage `pretrain_discriminator`: rounds of fresh generator negatives against the real data.
For ``generator.kind`` leakgan the discriminator was pretrained with the generator
(`pretrain_generator.interleaved`); this stage writes that one out.
`pretrain` is also what the comparison sweep runs for each of its seeds, writing elsewhere."""
from __future__ import annotations

from pathlib import Path

import torch
from tqdm import tqdm

from seqgan_core.train import adam, discriminator_round

from ..datasets import Dataset, load_dataset
from ..files import StageError, write_json
from ..models import build_discriminator, load_generator, load_saved, save_model
from ..runtime import StageContext, experiment_arg, run_main, seeded_rng, stage


def pretrain(ctx: StageContext, dataset: Dataset, generator_path: Path, out: Path, metrics_path: Path | None) -> None:
    """Pretrain D against the generator at `generator_path`; save it (with its optimiser's
    state, which adversarial training continues) to `out`. Seeded as its own stage would be."""
    if ctx.params.generator.kind == "leakgan":
        discriminator, optimizer, metrics = interleaved_discriminator(ctx, dataset, generator_path)
    else:
        discriminator, optimizer, metrics = rounds(ctx, dataset, generator_path)
    save_model(out, discriminator, ctx.params.discriminator.model_dump(), optimizer)
    if metrics_path is not None:
        write_json(metrics_path, metrics)


def rounds(ctx: StageContext, dataset: Dataset,
           generator_path: Path) -> tuple[torch.nn.Module, torch.optim.Optimizer, dict[str, float]]:
    """``pretrain_discriminator.rounds`` rounds, each on fresh negatives of the generator."""
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
    return discriminator, optimizer, metrics


def interleaved_discriminator(ctx: StageContext, dataset: Dataset,
                              generator_path: Path) -> tuple[torch.nn.Module, torch.optim.Optimizer, dict[str, float]]:
    """LeakGAN's D at the end of the interleaved pretraining, from the generator's checkpoint:
    its weights are the generator's leaked feature extractor, its Adam state and last
    pass's metrics are saved beside them. No further training: the code's adversarial
    phase starts from this D."""
    saved = load_saved(generator_path)
    if "discriminator_optimizer" not in saved:
        raise StageError(f"{generator_path} holds no LeakGAN discriminator (not written by the interleaved "
                         "pretraining of generator.kind leakgan); re-run pretrain_generator")
    prefix = "feature_extractor."
    weights = {k.removeprefix(prefix): v for k, v in saved["state_dict"].items() if k.startswith(prefix)}
    discriminator = build_discriminator(ctx.params, dataset)
    try:
        discriminator.load_state_dict(weights)
    except RuntimeError as exc:
        raise StageError(f"the discriminator in {generator_path} does not have the `discriminator` params' sizes "
                         f"({str(exc).splitlines()[0]}); re-run pretrain_generator") from None
    discriminator.to(ctx.device)
    optimizer = adam(discriminator.parameters(), ctx.params.methods.leakgan.d_lr)
    optimizer.load_state_dict(saved["discriminator_optimizer"])  # its rate included
    return discriminator, optimizer, saved["discriminator_metrics"]


def main() -> None:
    experiment = experiment_arg("pretrain_discriminator")
    with stage("pretrain_discriminator", experiment) as ctx:
        a = ctx.artifacts
        pretrain(ctx, load_dataset(a, ctx.device), a.generator_mle, a.discriminator_pre,
                 a.metrics("pretrain_discriminator"))


if __name__ == "__main__":
    run_main(main)
