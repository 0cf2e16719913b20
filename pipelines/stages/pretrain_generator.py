"""Stage `pretrain_generator`: MLE (teacher forcing) on the training data.

Resumable: a killed run continues from its last checkpoint in `.checkpoints/`.
"""
from __future__ import annotations

from tqdm import tqdm

from seqgan_core.train import adam, mle_epoch

from ..plots import plot_curves, write_csv
from ..resume import Checkpointer, fingerprint
from ..datasets import load_dataset
from ..files import write_json
from ..models import build_generator, save_generator
from ..runtime import experiment_arg, run_main, stage
from ..scoring import nll_scores


def main() -> None:
    experiment = experiment_arg("pretrain_generator")
    with stage("pretrain_generator", experiment) as ctx:
        p = ctx.params.pretrain_generator
        dataset = load_dataset(ctx.artifacts, ctx.device)
        generator = build_generator(ctx.params, dataset).to(ctx.device)
        optimizer = adam(generator.parameters(), p.lr)
        rng, eval_rng = ctx.rng("batches"), ctx.rng("eval")
        history: list[dict] = []
        checkpoints = Checkpointer(
            ctx.artifacts.checkpoint("pretrain_generator"),
            fingerprint(ctx.params.seed, ctx.params.generator.model_dump(), p.model_dump(), dataset.fingerprint),
        )
        objects, rngs = {"model": generator, "optimizer": optimizer}, {"rng": rng, "eval_rng": eval_rng}
        start, history = checkpoints.restore(objects, rngs) or (0, history)

        progress = tqdm(range(start, p.epochs), desc=f"MLE {experiment}", unit="epoch", initial=start, total=p.epochs)
        for epoch in progress:
            row = {"epoch": epoch + 1, "train_nll": mle_epoch(generator, optimizer, dataset.train, batch_size=p.batch_size,
                                                           grad_clip=p.grad_clip, rng=rng)}
            if (epoch + 1) % p.eval_every == 0 or epoch + 1 == p.epochs:
                row.update(nll_scores(generator, dataset, p.eval_samples, eval_rng))
            history.append(row)
            progress.set_postfix({k: f"{v:.3f}" for k, v in row.items() if k != "epoch"})
            ctx.tracker.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=epoch + 1)
            checkpoints.save(epoch + 1, history, objects, rngs)

        save_generator(ctx.artifacts.generator_mle, generator)
        final = {k: v for k, v in history[-1].items() if k != "epoch"}
        write_json(ctx.artifacts.metrics("pretrain_generator"), final)
        write_csv(ctx.artifacts.curve("pretrain_generator"), history)
        evaluated = [r for r in history if "nll_test" in r]
        series = {key: ([r["epoch"] for r in evaluated], [r[key] for r in evaluated])
                  for key in ("nll_oracle", "nll_test") if key in evaluated[0]}
        series["train_nll"] = ([r["epoch"] for r in history], [r["train_nll"] for r in history])
        png = ctx.artifacts.curve_png("pretrain_generator")
        plot_curves(png, series, title=f"MLE pretraining ({experiment})", xlabel="epoch", ylabel="NLL (nats/token)")
        ctx.tracker.log_artifact(png, "plots")
        checkpoints.clear()


if __name__ == "__main__":
    run_main(main)
