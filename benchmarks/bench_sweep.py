"""What the temperature sweep costs per generator (`pipelines.scoring.Scorer.sweep`), against
the temperature-1 evaluation that `evaluate` always ran (`Scorer.final` on
`evaluate.nll_samples` samples), timed in the same process on the same generator.

Run from the repository root: ``python benchmarks/bench_sweep.py [--params params.yaml]``

Data are built in-process at the params' sizes: the synthetic experiment's oracle and its
samples (the oracle's own weights stand in for a trained generator: the cost of sampling,
NLL and BLEU does not depend on how well a generator is trained), and the corpus encoded
as `preprocess` does, with a generator after one MLE epoch on it. Each item is the best of
``--repeats`` runs after a warm-up.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from pipelines.config import load_params
from pipelines.contract import kind_of
from pipelines.datasets import Dataset
from pipelines.scoring import Scorer
from seqgan_core import Generator, Oracle, randomness
from pipelines.stages.preprocess import read_lines, split_corpus
from seqgan_core.corpus import EOS_ID, Vocabulary, encode_corpus, tokenize
from seqgan_core.train import adam, mle_epoch
from timing import best_time  # benchmarks/, this script's folder


def synthetic(params) -> tuple[Dataset, torch.nn.Module]:
    p = params.oracle
    oracle = Oracle(p.seed, p.vocab_size, p.emb_dim, p.hidden_dim, p.seq_len)
    train, test = oracle.sample(p.num_train, seed=1), oracle.sample(p.num_test, seed=2)
    return Dataset(kind_of("synthetic"), train, test, p.vocab_size, p.seq_len, 0, oracle=oracle), oracle.model


def corpus(params) -> tuple[Dataset, torch.nn.Module]:
    c = params.corpus
    tokens = [tokenize(line.lower() if c.lowercase else line, c.tokenizer) for line in read_lines(Path(c.path))]
    train_idx, test_idx = split_corpus(tokens, c)  # the preprocess stage's reading and split
    vocab = Vocabulary.build([tokens[i] for i in train_idx], max_size=c.vocab_size, min_count=c.min_count)
    train, test = (torch.from_numpy(encode_corpus([tokens[i] for i in idx], vocab, c.max_len, overlong=c.overlong)[0])
                   for idx in (train_idx, test_idx))
    dataset = Dataset(kind_of("real"), train, test, len(vocab), c.max_len, EOS_ID, vocab=vocab, tokenizer=c.tokenizer)
    torch.manual_seed(0)
    generator = Generator(len(vocab), params.generator.emb_dim, params.generator.hidden_dim, c.max_len, EOS_ID)
    mle_epoch(generator, adam(generator.parameters(), 0.01), train, rng=randomness.generator(0))
    return dataset, generator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    params = load_params(args.params)
    torch.set_num_threads(params.threads or torch.get_num_threads())
    e = params.evaluate
    print(f"temperatures {e.temperatures} x {e.sweep_samples} samples; temperature-1 evaluation on "
          f"{e.nll_samples} samples; {torch.get_num_threads()} threads")
    print(f"{'experiment':<10} {'t=1 evaluation s':>17} {'sweep s':>9} {'per temperature s':>18} {'sweep / t=1':>12}")
    for name, build in (("synthetic", synthetic), ("real", corpus)):
        dataset, generator = build(params)
        scorer = Scorer(dataset, params)
        final = best_time(lambda: scorer.final(
            generator, generator.sample(e.nll_samples, rng=randomness.generator(0))), args.repeats)
        sweep = best_time(lambda: scorer.sweep(generator, randomness.generator(1)), args.repeats)
        print(f"{name:<10} {final:>17.2f} {sweep:>9.2f} {sweep / len(e.temperatures):>18.2f} {sweep / final:>11.2f}x")


if __name__ == "__main__":
    main()
