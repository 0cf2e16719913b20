"""Step-wise rewards from a discriminator of partial sequences (Li et al., EMNLP 2017,
"Adversarial learning for neural dialogue generation", REGS without Monte Carlo).

Instead of completing every prefix by rollouts, D is trained to judge prefixes: in each
update every real and every generated sequence contributes one prefix y_1..y_t with t
drawn uniformly from 1..T (one random prefix per sequence, not all of them: all prefixes
would over-weight the early tokens, which real and generated sequences share most). The
reward of token t is then D's score of the prefix that ends with it,

    r_t = D(y_1..y_t),

all T prefixes of all B samples in one D pass over B x T rows: no rollouts.

D is the SeqGAN CNN (the pipeline's pretrained `Discriminator`, whose full sequences are
the prefixes of length T). A prefix is fed padded to T with the zero embedding, a pad that
is no token (see `Discriminator`): every filter width, the 20-wide included, still sees it.
"""
from __future__ import annotations

import torch

from . import randomness
from .discriminator import Discriminator
from .train import _apply, balanced_round


def all_prefixes(samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every prefix of every row of ``samples`` (B, T): tokens (B*T, T) and lengths (B*T,),
    row b*T + t-1 holding y_1..y_t of sample b."""
    B, T = samples.shape
    lengths = torch.arange(1, T + 1, device=samples.device).repeat(B)
    return samples.repeat_interleave(T, dim=0), lengths


@torch.no_grad()
def prefix_rewards(discriminator: Discriminator, samples: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """r (B, T): column t-1 is D's P(real) of the prefix y_1..y_t (no dropout)."""
    tokens, lengths = all_prefixes(samples)
    return discriminator.prob_real(tokens, batch_size, lengths=lengths).view(samples.shape)


def prefix_discriminator_round(
    discriminator: Discriminator,
    optimizer: torch.optim.Optimizer,
    positives: torch.Tensor,
    negatives: torch.Tensor,
    *,
    epochs: int = 3,
    batch_size: int = 64,
    rng: torch.Generator | None = None,
) -> dict[str, float]:
    """One D round on random prefixes: `seqgan_core.train.discriminator_round` (same
    balancing, loss with D's L2 term, no clipping), except that every sequence is cut to
    a prefix of length t ~ U{1..T}, drawn afresh for every update it takes part in."""
    seq_len = positives.shape[1]

    def update(x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        lengths = randomness.randint(seq_len + 1, (len(x),), rng, low=1, device=x.device)
        logits = discriminator(x, lengths)
        loss = discriminator.loss_from_logits(logits, y)
        value = _apply(optimizer, loss, list(discriminator.parameters()), 0.0, "prefix discriminator loss")
        return value, (logits.argmax(1) == y).sum().item()

    discriminator.train()
    return balanced_round(positives, negatives, update, epochs=epochs, batch_size=batch_size, rng=rng,
                          device=discriminator.out.weight.device)
