"""Stage `adversarial`: SeqGAN's adversarial loop.

Each adversarial batch: `g_steps` generator updates (sample, Monte-Carlo rollout
rewards, policy gradient), an update of the delayed rollout policy if one is used, then
`d_steps` discriminator rounds on fresh negatives. Everything is logged per batch, so a
run whose NLL-oracle rises can be diagnosed. Resumable from `.checkpoints/`.
"""
from __future__ import annotations

import torch
from tqdm import tqdm

from seqgan_core import DelayedPolicy
from seqgan_core.train import discriminator_round, seqgan_generator_step

from ..plots import plot_curves, write_csv
from ..resume import Checkpointer, fingerprint
from ..runtime import (build_discriminator, experiment_arg, generator_config, load_dataset, load_generator,
                       load_model_state, run_main, save_model, stage, write_json)
from ..scoring import nll_scores


def main() -> None:
    experiment = experiment_arg("adversarial")
    with stage("adversarial", experiment) as ctx:
        a = ctx.params.adversarial
        dataset = load_dataset(ctx.paths, ctx.device)
        generator = load_generator(ctx.paths.models / "generator_mle.pt", ctx.device)
        discriminator = load_model_state(build_discriminator(ctx.params, dataset), ctx.paths.models / "discriminator_pre.pt")
        discriminator.to(ctx.device)
        g_optimizer = torch.optim.Adam(generator.parameters(), lr=a.lr)
        d_optimizer = torch.optim.Adam(discriminator.parameters(), lr=ctx.params.pretrain_discriminator.lr)
        policy = DelayedPolicy(generator, a.rollout_rate) if a.rollout_policy == "delayed" else None
        rng, eval_rng = ctx.rng("batches"), ctx.rng("eval")
        baseline = None if a.baseline == "none" else a.baseline

        history: list[dict] = [{"batch": 0, **nll_scores(generator, dataset, a.eval_samples, eval_rng)}]
        checkpoints = Checkpointer(
            ctx.paths.checkpoints / "adversarial.pt",
            fingerprint(ctx.params.seed, a.model_dump(), ctx.params.discriminator.model_dump(), dataset.fingerprint,
                        files=[ctx.paths.models / "generator_mle.pt", ctx.paths.models / "discriminator_pre.pt"]),
        )
        start = 0
        if state := checkpoints.load():
            generator.load_state_dict(state["generator"])
            discriminator.load_state_dict(state["discriminator"])
            g_optimizer.load_state_dict(state["g_optimizer"])
            d_optimizer.load_state_dict(state["d_optimizer"])
            if policy is not None:
                policy.model.load_state_dict(state["policy"])
            rng.set_state(state["rng"])
            eval_rng.set_state(state["eval_rng"])
            torch.set_rng_state(state["torch_rng"])
            history, start = state["history"], state["step"]

        progress = tqdm(range(start, a.batches), desc=f"adversarial {experiment}", unit="batch",
                        initial=start, total=a.batches)
        for batch in progress:
            for _ in range(a.g_steps):
                row = seqgan_generator_step(
                    generator, discriminator, g_optimizer, batch_size=a.batch_size, n_rollouts=a.n_rollouts,
                    rollout_policy=policy.model if policy else None, reduction=a.pg_reduction, baseline=baseline,
                    grad_clip=a.grad_clip, rng=rng,
                )
            if policy is not None:
                policy.update(generator)
            for _ in range(a.d_steps):
                negatives = generator.sample(a.d_negatives, rng=rng)
                row.update(discriminator_round(discriminator, d_optimizer, dataset.train, negatives,
                                               epochs=a.d_epochs, batch_size=ctx.params.pretrain_discriminator.batch_size,
                                               rng=rng))
            if (batch + 1) % a.eval_every == 0 or batch + 1 == a.batches:
                row.update(nll_scores(generator, dataset, a.eval_samples, eval_rng))
            history.append({"batch": batch + 1, **row})
            progress.set_postfix({k: f"{v:.3f}" for k, v in row.items() if k.startswith(("nll", "mean_reward", "d_acc"))})
            ctx.tracker.log_metrics(row, step=batch + 1)
            if (batch + 1) % a.checkpoint_every == 0:
                checkpoints.save(batch + 1, generator=generator.state_dict(), discriminator=discriminator.state_dict(),
                                 g_optimizer=g_optimizer.state_dict(), d_optimizer=d_optimizer.state_dict(),
                                 policy=policy.model.state_dict() if policy else None, rng=rng.get_state(),
                                 eval_rng=eval_rng.get_state(), torch_rng=torch.get_rng_state(), history=history)

        save_model(ctx.paths.models / "generator_adv.pt", generator, generator_config(generator))
        save_model(ctx.paths.models / "discriminator_adv.pt", discriminator, ctx.params.discriminator.model_dump())
        final = {k: v for k, v in history[-1].items() if k != "batch"}
        write_json(ctx.paths.metrics / "adversarial.json", final)
        write_csv(ctx.paths.plots / "adversarial.csv", history)
        evaluated = [r for r in history if "nll_test" in r]
        key = "nll_oracle" if "nll_oracle" in evaluated[0] else "nll_test"
        png = ctx.paths.plots / "adversarial.png"
        plot_curves(
            png, {key: ([r["batch"] for r in evaluated], [r[key] for r in evaluated])},
            title=f"Adversarial training ({experiment}, {a.method})", xlabel="adversarial batch",
            ylabel="NLL (nats/token)",
            hlines={"MLE start": evaluated[0][key],
                    **({"oracle samples": dataset.reference_nll["nll_oracle_data"]} if key == "nll_oracle" else {})},
        )
        ctx.tracker.log_artifact(png, "plots")
        checkpoints.clear()


if __name__ == "__main__":
    run_main(main)
