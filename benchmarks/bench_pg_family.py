"""Time one generator update of each policy-gradient family method against SeqGAN's g-step,
at the paper's scale, in the same process.

Run from the repository root: ``python benchmarks/bench_pg_family.py [--quick] [--threads N]``

Scale (SeqGAN's synthetic experiment): generator LSTM embedding/hidden 32, vocabulary
5,000, length 20, batch 64, N = 16 rollouts, the paper's discriminator (`Discriminator`
defaults). Items, each one ``generator_step`` (sampling the batch included):

- ``seqgan``: `seqgan_core.train.seqgan_generator_step` (the yardstick)
- ``rankgan``: `RankGAN` (the same rollouts, scored by the ranker against 16 references)
- ``partial_d``: `SeqGAN` with ``reward_estimator="partial_d"`` (one D pass over B x T prefixes)
- ``critic``: `SeqGAN` with ``reward_estimator="critic"`` (one per-token LSTM D pass
  and a critic update)
- ``pg_constant``: `PGConstant` (no reward model at all: sampling and the update)

Every item starts from copies of the same models and is timed as the best of a few
repeats after a warm-up; ``--quick`` times one repeat. The ratio column is time /
SeqGAN's g-step. CPU only; ``--threads`` (default 1: the machine is shared).
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
from collections.abc import Callable
from pathlib import Path
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seqgan_core import Discriminator, Generator  # noqa: E402
from seqgan_core.methods import Common  # noqa: E402
from seqgan_core.methods.policy_gradient import PGConstant, PGConstantSettings, SeqGAN, SeqGANSettings  # noqa: E402
from seqgan_core.methods.rankgan import RankGAN, RankGANSettings  # noqa: E402
from seqgan_core.methods.reward_estimators import RolloutSettings  # noqa: E402
from seqgan_core.train import adam, seqgan_generator_step  # noqa: E402
from timing import best_time  # noqa: E402  (benchmarks/, this script's folder)

V, T, B, N, EMB = 5000, 20, 64, 16, 32
COMMON = Common(batch_size=B, lr=0.01, grad_clip=5.0, d_lr=1e-4, d_batch_size=64, d_epochs=1, d_negatives=10_000)
ROLLOUT = RolloutSettings(n_rollouts=N)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one timed repeat per item")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    repeats = 1 if args.quick else 3
    print(f"policy-gradient family benchmark{' (--quick)' if args.quick else ''}: V {V}, T {T}, B {B}, N {N}, "
          f"G {EMB}/{EMB}, paper D; torch {torch.__version__}, {args.threads} thread(s), "
          f"load average {os.getloadavg()[0]:.2f}")

    torch.manual_seed(0)
    base_generator = Generator(V, EMB, EMB, seq_len=T, rng=torch.Generator().manual_seed(1))
    base_discriminator = Discriminator(V, seq_len=T)
    real = base_generator.sample(2048, rng=torch.Generator().manual_seed(2))  # stands in for the data

    def method_step(cls, settings) -> Callable[[], object]:
        method = cls(copy.deepcopy(base_generator), copy.deepcopy(base_discriminator), real, settings, COMMON,
                     torch.Generator().manual_seed(3))
        return lambda: method.generator_step(0)

    generator = copy.deepcopy(base_generator)
    optimizer, rng = adam(generator.parameters(), COMMON.lr), torch.Generator().manual_seed(3)
    items = {
        "seqgan": lambda: seqgan_generator_step(generator, base_discriminator, optimizer, batch_size=B, n_rollouts=N, rng=rng),
        "rankgan": method_step(RankGAN, RankGANSettings(rollout=ROLLOUT)),
        "partial_d": method_step(SeqGAN, SeqGANSettings(reward_estimator="partial_d")),
        "critic": method_step(SeqGAN, SeqGANSettings(reward_estimator="critic")),
        "pg_constant": method_step(PGConstant, PGConstantSettings()),
    }
    times = {}
    print(f"{'method':<12} {'g-step s':>9} {'/ seqgan':>9}")
    for name, step in items.items():
        times[name] = best_time(step, repeats)
        print(f"{name:<12} {times[name]:9.3f} {times[name] / times['seqgan']:8.2f}x", flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
