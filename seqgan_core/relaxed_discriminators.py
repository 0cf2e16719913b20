"""Discriminators over (relaxed) one-hot sequences (B, T, V) for the relaxation family.

Every one reads its input through one embedding, ``one_hots @ embedding`` (V x E): real
sequences as exact one-hots (which makes this the embedding lookup), generated ones as
relaxed probability rows, so the two differ to the discriminator only in their values.

- `MultiRepresentationDiscriminator`: RelGAN's CNN (official `rmc_vanilla.discriminator`).
- `LSTMDiscriminator`: GSGAN's recurrent discriminator (the paper's kind; sizes are this
  project's, the paper's are unverified).
- `SoftSeqGANDiscriminator`: the pipeline's (pretrained) SeqGAN CNN `Discriminator`, fed
  through its own embedding matrix; TextGAN's feature extractor and classifier.

Models are built on the CPU from an optional ``rng``: their parameters are drawn through
`seqgan_core.randomness`, never from torch's global generator.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from . import randomness
from .discriminator import Discriminator

RELGAN_FILTER_SIZES = (2, 3, 4, 5)


def _parameter(*shape: int) -> nn.Parameter:
    return nn.Parameter(torch.empty(shape))


class MultiRepresentationDiscriminator(nn.Module):
    """RelGAN's discriminator: one logit per (sequence, representation), (B * num_rep,).

    The embedding (V x emb_dim, 64 in the paper) is cut into ``num_rep`` (64)
    representations of width emb_dim / num_rep (1). The same convolution filters (heights
    2, 3, 4, 5 x 300, spanning one representation's width) run over every representation;
    ReLU and max over time give 1,200 features per representation, then a highway layer
    (bias-free linear maps, gate bias 0), dropout (drop 0.25), Linear 1200 -> 100 and
    100 -> 1 with nothing between them. Initialisation as in the code: embedding and
    linear weights truncated normal sd 1/sqrt(fan_in), conv weights sd sqrt(2 / (height *
    width)), biases 0. Spectral normalisation (off in the paper's runs) is not offered.

    ReLU and the bias are applied after max-pooling, as `Discriminator` does (exact: both
    are monotone per filter), so no (B, T, reps, filters) activation is kept for backward.
    """

    def __init__(self, vocab_size: int, seq_len: int = 20, emb_dim: int = 64, num_rep: int = 64,
                 filter_sizes: Sequence[int] = RELGAN_FILTER_SIZES, num_filters: int = 300,
                 hidden: int = 100, dropout: float = 0.25, rng: torch.Generator | None = None) -> None:
        super().__init__()
        if num_rep < 1 or emb_dim % num_rep:
            raise ValueError(f"emb_dim {emb_dim} must split into num_rep {num_rep} equal representations")
        too_wide = [k for k in filter_sizes if not 1 <= k <= seq_len]
        if too_wide:
            raise ValueError(f"filter heights {too_wide} do not fit sequences of length {seq_len}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout is the drop probability and must be in [0, 1), got {dropout}")
        self.seq_len, self.num_rep, self.width = seq_len, num_rep, emb_dim // num_rep
        self.filter_sizes = tuple(int(k) for k in filter_sizes)
        features = num_filters * len(self.filter_sizes)
        self.embedding = _parameter(vocab_size, emb_dim)
        self.conv_weights = nn.ParameterList(_parameter(k * self.width, num_filters) for k in self.filter_sizes)
        self.conv_biases = nn.ParameterList(_parameter(num_filters) for _ in self.filter_sizes)
        self.highway_transform, self.highway_gate = _parameter(features, features), _parameter(features, features)
        self.fc_weight, self.fc_bias = _parameter(features, hidden), _parameter(hidden)
        self.logit_weight, self.logit_bias = _parameter(hidden, 1), _parameter(1)
        self.dropout = nn.Dropout(dropout)
        with torch.no_grad():
            for w, b, k in zip(self.conv_weights, self.conv_biases, self.filter_sizes):
                randomness.trunc_normal_(w, (2.0 / (k * self.width)) ** 0.5, rng)
                b.zero_()
            for w in (self.embedding, self.highway_transform, self.highway_gate, self.fc_weight, self.logit_weight):
                randomness.trunc_normal_(w, w.shape[0] ** -0.5, rng)
            self.fc_bias.zero_()
            self.logit_bias.zero_()

    def config(self) -> dict:
        """The constructor's arguments (``rng`` aside): ``type(self)(**config())`` rebuilds the shapes."""
        vocab_size, emb_dim = self.embedding.shape
        return {"vocab_size": vocab_size, "seq_len": self.seq_len, "emb_dim": emb_dim, "num_rep": self.num_rep,
                "filter_sizes": list(self.filter_sizes), "num_filters": self.conv_biases[0].numel(),
                "hidden": self.fc_bias.numel(), "dropout": self.dropout.p}

    def forward(self, one_hots: torch.Tensor) -> torch.Tensor:
        B, T, _ = one_hots.shape
        x = (one_hots @ self.embedding).view(B, T, self.num_rep, self.width)
        pooled = []
        for k, w, b in zip(self.filter_sizes, self.conv_weights, self.conv_biases):
            # windows (B, T-k+1, reps, k * width), rows ordered (position, channel) like w
            windows = x.unfold(1, k, 1).transpose(-1, -2).reshape(B, T - k + 1, self.num_rep, k * self.width)
            pooled.append(torch.relu((windows @ w).max(dim=1).values + b))  # (B, reps, filters)
        h = torch.cat(pooled, dim=-1).flatten(0, 1)  # (B * reps, features): row b * reps + r
        gate = torch.sigmoid(h @ self.highway_gate)
        h = torch.lerp(h, torch.relu(h @ self.highway_transform), gate)
        hidden = torch.addmm(self.fc_bias, self.dropout(h), self.fc_weight)
        return torch.addmm(self.logit_bias, hidden, self.logit_weight).squeeze(1)


class LSTMDiscriminator(nn.Module):
    """An LSTM over the embedded (relaxed) one-hots; one logit per sequence from the last
    hidden state (GSGAN's discriminator kind). Weights ~ U(-1/sqrt(H), 1/sqrt(H)) (PyTorch's
    LSTM default), embedding ~ N(0, 1) cut at 2 sd, drawn from ``rng``."""

    def __init__(self, vocab_size: int, emb_dim: int = 64, hidden_dim: int = 32,
                 rng: torch.Generator | None = None) -> None:
        super().__init__()
        self.embedding = _parameter(vocab_size, emb_dim)
        # Built on the meta device so that construction draws nothing from the global generator.
        self.lstm = nn.LSTM(emb_dim, hidden_dim, batch_first=True, device="meta").to_empty(device="cpu")
        self.out = nn.Linear(hidden_dim, 1, device="meta").to_empty(device="cpu")
        bound = hidden_dim**-0.5
        with torch.no_grad():
            randomness.trunc_normal_(self.embedding, 1.0, rng)
            for p in (*self.lstm.parameters(), *self.out.parameters()):
                randomness.uniform_(p, -bound, bound, rng)

    def config(self) -> dict:
        """The constructor's arguments (``rng`` aside): ``type(self)(**config())`` rebuilds the shapes."""
        vocab_size, emb_dim = self.embedding.shape
        return {"vocab_size": vocab_size, "emb_dim": emb_dim, "hidden_dim": self.lstm.hidden_size}

    def forward(self, one_hots: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.lstm(one_hots @ self.embedding)
        return self.out(hidden[:, -1]).squeeze(1)


class SoftSeqGANDiscriminator(nn.Module):
    """The SeqGAN CNN `Discriminator` on (relaxed) one-hots through its embedding matrix.

    Wraps the module it is given (the pipeline's pretrained D, trained in place): its
    parameters are that module's. `features` are its highway outputs (1,720 at the
    paper's sizes); `class_logits` its two-class output with dropout; `forward` the one
    logit log P(real) - log P(fake) = logits[:, 1] - logits[:, 0] for the GAN losses.
    """

    def __init__(self, discriminator: Discriminator) -> None:
        super().__init__()
        self.seqgan = discriminator

    def features(self, one_hots: torch.Tensor) -> torch.Tensor:
        return self.seqgan.features_of_embeddings(one_hots @ self.seqgan.embedding.weight)

    def class_logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.seqgan.out(self.seqgan.dropout(features))

    def forward(self, one_hots: torch.Tensor) -> torch.Tensor:
        logits = self.class_logits(self.features(one_hots))
        return logits[:, 1] - logits[:, 0]
