"""Stage `pretrain_generator`: MLE (teacher forcing) on the training data, keeping the
last epoch's generator (the papers) or the one with the lowest held-out NLL
(``keep: best_valid``); for ``generator.kind`` leakgan, LeakGAN's interleaved pretraining
of the generator and its discriminator (`interleaved`).

Resumable: a killed run continues from its last checkpoint in `.checkpoints/`.
`pretrain` is also what the comparison sweep runs for each of its seeds, writing elsewhere.
"""
from __future__ import annotations

import copy
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from seqgan_core.leakgan import discriminator_pass, generator_optimizers, pretrain_generator_epoch
from seqgan_core import sequence_nll
from seqgan_core.train import adam, check_weights_bounded, hold_out, mle_epoch

from ..config import Params
from ..contract import Artifacts
from ..datasets import Dataset, load_dataset
from ..files import write_json
from ..models import build_discriminator, build_generator, save_generator
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


def leakgan_inputs(params: Params) -> list[Any]:
    """What LeakGAN's pretraining reads beyond the generator's own sections: D's sizes and
    passes, and the rates and code options it shares with the adversarial phase (dvc.yaml
    lists the same params for the stage)."""
    m = params.methods.leakgan.model_dump()
    return [params.discriminator.model_dump(), params.pretrain_discriminator.model_dump(),
            {key: m[key] for key in ("lr", "d_lr", "cosine_reduction", "temperature_trick")}]


def pretrain(ctx: StageContext, dataset: Dataset, outputs: Outputs) -> torch.nn.Module:
    """Pretrain a generator from params and write `outputs`; returns it. Its random streams
    are named for this stage whatever runs it, so a sweep seed equal to the pipeline's seed
    gives the pipeline's generator, bit for bit."""
    params, p = ctx.params, ctx.params.pretrain_generator
    torch.manual_seed(params.seed)  # the generator's initial weights (and LeakGAN's D's, drawn next)
    generator = build_generator(params, dataset).to(ctx.device)
    rngs = {"rng": seeded_rng(params.seed, "pretrain_generator", "batches"),
            "eval_rng": seeded_rng(params.seed, "pretrain_generator", "eval")}
    leakgan = generator.kind == "leakgan"
    checkpoints = Checkpointer(outputs.checkpoint, fingerprint(
        params.seed, params.generator.model_dump(), p.model_dump(), dataset.fingerprint,
        *(leakgan_inputs(params) if leakgan else [])))
    train = interleaved if leakgan else maximum_likelihood
    history, extra = train(ctx, dataset, generator, checkpoints, rngs)

    save_generator(outputs.generator, generator, **extra)
    curve = [row for row in history if "epoch" in row]  # LeakGAN's D passes are in its epochs' rows
    write_csv(outputs.curve, curve)
    summary = {k: v for k, v in curve[-1].items() if k not in ("epoch", "round")}
    if "kept_epoch" in extra:  # keep: best_valid: the generator is that epoch's, scored afresh
        kept = curve[extra["kept_epoch"] - 1]
        summary = {"kept_epoch": kept["epoch"], "valid_nll": kept["valid_nll"],
                   **nll_scores(generator, dataset, p.eval_samples, rngs["eval_rng"])}
        ctx.tracker.log_metrics({f"kept_{k}": v for k, v in summary.items()})
        print(f"note: kept the generator of epoch {kept['epoch']} of {len(curve)}, the lowest NLL on the held-out "
              f"{p.valid_fraction:g} of the training split ({kept['valid_nll']:.3f})", file=sys.stderr)
    if outputs.metrics is not None:
        write_json(outputs.metrics, summary)
    if outputs.plot is not None:
        evaluated = [r for r in curve if "nll_test" in r]
        series = {key: ([r["epoch"] for r in evaluated], [r[key] for r in evaluated])
                  for key in ("nll_oracle", "nll_test") if key in evaluated[0]}
        series["train_nll"] = ([r["epoch"] for r in curve], [r["train_nll"] for r in curve])
        if "kept_epoch" in extra:
            series["valid_nll"] = ([r["epoch"] for r in curve], [r["valid_nll"] for r in curve])
        plot_curves(outputs.plot, series, title=f"MLE pretraining ({ctx.experiment})", xlabel="epoch",
                    ylabel="NLL (nats/token)")
        ctx.tracker.log_artifact(outputs.plot, "plots")
    checkpoints.clear()
    return generator


def maximum_likelihood(ctx: StageContext, dataset: Dataset, generator: torch.nn.Module, checkpoints: Checkpointer,
                       rngs: dict[str, torch.Generator]) -> tuple[list[dict], dict[str, Any]]:
    """`pretrain_generator.epochs` MLE epochs; the history, and what to save beside the
    generator. With ``keep: best_valid`` the epochs train on the training split less a
    held-out share (``valid_fraction``, drawn on its own stream), the history gains each
    epoch's NLL on that share, and the generator ends as the epoch with the lowest one left
    it (the first such epoch on a tie), saved with its number as ``kept_epoch``."""
    p = ctx.params.pretrain_generator
    optimizer = adam(generator.parameters(), p.lr)
    objects = {"model": generator, "optimizer": optimizer}
    train, valid = dataset.train, None
    if p.keep == "best_valid":
        train, valid = hold_out(dataset.train, p.valid_fraction,
                                seeded_rng(ctx.params.seed, "pretrain_generator", "valid_split"))
        objects["best_model"] = best = copy.deepcopy(generator)  # checkpointed: a resumed run keeps its best
    start, history = checkpoints.restore(objects, rngs) or (0, [])
    bar = progress(ctx, "MLE", start, p.epochs, "epoch")
    for epoch in bar:
        row = {"epoch": epoch + 1, "train_nll": mle_epoch(generator, optimizer, train, batch_size=p.batch_size,
                                                       grad_clip=p.grad_clip, rng=rngs["rng"])}
        if valid is not None:
            row["valid_nll"] = sequence_nll(generator, valid)
            if row["valid_nll"] < min((r["valid_nll"] for r in history), default=float("inf")):
                best.load_state_dict(generator.state_dict())
        record(ctx, dataset, generator, rngs, history, row, bar, epoch + 1,
               evaluate=(epoch + 1) % p.eval_every == 0 or epoch + 1 == p.epochs)
        checkpoints.save(epoch + 1, history, objects, rngs)
    if valid is None:
        return history, {}
    generator.load_state_dict(best.state_dict())
    return history, {"kept_epoch": min(history, key=lambda r: r["valid_nll"])["epoch"]}


def interleaved(ctx: StageContext, dataset: Dataset, generator: torch.nn.Module, checkpoints: Checkpointer,
                rngs: dict[str, torch.Generator]) -> tuple[list[dict], dict[str, Any]]:
    """LeakGAN's pretraining, as its official code: ``pretrain_generator.leakgan.rounds`` x
    (``d_passes`` D passes, each on ``pretrain_discriminator.negatives`` fresh samples for
    ``.epochs`` epochs, after which the generator reads the updated D; then ``g_epochs``
    epochs of the manager's goal loss and the worker's MLE), with ``methods.leakgan``'s
    rates, cosine reduction and temperature trick. The code's schedule is 10 x (5, 8)
    (the paper profile); each D pass and each epoch is a checkpointed step.

    The discriminator ends inside the generator's checkpoint: its weights are the
    generator's leaked feature extractor (synced after every pass; epochs leave D alone),
    its Adam state and last pass's metrics are saved beside them, and
    `pretrain_discriminator` passes both on as ``discriminator_pre.pt``: adversarial
    training starts from the D whose features the manager learnt to read."""
    params = ctx.params
    p, dp, m = params.pretrain_generator, params.pretrain_discriminator, params.methods.leakgan
    s = p.leakgan
    discriminator = build_discriminator(params, dataset).to(ctx.device)
    optimizers, d_optimizer = generator_optimizers(generator, m.lr), adam(discriminator.parameters(), m.d_lr)
    objects = {"model": generator, "optimizer": optimizers, "discriminator": discriminator, "d_optimizer": d_optimizer}
    start, history = checkpoints.restore(objects, rngs) or (0, [])
    per_round = s.d_passes + s.g_epochs
    bar = progress(ctx, "LeakGAN pretraining", start, s.rounds * per_round, "step")
    for step in bar:
        round_, within = divmod(step, per_round)
        if within < s.d_passes:
            row = {"round": round_ + 1, "d_pass": round_ * s.d_passes + within + 1, **discriminator_pass(
                generator, discriminator, d_optimizer, dataset.train, negatives=dp.negatives, epochs=dp.epochs,
                batch_size=dp.batch_size, temperature_trick=m.temperature_trick, rng=rngs["rng"],
                execution=params.execution)}
            history.append(row)
            ctx.tracker.log_metrics(pass_metrics(row), step=step + 1)
        else:
            epoch = round_ * s.g_epochs + within - s.d_passes + 1
            stats = pretrain_generator_epoch(generator, optimizers, dataset.train, batch_size=p.batch_size,
                                             grad_clip=p.grad_clip, reduction=m.cosine_reduction, rng=rngs["rng"])
            last_pass = next(r for r in reversed(history) if "d_pass" in r)
            row = {"epoch": epoch, "round": round_ + 1, "train_nll": stats["worker_nll"],
                   "manager_loss": stats["manager_loss"], "d_loss": last_pass["d_loss"],
                   "d_accuracy": last_pass["d_accuracy"]}
            record(ctx, dataset, generator, rngs, history, row, bar, step + 1,
                   evaluate=epoch % p.eval_every == 0 or step + 1 == s.rounds * per_round)
        checkpoints.save(step + 1, history, objects, rngs)
    last_pass = next(r for r in reversed(history) if "d_pass" in r)
    return history, {"discriminator_optimizer": d_optimizer.state_dict(),
                     "discriminator_metrics": pass_metrics(last_pass)}


def pass_metrics(row: dict) -> dict[str, float]:
    """A D pass's metrics (`seqgan_core.train.discriminator_round`'s) from its history row."""
    return {k: v for k, v in row.items() if k not in ("round", "d_pass")}


def progress(ctx: StageContext, what: str, start: int, total: int, unit: str) -> tqdm:
    return tqdm(range(start, total), desc=f"{what} {ctx.experiment}", unit=unit, initial=start, total=total)


def record(ctx: StageContext, dataset: Dataset, generator: torch.nn.Module, rngs: dict[str, torch.Generator],
           history: list[dict], row: dict, bar: tqdm, step: int, *, evaluate: bool) -> None:
    """An epoch's row, with the NLL scores when ``evaluate``: kept, shown, logged at ``step``.
    A generator whose weights exploded stops the stage first (its losses can stay finite),
    with the previous epoch's checkpoint kept and the previous outputs untouched."""
    p = ctx.params.pretrain_generator
    check_weights_bounded(generator, ctx.params.adversarial.max_abs_weight,
                          advice="Lower pretrain_generator.lr or generator.init_std, or raise adversarial.max_abs_weight "
                                 "if weights this large are intended.")
    if evaluate:
        row.update(nll_scores(generator, dataset, p.eval_samples, rngs["eval_rng"]))
    history.append(row)
    bar.set_postfix({k: f"{v:.3f}" for k, v in row.items() if k not in ("epoch", "round")})
    ctx.tracker.log_metrics({k: v for k, v in row.items() if k not in ("epoch", "round")}, step=step)


def main() -> None:
    experiment = experiment_arg("pretrain_generator")
    with stage("pretrain_generator", experiment) as ctx:
        pretrain(ctx, load_dataset(ctx.artifacts, ctx.device), Outputs.of_stage(ctx.artifacts))


if __name__ == "__main__":
    run_main(main)
