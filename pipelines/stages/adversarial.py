"""Stage `adversarial`: train the MLE-pretrained generator further by one of the papers'
methods (`adversarial.method`, a key of `seqgan_core.methods.METHODS`; SeqGAN by default).

Each adversarial batch: `g_steps` generator updates by the method, the generator's weight
check, then `d_steps` discriminator rounds for the methods that have a discriminator.
Everything is logged per batch, so a run whose NLL-oracle rises can be diagnosed.
Resumable from `.checkpoints/`: the checkpoint holds the generator, the discriminator the
method trains (the pretrained SeqGAN CNN, or the method's own: RelGAN's, GSGAN's LSTM, the
critic's per-token D), whatever the method names in `stateful()` (optimisers, a delayed
rollout policy) and the random streams. `discriminator_adv.pt` is that discriminator: the
SeqGAN CNN with the `discriminator` params as its config (for ``generator.kind`` leakgan,
with LeakGAN's pad row: `pipelines.models.build_discriminator` rebuilds either), or the
method's own with its class and constructor arguments (``{"class", **config}``) as its config.

`train` is also what the method comparison (`pipelines.stages.compare`) runs, for every
method, writing elsewhere.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from seqgan_core.corpus import EOS_ID
from seqgan_core.methods import METHODS, AdversarialMethod, Common
from seqgan_core.train import check_weights_bounded

from ..contract import Artifacts
from ..datasets import Dataset, load_dataset
from ..files import StageError, write_json
from ..models import build_discriminator, build_generator, load_generator, load_saved, save_generator, save_model
from ..plots import plot_curves, write_csv
from ..resume import Checkpointer, fingerprint
from ..runtime import StageContext, experiment_arg, run_main, seeded_rng, stage
from ..scoring import nll_scores

@dataclass(frozen=True)
class Pretrained:
    """The models a method starts from."""

    generator: Path
    discriminator: Path


@dataclass(frozen=True)
class Outputs:
    generator: Path
    discriminator: Path | None  # None: not written (the comparison keeps only generators)
    curve: Path  # CSV, one row per adversarial batch
    plot: Path
    metrics: Path
    checkpoint: Path

    @classmethod
    def of_stage(cls, artifacts: Artifacts) -> "Outputs":
        """Where the pipeline's `adversarial` stage writes (dvc.yaml's outs)."""
        return cls(artifacts.generator_adv, artifacts.discriminator_adv, artifacts.curve("adversarial"),
                   artifacts.curve_png("adversarial"), artifacts.metrics("adversarial"),
                   artifacts.checkpoint("adversarial"))


def build_method(name: str, ctx: StageContext, dataset: Dataset, generator: torch.nn.Module,
                 discriminator: torch.nn.Module, rng: torch.Generator) -> AdversarialMethod:
    """The method's object (`seqgan_core.methods.METHODS`) with its settings from params."""
    a, d = ctx.params.adversarial, ctx.params.pretrain_discriminator
    common = Common(batches=a.batches, batch_size=a.batch_size, lr=a.lr, grad_clip=a.grad_clip, d_lr=d.lr,
                    d_batch_size=d.batch_size, d_epochs=a.d_epochs, d_negatives=a.d_negatives,
                    execution=ctx.params.execution)
    cls = METHODS[name]
    settings = cls.Settings.from_dict(getattr(ctx.params.methods, name).model_dump())
    return cls(generator, discriminator, dataset.train, settings, common, rng,
               eos_id=None if dataset.kind.has_oracle else EOS_ID)


def train(ctx: StageContext, dataset: Dataset, method: str, pretrained: Pretrained, outputs: Outputs) -> torch.nn.Module:
    """Run `method` from the `pretrained` models for `adversarial.batches` batches and write
    `outputs`; returns the trained generator."""
    a = ctx.params.adversarial
    ctx.tracker.set_tags({"seqgan.method": method})
    # Random streams named for this loop, not for the stage that runs it: the comparison's
    # row for a method repeats the pipeline's own run of it exactly.
    rng, eval_rng = (seeded_rng(ctx.params.seed, "adversarial", stream) for stream in ("batches", "eval"))
    untrained = METHODS[method].starts_untrained
    if untrained:
        torch.manual_seed(ctx.params.seed)
        generator = build_generator(ctx.params, dataset).to(ctx.device)
    else:
        generator = load_generator(pretrained.generator, ctx.device)
    kinds = METHODS[method].generator_kinds
    if generator.kind not in kinds:
        raise StageError(f"{method} trains {' or '.join(kinds)} generators but {pretrained.generator} holds a "
                         f"{generator.kind} generator: set generator.kind: {kinds[0]} and re-run `dvc repro`")
    saved_d = load_saved(pretrained.discriminator)
    discriminator = build_discriminator(ctx.params, dataset)
    discriminator.load_state_dict(saved_d["state_dict"])
    discriminator.to(ctx.device)
    trainer = build_method(method, ctx, dataset, generator, discriminator, rng)
    # The authors train D with one Adam, pretraining and adversarial rounds alike; a method
    # that trains a discriminator of its own starts that one's Adam afresh.
    if a.d_optimizer == "continue" and trainer.discriminator is discriminator:
        if "optimizer" not in saved_d:
            raise StageError(f"{pretrained.discriminator} holds no optimiser state (it predates "
                             "adversarial.d_optimizer); re-run the stage that wrote it with `dvc repro -f`, "
                             "or set adversarial.d_optimizer: fresh")
        trainer.d_optimizer.load_state_dict(saved_d["optimizer"])
        for group in trainer.d_optimizer.param_groups:  # the state carries on; the rate is the method's
            group["lr"] = trainer.discriminator_lr()
    batches = a.batches if METHODS[method].trains else 0

    history: list[dict] = [{"batch": 0, **nll_scores(generator, dataset, a.eval_samples, eval_rng)}]
    checkpoints = Checkpointer(
        outputs.checkpoint,
        fingerprint(ctx.params.seed, method, a.model_dump(), getattr(ctx.params.methods, method).model_dump(),
                    ctx.params.discriminator.model_dump(), dataset.fingerprint,
                    files=[pretrained.generator, pretrained.discriminator]),
    )
    objects = {"generator": generator, "discriminator": trainer.discriminator, **trainer.stateful()}
    rngs = {"rng": rng, "eval_rng": eval_rng}
    start, history = checkpoints.restore(objects, rngs) or (0, history)

    progress = tqdm(range(start, batches), desc=f"{method} {ctx.experiment}", unit="batch", initial=start, total=batches)
    for batch in progress:
        for _ in range(a.g_steps):
            row = trainer.generator_step(batch)
        # An exploding generator keeps every loss finite: stop it before it is checkpointed or saved.
        check_weights_bounded(generator, a.max_abs_weight, advice="Lower adversarial.lr, or raise "
                              "adversarial.max_abs_weight if weights this large are intended.")
        for _ in range(a.d_steps):
            row.update(trainer.discriminator_step(batch))
        if (batch + 1) % a.eval_every == 0 or batch + 1 == batches:
            row.update(nll_scores(generator, dataset, a.eval_samples, eval_rng))
        history.append({"batch": batch + 1, **row})
        progress.set_postfix({k: f"{v:.3f}" for k, v in row.items() if k.startswith(("nll", "mean_reward", "d_acc"))})
        ctx.tracker.log_metrics(row, step=batch + 1)
        if (batch + 1) % a.checkpoint_every == 0:
            checkpoints.save(batch + 1, history, objects, rngs)

    save_generator(outputs.generator, generator)
    if outputs.discriminator is not None:  # unchanged from pretraining for the methods without D
        trained = trainer.discriminator
        config = (ctx.params.discriminator.model_dump() if trained is discriminator
                  else {"class": f"{type(trained).__module__}.{type(trained).__name__}", **trained.config()})
        save_model(outputs.discriminator, trained, config)
    write_json(outputs.metrics, {"method": method, **{k: v for k, v in history[-1].items() if k != "batch"}})
    write_csv(outputs.curve, history)
    plot_history(ctx, dataset, method, history, outputs.plot)
    checkpoints.clear()
    return generator


def plot_history(ctx: StageContext, dataset: Dataset, method: str, history: list[dict], png: Path) -> None:
    evaluated = [r for r in history if "nll_test" in r]
    key = dataset.kind.curve_metric
    plot_curves(
        png, {key: ([r["batch"] for r in evaluated], [r[key] for r in evaluated])},
        title=f"Adversarial training ({ctx.experiment}, {method})", xlabel="adversarial batch",
        ylabel="NLL (nats/token)",
        hlines={"start": evaluated[0][key],
                **({"oracle samples": dataset.reference_nll["nll_oracle_data"]} if dataset.kind.has_oracle else {})},
    )
    ctx.tracker.log_artifact(png, "plots")


def main() -> None:
    experiment = experiment_arg("adversarial")
    with stage("adversarial", experiment) as ctx:
        dataset = load_dataset(ctx.artifacts, ctx.device)
        a = ctx.artifacts
        train(ctx, dataset, ctx.params.adversarial.method, Pretrained(a.generator_mle, a.discriminator_pre),
              Outputs.of_stage(a))


if __name__ == "__main__":
    run_main(main)
