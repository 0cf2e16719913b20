"""Stage `adversarial`: train the MLE-pretrained generator further by one of the papers'
methods (`adversarial.method`; SeqGAN by default).

Each adversarial batch: `g_steps` generator updates by the method, an update of the
delayed rollout policy if one is used, then, for the methods that have a discriminator
(SeqGAN, MaliGAN), `d_steps` discriminator rounds on fresh negatives. Everything is
logged per batch, so a run whose NLL-oracle rises can be diagnosed. Resumable from
`.checkpoints/`.

The methods (generator updates in seqgan_core.train), all with the same budget of
`batches` x `g_steps` updates on batches of `batch_size` sequences:

- `random`: no training; an untrained generator, the first row of the SeqGAN paper's table
- `mle`: continued teacher-forced MLE on real batches
- `scheduled_sampling`: MLE reading the model's own sample with a probability that grows
  per batch (`scheduled_sampling`)
- `pg_bleu`: SeqGAN's loop with BLEU against part of the training data as the reward (`pg_bleu`)
- `seqgan`: policy gradient with Monte-Carlo rollout rewards from D
- `maligan_basic`: importance weights D/(1-D) over a batch of samples
- `maligan_full`: mixed MLE: real prefixes, `maligan.completions` samples each, the
  prefix shrinking by `maligan.prefix_drop` per batch

`train` is also what the method comparison (`pipelines.stages.compare`) runs, for every
method, writing elsewhere.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from seqgan_core import DelayedPolicy, Discriminator, Generator, randomness
from seqgan_core.bleu import BLEUReward
from seqgan_core.corpus import EOS_ID
from seqgan_core.train import (adam, check_weights_bounded, discriminator_round, maligan_generator_step,
                               mixed_mle_prefix_length, mle_step, scheduled_sampling_step, seqgan_generator_step,
                               teacher_forcing_probability)

from ..config import ADVERSARIAL_METHODS
from ..plots import plot_curves, write_csv
from ..resume import Checkpointer, fingerprint
from ..runtime import (Dataset, ExperimentPaths, StageContext, build_discriminator, build_generator, experiment_arg,
                       generator_config, load_dataset, load_generator, load_model_state, run_main, save_model,
                       seeded_rng, stage, write_json)
from ..scoring import nll_scores

GeneratorUpdate = Callable[[int], dict[str, float]]  # adversarial batch index -> metrics


@dataclass(frozen=True)
class Outputs:
    generator: Path
    discriminator: Path | None  # None: not written (the comparison keeps only generators)
    curve: Path  # CSV, one row per adversarial batch
    plot: Path
    metrics: Path
    checkpoint: Path

    @classmethod
    def of_stage(cls, paths: ExperimentPaths) -> "Outputs":
        """Where the pipeline's `adversarial` stage writes (dvc.yaml's outs)."""
        return cls(paths.models / "generator_adv.pt", paths.models / "discriminator_adv.pt",
                   paths.plots / "adversarial.csv", paths.plots / "adversarial.png",
                   paths.metrics / "adversarial.json", paths.checkpoints / "adversarial.pt")


def generator_update(
    method: str,
    ctx: StageContext,
    dataset: Dataset,
    generator: Generator,
    discriminator: Discriminator,
    optimizer: torch.optim.Optimizer,
    rollout_policy: Generator | None,
    rng: torch.Generator,
) -> GeneratorUpdate:
    """The method's generator update, as a function of the adversarial batch's index
    (the schedules of scheduled sampling and of MaliGAN's mixed MLE depend on it)."""
    a = ctx.params.adversarial

    def real_batch(n: int) -> torch.Tensor:
        rows = randomness.randint(len(dataset.train), (n,), rng, device="cpu")
        return dataset.train[rows].to(generator.device)

    def policy_gradient(reward, n_rollouts: int) -> GeneratorUpdate:
        return lambda batch: seqgan_generator_step(
            generator, reward, optimizer, batch_size=a.batch_size, n_rollouts=n_rollouts,
            rollout_policy=rollout_policy, reduction=a.pg_reduction,
            baseline=None if a.baseline == "none" else a.baseline, grad_clip=a.grad_clip, rng=rng,
        )

    def maligan(prefixes: Callable[[int], torch.Tensor], completions: int) -> GeneratorUpdate:
        return lambda batch: maligan_generator_step(
            generator, discriminator, optimizer, prefixes(batch), completions=completions,
            baseline=a.maligan.baseline == "mean_weight", grad_clip=a.grad_clip, rng=rng,
        )

    if method == "random":  # never called: `train` runs no batches for the untrained generator
        return lambda batch: {}
    if method == "mle":
        return lambda batch: {"g_loss": mle_step(generator, optimizer, real_batch(a.batch_size), grad_clip=a.grad_clip)}
    if method == "scheduled_sampling":
        s = a.scheduled_sampling
        return lambda batch: scheduled_sampling_step(
            generator, optimizer, real_batch(a.batch_size),
            teacher_forcing_probability(batch, start=s.start, decay=s.decay, floor=s.floor), grad_clip=a.grad_clip, rng=rng,
        )
    if method == "seqgan":
        return policy_gradient(discriminator, a.n_rollouts)
    if method == "pg_bleu":
        # References: a fixed, seeded share of the training data (the authors: a random 40%).
        n = len(dataset.train)
        references_rng = seeded_rng(ctx.params.seed, "adversarial", "pg_bleu_references")
        share = randomness.randperm(n, references_rng, device="cpu")
        references = dataset.train[share[: max(1, round(a.pg_bleu.reference_fraction * n))]]
        reward = BLEUReward(references, a.pg_bleu.order, eos_id=EOS_ID if dataset.vocab is not None else None)
        return policy_gradient(reward, a.pg_bleu.n_rollouts)
    if method == "maligan_basic":
        no_prefix = torch.empty(1, 0, dtype=torch.long, device=generator.device)
        return maligan(lambda batch: no_prefix, a.batch_size)
    if method == "maligan_full":
        m = a.maligan.completions
        return maligan(
            lambda batch: real_batch(a.batch_size // m)[:, : mixed_mle_prefix_length(batch, dataset.seq_len, a.maligan.prefix_drop)],
            m,
        )
    raise ValueError(f"no generator update for method {method!r}")


def train(ctx: StageContext, dataset: Dataset, method: str, outputs: Outputs) -> Generator:
    """Run `method` from the pretrained models for `adversarial.batches` batches and write
    `outputs`; returns the trained generator."""
    a = ctx.params.adversarial
    ctx.tracker.set_tags({"seqgan.method": method})
    # Random streams named for this loop, not for the stage that runs it: the comparison's
    # row for a method repeats the pipeline's own run of it exactly.
    rng, eval_rng = (seeded_rng(ctx.params.seed, "adversarial", stream) for stream in ("batches", "eval"))
    if method == "random":
        torch.manual_seed(ctx.params.seed)
        generator = build_generator(ctx.params, dataset).to(ctx.device)
    else:
        generator = load_generator(ctx.paths.models / "generator_mle.pt", ctx.device)
    discriminator = load_model_state(build_discriminator(ctx.params, dataset), ctx.paths.models / "discriminator_pre.pt")
    discriminator.to(ctx.device)
    g_optimizer = adam(generator.parameters(), a.lr)
    d_optimizer = adam(discriminator.parameters(), ctx.params.pretrain_discriminator.lr)
    policy = DelayedPolicy(generator, a.rollout_rate) if a.rollout_policy == "delayed" and method in ("seqgan", "pg_bleu") else None
    update = generator_update(method, ctx, dataset, generator, discriminator, g_optimizer,
                              policy.model if policy else None, rng)
    trains_discriminator = method in ADVERSARIAL_METHODS
    batches = 0 if method == "random" else a.batches

    history: list[dict] = [{"batch": 0, **nll_scores(generator, dataset, a.eval_samples, eval_rng)}]
    checkpoints = Checkpointer(
        outputs.checkpoint,
        fingerprint(ctx.params.seed, method, a.model_dump(), ctx.params.discriminator.model_dump(), dataset.fingerprint,
                    files=[ctx.paths.models / "generator_mle.pt", ctx.paths.models / "discriminator_pre.pt"]),
    )
    objects = {"generator": generator, "discriminator": discriminator, "g_optimizer": g_optimizer,
               "d_optimizer": d_optimizer, **({"policy": policy.model} if policy else {})}
    rngs = {"rng": rng, "eval_rng": eval_rng}
    start, history = checkpoints.restore(objects, rngs) or (0, history)

    progress = tqdm(range(start, batches), desc=f"{method} {ctx.experiment}", unit="batch", initial=start, total=batches)
    for batch in progress:
        for _ in range(a.g_steps):
            row = update(batch)
        # An exploding generator keeps every loss finite: stop it before it is checkpointed or saved.
        check_weights_bounded(generator, a.max_abs_weight, advice="Lower adversarial.lr, or raise "
                              "adversarial.max_abs_weight if weights this large are intended.")
        if policy is not None:
            policy.update(generator)
        for _ in range(a.d_steps if trains_discriminator else 0):
            negatives = generator.sample(a.d_negatives, rng=rng)
            row.update(discriminator_round(discriminator, d_optimizer, dataset.train, negatives, epochs=a.d_epochs,
                                           batch_size=ctx.params.pretrain_discriminator.batch_size, rng=rng))
        if (batch + 1) % a.eval_every == 0 or batch + 1 == batches:
            row.update(nll_scores(generator, dataset, a.eval_samples, eval_rng))
        history.append({"batch": batch + 1, **row})
        progress.set_postfix({k: f"{v:.3f}" for k, v in row.items() if k.startswith(("nll", "mean_reward", "d_acc"))})
        ctx.tracker.log_metrics(row, step=batch + 1)
        if (batch + 1) % a.checkpoint_every == 0:
            checkpoints.save(batch + 1, history, objects, rngs)

    save_model(outputs.generator, generator, generator_config(generator))
    if outputs.discriminator is not None:  # unchanged from pretraining for the methods without D
        save_model(outputs.discriminator, discriminator, ctx.params.discriminator.model_dump())
    write_json(outputs.metrics, {"method": method, **{k: v for k, v in history[-1].items() if k != "batch"}})
    write_csv(outputs.curve, history)
    plot_history(ctx, dataset, method, history, outputs.plot)
    checkpoints.clear()
    return generator


def plot_history(ctx: StageContext, dataset: Dataset, method: str, history: list[dict], png: Path) -> None:
    evaluated = [r for r in history if "nll_test" in r]
    key = "nll_oracle" if "nll_oracle" in evaluated[0] else "nll_test"
    plot_curves(
        png, {key: ([r["batch"] for r in evaluated], [r[key] for r in evaluated])},
        title=f"Adversarial training ({ctx.experiment}, {method})", xlabel="adversarial batch",
        ylabel="NLL (nats/token)",
        hlines={"start": evaluated[0][key],
                **({"oracle samples": dataset.reference_nll["nll_oracle_data"]} if key == "nll_oracle" else {})},
    )
    ctx.tracker.log_artifact(png, "plots")


def main() -> None:
    experiment = experiment_arg("adversarial")
    with stage("adversarial", experiment) as ctx:
        dataset = load_dataset(ctx.paths, ctx.device)
        train(ctx, dataset, ctx.params.adversarial.method, Outputs.of_stage(ctx.paths))


if __name__ == "__main__":
    run_main(main)
