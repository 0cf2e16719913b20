"""Time LeakGAN's generator update against SeqGAN's g-step, and its evaluation (sampling and
NLL-test) against the LSTM's, in the same process.

Run from the repository root: ``python benchmarks/bench_leakgan.py [--quick] [--threads N]``

Scale (the papers' synthetic experiments): vocabulary 5,000, length 20, batch 64.

- SeqGAN: `seqgan_core.train.seqgan_generator_step` with the 32/32 LSTM generator, the
  paper's discriminator (1,720 filters of widths 1-10, 15, 20) and 16 rollouts.
- LeakGAN: `seqgan_core.leakgan.LeakGAN.generator_step` (sample 64, teacher-forced pass,
  Monte-Carlo values with 4 rollouts, manager and worker updates) with the paper's
  generator (embedding and both LSTMs 32, k = 16, c = 4, 1,720 leaked features) and
  LeakGAN's D (the same CNN with a pad row), for both goal windows: the paper's sliding
  goal (a manager term per step: rollouts from 16 prefix lengths) and the code's segment
  goal (rollouts from 4).

- Evaluation: ``sample`` of the evaluation's samples (10,000 at the paper's scale) and
  NLL-test (`seqgan_core.sequence_nll`) of 1,000 sequences, LeakGAN's generator (sliding
  goal) against SeqGAN's LSTM: what `evaluate` and every sweep cell pay per figure (the
  temperature sweep and LeakGAN's sharpened second figure repeat them).

Every generated token of LeakGAN's reads D's feature of its prefix, so its update is
dominated by D passes over (rows x 20) prefixes (~13.5 M multiply-adds per row at paper
sizes, the highway layer 5.9 M of them) where SeqGAN's only scores finished rollouts.

``--quick``: vocabulary 1,000, the paper's filter widths with a quarter of the filters
(430 features), batch 16, 1,000 evaluation samples, one timed repeat: a check that the
script runs, in seconds.
Each item is the best of the repeats after one warm-up call. Default 1 thread.
"""
from __future__ import annotations

import argparse

import torch

from seqgan_core import Discriminator, Generator, sequence_nll
from seqgan_core.discriminator import PAPER_NUM_FILTERS
from seqgan_core.leakgan import LeakGANGenerator, leakgan_discriminator
from seqgan_core.methods import Common
from seqgan_core.methods.leakgan import LeakGAN, LeakGANSettings
from seqgan_core.train import adam, seqgan_generator_step
from timing import best_time  # benchmarks/, this script's folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="reduced sizes, one repeat")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    vocab, length = (1000, 20) if args.quick else (5000, 20)
    batch, repeats = (16, 1) if args.quick else (64, 2)
    filters = [max(1, n // 4) for n in PAPER_NUM_FILTERS] if args.quick else list(PAPER_NUM_FILTERS)
    print(f"vocabulary {vocab}, length {length}, batch {batch}, {sum(filters)} D features, "
          f"{args.threads} thread(s), torch {torch.__version__}{' (quick)' if args.quick else ''}")

    rng = torch.Generator().manual_seed(1)
    seqgan_g = Generator(vocab, seq_len=length, rng=rng)
    seqgan_d = Discriminator(vocab, length, num_filters=filters)
    optimizer = adam(seqgan_g.parameters(), 1e-2)
    seqgan = best_time(lambda: seqgan_generator_step(seqgan_g, seqgan_d, optimizer, batch_size=batch,
                                                     n_rollouts=16, rng=rng), repeats)
    print(f"SeqGAN g-step (16 rollouts): {seqgan:8.2f} s")

    real = torch.randint(0, vocab, (256, length), generator=rng)
    common = Common(batch_size=batch, grad_clip=5.0, d_batch_size=64, d_epochs=3, d_negatives=10_000)
    for window, label in (("sliding", "paper: sliding goal, MC at 16 prefix lengths"),
                          ("segment", "code: segment goal, MC at 4 prefix lengths")):
        g = LeakGANGenerator(vocab, seq_len=length, goal_window=window, d_num_filters=filters, rng=rng)
        d = leakgan_discriminator(vocab, length, num_filters=filters)
        method = LeakGAN(g, d, real, LeakGANSettings(), common, rng)
        seconds = best_time(lambda: method.generator_step(0), repeats)
        print(f"LeakGAN generator update ({label}): {seconds:8.2f} s  = {seconds / seqgan:5.1f}x SeqGAN's g-step")

    n_samples = 1_000 if args.quick else 10_000
    test = torch.randint(0, vocab, (1_000, length), generator=rng)
    leakgan_g = LeakGANGenerator(vocab, seq_len=length, d_num_filters=filters, rng=rng)
    for what, run in (("sample", lambda model: model.sample(n_samples, rng=rng)),
                      ("NLL-test", lambda model: sequence_nll(model, test))):
        lstm, leak = (best_time(lambda model=model: run(model), repeats) for model in (seqgan_g, leakgan_g))
        print(f"evaluation {what} ({n_samples if what == 'sample' else len(test)} sequences): LSTM {lstm:6.2f} s, "
              f"LeakGAN {leak:6.2f} s = {leak / lstm:5.1f}x")


if __name__ == "__main__":
    main()
