"""Step-wise rewards from a per-token discriminator with a learned value baseline: the
MaskGAN actor-critic (Fedus, Goodfellow & Dai, ICLR 2018) with every position missing,
i.e. unconditional generation (official code: tensorflow/models research/maskgan,
``model_losses.py``, ``critic_vd.py``, ``model_optimization.py``).

* D reads the sequence causally and gives a logit d_t for "token t is real" from
  y_1..y_t. Its loss is sigmoid cross-entropy at every position, label 1 for real
  sequences and 0 for generated ones, the real and generated means averaged.
* The reward of token t is r_t = log sigma(d_t); the return is the discounted reward to go
  R_t = sum_{s >= t} discount^(s-t) r_s.
* The critic V_t predicts R_t from y_1..y_(t-1): a linear head on D's own LSTM, read one
  step behind (its first input is a zero vector). Its loss is the mean squared error to
  R_t; by default (the code's ``critic_update_dis_vars=False``) it trains only its head.
* The generator's advantage is A_t = clip(R_t - V_t, -c, c), c = 5, and its update is
  REINFORCE on sum_t log p(y_t | y_<t) A_t.

One LSTM pass over (zero vector, y_1..y_T) serves both: after reading y_t its state
gives d_t, and one step earlier it gives V_t. Departures from the code, for this
unconditional use: MaskGAN runs D and the critic as two passes of the same cells, D's
decoder starting at y_1 from the state its encoder leaves after reading T "missing"
tokens (with every position missing, a learned constant), where here D starts from the
state after the critic's zero input; D's encoder is therefore dropped; dropout is
ordinary per-element dropout (``nn.Dropout`` on the outputs, ``nn.LSTM``'s between
layers), not variational (one mask per sequence).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import randomness
from .train import _apply, balanced_round


class CausalDiscriminator(nn.Module):
    """Embedding -> LSTM (``num_layers``) -> dropout -> a "real" logit per token and a value
    per token. Every parameter ~ U(-1/sqrt(hidden), 1/sqrt(hidden)), drawn from ``rng``
    (PyTorch's LSTM initialisation, made seedable). MaskGAN's own sizes are for PTB/IMDB
    (650-740 units, 2 layers, dropout keeping 0.5); the defaults here keep its 2 layers and
    dropout at a size for the synthetic task (our choice: no paper gives one)."""

    def __init__(self, vocab_size: int, emb_dim: int = 64, hidden_dim: int = 64, num_layers: int = 2,
                 dropout: float = 0.5, rng: torch.Generator | None = None) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout is the drop probability and must be in [0, 1), got {dropout}")
        self.vocab_size = vocab_size
        self.embedding = nn.Parameter(torch.empty(vocab_size, emb_dim))
        self.lstm = nn.LSTM(emb_dim, hidden_dim, num_layers, batch_first=True, dropout=dropout if num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.real_head = nn.Linear(hidden_dim, 1)
        self.value_head = nn.Linear(hidden_dim, 1)
        bound = 1.0 / math.sqrt(hidden_dim)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(randomness.uniform(p.shape, rng, device=p.device) * (2 * bound) - bound)

    def config(self) -> dict:
        """The constructor's arguments (``rng`` aside): ``type(self)(**config())`` rebuilds the shapes."""
        return {"vocab_size": self.vocab_size, "emb_dim": self.embedding.shape[1], "hidden_dim": self.lstm.hidden_size,
                "num_layers": self.lstm.num_layers, "dropout": self.dropout.p}

    def hidden(self, tokens: torch.Tensor) -> torch.Tensor:
        """States (B, T+1, H) after reading the zero vector, then y_1, ..., y_T."""
        x = F.embedding(tokens, self.embedding)
        x = torch.cat([x.new_zeros(x.shape[0], 1, x.shape[2]), x], dim=1)
        return self.dropout(self.lstm(x)[0])

    def real_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """d_t (B, T) from the states that have read y_1..y_t."""
        return self.real_head(hidden[:, 1:]).squeeze(2)

    def values(self, hidden: torch.Tensor) -> torch.Tensor:
        """V_t (B, T) from the states that have read y_1..y_(t-1)."""
        return self.value_head(hidden[:, :-1]).squeeze(2)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Per-token "real" logits (B, T)."""
        return self.real_logits(self.hidden(tokens))

    def classifier_parameters(self) -> list[nn.Parameter]:
        return [self.embedding, *self.lstm.parameters(), *self.real_head.parameters()]

    def critic_parameters(self, *, with_trunk: bool) -> list[nn.Parameter]:
        """The value head, and with ``with_trunk`` the embedding and LSTM it shares with D."""
        trunk = [self.embedding, *self.lstm.parameters()] if with_trunk else []
        return [*trunk, *self.value_head.parameters()]


def causal_discriminator_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sigmoid cross-entropy of per-token logits (B, T) against each row's label (B,), at
    every position; the mean over real rows and the mean over generated rows, averaged
    (MaskGAN's ``create_dis_loss``). A class absent from the batch contributes 0."""
    per_row = F.binary_cross_entropy_with_logits(logits, labels.unsqueeze(1).expand_as(logits).to(logits.dtype),
                                                 reduction="none").mean(dim=1)
    real = labels == 1
    means = [(per_row * side).sum() / side.sum().clamp(min=1) for side in (real, ~real)]
    return (means[0] + means[1]) / 2


def token_rewards(logits: torch.Tensor) -> torch.Tensor:
    """r_t = log sigma(d_t) (MaskGAN adds 1e-7 inside the log; logsigmoid needs no guard)."""
    return F.logsigmoid(logits)


def discounted_returns(rewards: torch.Tensor, discount: float) -> torch.Tensor:
    """R_t = sum_{s >= t} discount^(s-t) r_s for rewards (B, T)."""
    returns = torch.empty_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        running = rewards[:, t] + discount * running
        returns[:, t] = running
    return returns


def clipped_advantages(returns: torch.Tensor, values: torch.Tensor, clip: float) -> torch.Tensor:
    """A_t = clip(R_t - V_t, -clip, clip), without gradient to the critic."""
    return (returns - values.detach()).clamp(-clip, clip)


def causal_discriminator_round(
    discriminator: CausalDiscriminator,
    optimizer: torch.optim.Optimizer,
    positives: torch.Tensor,
    negatives: torch.Tensor,
    *,
    epochs: int = 3,
    batch_size: int = 64,
    grad_clip: float = 10.0,
    rng: torch.Generator | None = None,
) -> dict[str, float]:
    """One round of the per-token D (balanced as `seqgan_core.train.balanced_round`);
    gradients clipped to global norm ``grad_clip`` (MaskGAN's ``grad_clipping``, 10).
    ``d_accuracy`` is the share of tokens classified right. Also its pretraining round
    (MaskGAN's example launch: 100 D-pretraining steps)."""
    params = discriminator.classifier_parameters()

    def update(x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        logits = discriminator(x)
        loss = _apply(optimizer, causal_discriminator_loss(logits, y), params, grad_clip, "per-token discriminator loss")
        return loss, ((logits > 0) == (y == 1).unsqueeze(1)).float().mean(dim=1).sum().item()

    discriminator.train()
    return balanced_round(positives, negatives, update, epochs=epochs, batch_size=batch_size, rng=rng,
                          device=discriminator.embedding.device)
