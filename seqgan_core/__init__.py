"""seqgan_core: the science of SeqGAN, MaliGAN and LeakGAN in plain PyTorch.

Imports torch and numpy only (no pipeline, tracking or orchestration code), so every
piece can be used from a notebook:

    from seqgan_core import Oracle, Generator, Discriminator, rollout
    oracle = Oracle(seed=0)                       # or Oracle.from_npz(path)
    data = oracle.sample(10_000, seed=1)
    G, D = Generator(oracle.vocab_size), Discriminator(oracle.vocab_size)
    rewards = rollout(G, D, G.sample(64), n_rollouts=16)
"""
from .discriminator import Discriminator
from .leakgan import LeakGANGenerator
from .lstm import LSTMLanguageModel
from .oracle import Oracle, sequence_nll
from .rollout import DelayedPolicy, rollout
from .train import TrainingDiverged

# The generator is the shared LSTM language model with its default N(0, 0.1) init.
Generator = LSTMLanguageModel

__all__ = [
    "DelayedPolicy",
    "Discriminator",
    "Generator",
    "LSTMLanguageModel",
    "LeakGANGenerator",
    "Oracle",
    "TrainingDiverged",
    "rollout",
    "sequence_nll",
]
