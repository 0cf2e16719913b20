"""SeqGAN's CNN discriminator (Kim-style text CNN with a highway layer).

Paper defaults: embedding 64; filter widths 1-10, 15, 20 with 100, 200, 200, 200, 200,
100, 100, 100, 100, 100, 160, 160 filters; ReLU and max-over-time pooling; one highway
layer; dropout keeping 0.75 (PyTorch's `p` is the DROP rate: 0.25); L2 0.2 on the
output layer only; two output classes, P(real) = softmax(logits)[:, 1].

Convolutions are computed as one matmul per filter width over unfolded windows: on CPU
this runs several times closer to the matmul peak than `conv1d` for these shapes. ReLU
and the bias are applied after max-pooling, which is exact because both are monotone
per filter: max_t relu(x_t + b) = relu(max_t x_t + b); this keeps the elementwise work
off the (positions x filters) tensor.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

PAPER_FILTER_SIZES = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 20)
PAPER_NUM_FILTERS = (100, 200, 200, 200, 200, 100, 100, 100, 100, 100, 160, 160)


class Discriminator(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        seq_len: int = 20,
        emb_dim: int = 64,
        filter_sizes: Sequence[int] = PAPER_FILTER_SIZES,
        num_filters: Sequence[int] = PAPER_NUM_FILTERS,
        dropout: float = 0.25,
        l2_reg: float = 0.2,
        highway_gate_bias: float = 0.0,
    ) -> None:
        super().__init__()
        if len(filter_sizes) != len(num_filters):
            raise ValueError(
                f"filter_sizes ({len(filter_sizes)} widths) and num_filters ({len(num_filters)} counts) "
                "must have the same length"
            )
        too_wide = [k for k in filter_sizes if not 1 <= k <= seq_len]
        if too_wide:
            raise ValueError(f"filter widths {too_wide} do not fit sequences of length {seq_len}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout is the drop probability and must be in [0, 1), got {dropout}")
        self.seq_len, self.l2_reg = seq_len, l2_reg
        self.filter_sizes = tuple(int(k) for k in filter_sizes)
        self.embedding = nn.Embedding(vocab_size, emb_dim)
        # Weight of width k flattened as (k * emb_dim, filters), row index = position * emb + channel,
        # which is the memory order of an unfolded (positions, k, emb) window.
        self.conv_weights = nn.ParameterList(
            nn.Parameter(torch.empty(k * emb_dim, n)) for k, n in zip(self.filter_sizes, num_filters)
        )
        self.conv_biases = nn.ParameterList(nn.Parameter(torch.empty(n)) for n in num_filters)
        features = sum(num_filters)
        self.highway_transform = nn.Linear(features, features)
        self.highway_gate = nn.Linear(features, features)
        self.highway_gate_bias = highway_gate_bias
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(features, 2)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The authors' initialisers: embedding U(-1, 1), conv and output weights
        truncated N(0, 0.1), their biases 0.1; highway layers keep PyTorch's defaults."""
        with torch.no_grad():
            nn.init.uniform_(self.embedding.weight, -1.0, 1.0)
            for w, b in zip(self.conv_weights, self.conv_biases):
                nn.init.trunc_normal_(w, std=0.1, a=-0.2, b=0.2)
                b.fill_(0.1)
            nn.init.trunc_normal_(self.out.weight, std=0.1, a=-0.2, b=0.2)
            self.out.bias.fill_(0.1)

    def features(self, tokens: torch.Tensor) -> torch.Tensor:
        """Max-pooled filter responses after the highway layer: (B, total filters)."""
        x = self.embedding(tokens)  # (B, T, E)
        B, T, E = x.shape
        pooled = []
        for k, w, b in zip(self.filter_sizes, self.conv_weights, self.conv_biases):
            windows = x.unfold(1, k, 1).transpose(2, 3).reshape(B * (T - k + 1), k * E)
            responses = (windows @ w).view(B, T - k + 1, -1)
            pooled.append(torch.relu(responses.amax(dim=1) + b))
        h = torch.cat(pooled, dim=1)
        gate = torch.sigmoid(self.highway_gate(h) + self.highway_gate_bias)
        return torch.lerp(h, torch.relu(self.highway_transform(h)), gate)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Class logits (B, 2): column 1 is "real"."""
        return self.out(self.dropout(self.features(tokens)))

    @torch.no_grad()
    def prob_real(self, tokens: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """P(real) for each sequence (B,), in eval mode (no dropout), in batches."""
        was_training = self.training
        self.eval()
        probs = torch.cat(
            [torch.softmax(self(tokens[i : i + batch_size]), dim=1)[:, 1] for i in range(0, tokens.shape[0], batch_size)]
        ) if tokens.shape[0] else torch.empty(0, device=tokens.device)
        self.train(was_training)
        return probs

    def loss_from_logits(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy plus the L2 penalty on the output layer (TF's l2_loss: sum/2)."""
        l2 = 0.5 * (self.out.weight.square().sum() + self.out.bias.square().sum())
        return F.cross_entropy(logits, labels) + self.l2_reg * l2
