"""SeqGAN's CNN discriminator (Kim-style text CNN with a highway layer).

Paper defaults: embedding 64; filter widths 1-10, 15, 20 with 100, 200, 200, 200, 200,
100, 100, 100, 100, 100, 160, 160 filters; ReLU and max-over-time pooling; one highway
layer; dropout keeping 0.75 (PyTorch's `p` is the DROP rate: 0.25); L2 0.2 on the
output layer only; two output classes, P(real) = softmax(logits)[:, 1].

Convolutions are computed as one matmul per filter width over unfolded windows: on CPU
this runs several times closer to the matmul peak than `conv1d` for these shapes. ReLU
and the bias are applied after max-pooling, which is exact because both are monotone
per filter: max_t relu(x_t + b) = relu(max_t x_t + b); this keeps the elementwise work
off the (positions x filters) tensor. Max-pooling (`_MaxOverTime`) is `amax` forward; its
backward splits each filter's gradient among exactly tied positions, where TF's `max_pool`
in the authors' code gives it to one of them. The gradients agree: windows that tie
exactly hold the same tokens, so the embedding and filter gradients are the same
whichever of them receives it (tested). `torch.max`, which finds an index too, costs more
on the CPU than the whole mask-and-split backward.

Scoring many sequences with fixed weights (`prob_real` on a rollout's ~20k completions)
uses a cheaper, exactly equivalent formulation. The convolution's input is an embedding
lookup, so a window's response is a sum of per-position lookups:

    response_k(s) = sum_j emb[y_(s+j)] @ W_k[j] = sum_j P_k[j, y_(s+j)],   P_k[j] = emb @ W_k[j]

With the tables P_k built once (one matmul, vocab x emb x sum_k k * n_k), each window
costs k row lookups and adds (`embedding_bag`) instead of k * emb multiply-adds per
filter: ~7x faster per sequence at the paper's sizes, paying for the tables after ~1,000
sequences. Only the summation order differs (outputs agree to float rounding).

Prefixes (the partial-sequence discriminator of `seqgan_core.prefix_rewards`) are read
with ``lengths``: the prefix y_1..y_t stays padded to the full length T, and the padded
positions embed as the zero vector, a pad that is no token (every token id is an
ordinary token in the synthetic task, start token included, so padding with one would
make a prefix look like a whole sequence that continues with it). Every filter width
still fits, and a window over padding alone responds with its bias only.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .sampling import check_tokens

PAPER_FILTER_SIZES = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 20)
PAPER_NUM_FILTERS = (100, 200, 200, 200, 200, 100, 100, 100, 100, 100, 160, 160)
INITS = ("tf", "torch")


class _MaxOverTime(torch.autograd.Function):
    """Max-pooling over positions (dim 1 of (B, positions, filters)): the forward is `amax`,
    several times faster on the CPU than `max`, which also finds the index; the backward
    gives each filter's gradient to its maximal position, split evenly among exact ties
    (windows that tie exactly hold the same tokens, so the split reaches the same
    embeddings and filter entries as TF's one-position gradient, up to float rounding)."""

    @staticmethod
    def forward(ctx, responses: torch.Tensor) -> torch.Tensor:
        pooled = responses.amax(dim=1)
        ctx.save_for_backward(responses, pooled)
        return pooled

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        responses, pooled = ctx.saved_tensors
        at_max = responses == pooled.unsqueeze(1)
        ties = at_max.sum(dim=1, dtype=grad.dtype)
        return at_max * (grad / ties).unsqueeze(1)


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
        init: Literal["tf", "torch"] = "tf",
    ) -> None:
        """``init`` (see `_initialise`): "tf", the authors' initialisers for every layer
        (the default), or "torch", the highway layers left at PyTorch's defaults."""
        super().__init__()
        if init not in INITS:
            raise ValueError(f"init must be one of {', '.join(INITS)}, got {init!r}")
        if len(filter_sizes) != len(num_filters):
            raise ValueError(
                f"filter_sizes ({len(filter_sizes)} widths) and num_filters ({len(num_filters)} counts) "
                "must have the same length"
            )
        too_wide = [k for k in filter_sizes if not 1 <= k <= seq_len]
        if too_wide:
            raise ValueError(f"filter widths {too_wide} do not fit sequences of length {seq_len}; pass filter_sizes "
                             f"(and num_filters, one count per width) with widths in 1..{seq_len}")
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
        self._initialise(init)

    def _initialise(self, init: Literal["tf", "torch"]) -> None:
        """The authors' initialisers (LantaoYu/SeqGAN discriminator.py): embedding
        U(-1, 1); convolution and output weights truncated N(0, 0.1) (TF redraws beyond
        2 sd), their biases 0.1. Their highway layers (`linear`) make weight and bias with
        ``tf.get_variable`` and no initialiser, which in TF 1.x means Glorot uniform
        U(-a, a), a = sqrt(6 / (fan_in + fan_out)), for the bias too (a vector of n
        entries has fan_in = fan_out = n): that is ``init="tf"``. ``init="torch"`` keeps
        the highway layers as nn.Linear made them, U(-1/sqrt(in), 1/sqrt(in)) for weight
        and bias (this module before the option existed).

        Drawn from torch's global generator (nn.init, as the construction itself; a
        stage seeds it with torch.manual_seed), the Glorot draws last, so the other
        layers get the same numbers under either init."""
        with torch.no_grad():
            nn.init.uniform_(self.embedding.weight, -1.0, 1.0)
            for w, b in zip(self.conv_weights, self.conv_biases):
                nn.init.trunc_normal_(w, std=0.1, a=-0.2, b=0.2)
                b.fill_(0.1)
            nn.init.trunc_normal_(self.out.weight, std=0.1, a=-0.2, b=0.2)
            self.out.bias.fill_(0.1)
            if init == "tf":
                for layer in (self.highway_transform, self.highway_gate):
                    nn.init.xavier_uniform_(layer.weight)
                    bound = math.sqrt(6.0 / (2 * layer.bias.numel()))
                    nn.init.uniform_(layer.bias, -bound, bound)

    def features(self, tokens: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Max-pooled filter responses after the highway layer: (B, total filters).
        ``lengths`` (B,): read only each row's first ``lengths`` tokens (zero-embedded pad)."""
        return self._highway(self._pooled(tokens, lengths))

    @torch.no_grad()
    def eval_features(self, tokens: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """`features` of many whole sequences without gradients (RankGAN's ranker scores
        ~20k rollout completions): the convolutions by the lookup tables when they pay off,
        the highway layer batch by batch, in place. No dropout is involved either way."""
        if tokens.shape[0] == 0:  # no batches to concatenate
            return torch.empty(0, self.out.in_features, device=tokens.device)
        if self._lookup_pays_off(tokens.shape[0]):
            pooled = self._pooled_by_lookup(tokens)
        else:
            pooled = torch.cat([self._pooled(tokens[i : i + batch_size]) for i in range(0, tokens.shape[0], batch_size)])
        for i in range(0, pooled.shape[0], batch_size):
            pooled[i : i + batch_size] = self._highway(pooled[i : i + batch_size])
        return pooled

    def features_of_embeddings(self, x: torch.Tensor) -> torch.Tensor:
        """`features` of already embedded inputs x (B, T, E): the relaxed methods
        (seqgan_core.relaxed) feed one-hot or relaxed one-hot rows times the embedding
        matrix, which for exact one-hots is the embedding lookup."""
        return self._highway(self._pooled_embeddings(x))

    def _pooled(self, tokens: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """`_pooled_embeddings` of the tokens' embeddings, padding zeroed (see `features`)."""
        x = self.embedding(tokens)  # (B, T, E)
        if lengths is not None:
            keep = torch.arange(tokens.shape[1], device=tokens.device) < lengths.to(tokens.device).unsqueeze(1)
            x = x * keep.unsqueeze(2).to(x.dtype)
        return self._pooled_embeddings(x)

    def _pooled_embeddings(self, x: torch.Tensor) -> torch.Tensor:
        """ReLU of the max-over-time filter responses plus bias: (B, total filters)."""
        B, T, E = x.shape
        pooled = []
        for k, w, b in zip(self.filter_sizes, self.conv_weights, self.conv_biases):
            windows = x.unfold(1, k, 1).transpose(2, 3).reshape(B * (T - k + 1), k * E)
            responses = (windows @ w).view(B, T - k + 1, -1)
            pooled.append(torch.relu(_MaxOverTime.apply(responses) + b))
        return torch.cat(pooled, dim=1)

    def _highway(self, h: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.highway_gate(h) + self.highway_gate_bias)
        return torch.lerp(h, torch.relu(self.highway_transform(h)), gate)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Class logits (B, 2): column 1 is "real". ``lengths``: see `features`."""
        return self.out(self.dropout(self.features(tokens, lengths)))

    @torch.no_grad()
    def prob_real(self, tokens: torch.Tensor, batch_size: int = 1024, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """P(real) for each sequence (B,), in eval mode (no dropout), in batches.
        ``lengths`` (B,): score each row's prefix of that length (see `features`)."""
        self.check_tokens(tokens)
        if tokens.shape[0] == 0:
            return torch.empty(0, device=tokens.device)
        was_training = self.training
        self.eval()
        try:
            if lengths is None and self._lookup_pays_off(tokens.shape[0]):
                return self._prob_real_from_pooled(self._pooled_by_lookup(tokens), batch_size)
            logits = [self(tokens[i : i + batch_size], None if lengths is None else lengths[i : i + batch_size])
                      for i in range(0, tokens.shape[0], batch_size)]
            return torch.cat([torch.softmax(chunk, dim=1)[:, 1] for chunk in logits])
        finally:
            self.train(was_training)

    def check_tokens(self, tokens: torch.Tensor) -> None:
        """ValueError or TypeError unless ``tokens`` are ids of this D's vocabulary in rows at
        least as long as its widest filter (shorter rows ended in an unfold error)."""
        check_tokens(tokens, self.embedding.num_embeddings)
        if tokens.shape[1] < max(self.filter_sizes):
            raise ValueError(f"rows of {tokens.shape[1]} tokens are shorter than this discriminator's widest filter "
                             f"({max(self.filter_sizes)}); it scores sequences of length {self.seq_len}")

    def _prob_real_from_pooled(self, pooled: torch.Tensor, batch_size: int) -> torch.Tensor:
        """Highway, output layer and P(real) for pooled features, in batches, without
        autograd: the same operations as `_highway` and `out`, written into buffers reused
        across batches (fresh (batch x features) temporaries cost page faults here)."""
        rows, features = pooled.shape
        probs = torch.empty(rows, device=pooled.device)
        gate, transform, mixed = (torch.empty(min(batch_size, rows), features, device=pooled.device) for _ in range(3))
        for i in range(0, rows, batch_size):
            h = pooled[i : i + batch_size]
            n = h.shape[0]
            g = torch.addmm(self.highway_gate.bias, h, self.highway_gate.weight.t(), out=gate[:n])
            g.add_(self.highway_gate_bias).sigmoid_()
            t = torch.addmm(self.highway_transform.bias, h, self.highway_transform.weight.t(), out=transform[:n]).relu_()
            logits = self.out(torch.lerp(h, t, g, out=mixed[:n]))
            probs[i : i + n] = torch.softmax(logits, dim=1)[:, 1]
        return probs

    # ------------------------------------------------------- lookup-table convolutions
    def _lookup_pays_off(self, rows: int) -> bool:
        """Whether building the tables P_k costs less than half the matmul work they save:
        tables cost vocab * sum_k k*n_k multiply-adds (per embedding channel), the
        matmuls rows * sum_k (T-k+1)*k*n_k."""
        per_row = sum((self.seq_len - k + 1) * k * w.shape[1] for k, w in zip(self.filter_sizes, self.conv_weights))
        tables = sum(k * w.shape[1] for k, w in zip(self.filter_sizes, self.conv_weights))
        return rows * per_row >= 2 * self.embedding.num_embeddings * tables

    def _pooled_by_lookup(self, tokens: torch.Tensor, chunk_rows: int = 256) -> torch.Tensor:
        """`_pooled(tokens)` through the lookup tables of the module docstring.

        Widths are the outer loop, so only one width's table exists at a time (at most
        vocab * 20 * 160 floats, 64 MB for the paper's D) and all rows use it in turn.
        """
        rows, T = tokens.shape
        vocab, emb_dim = self.embedding.weight.shape
        # int32 ids halve the index traffic (embedding_bag reads one id per table row used).
        index_type = torch.int32 if vocab * max(self.filter_sizes) < 2**31 else torch.long
        pooled = torch.empty(rows, self.out.in_features, device=tokens.device)
        # One buffer serves every width's table in turn (fresh memory costs page faults).
        largest = max(k * w.shape[1] for k, w in zip(self.filter_sizes, self.conv_weights))
        table_buffer = torch.empty(vocab * largest, device=tokens.device)
        col = 0
        for k, w, b in zip(self.filter_sizes, self.conv_weights, self.conv_biases):
            n = w.shape[1]
            # table[v * k + j] = emb[v] @ W_k[j] for window offset j = 0..k-1: one matmul
            # (vocab, emb) @ (emb, k * n) whose output rows hold the k tables side by side.
            by_offset = w.view(k, emb_dim, n).transpose(0, 1).reshape(emb_dim, k * n)
            table = torch.mm(self.embedding.weight, by_offset, out=table_buffer[: vocab * k * n].view(vocab, k * n))
            table = table.view(vocab * k, n)
            scaled = (tokens * k).to(index_type)
            offsets = torch.arange(k, dtype=index_type, device=tokens.device)
            for i in range(0, rows, chunk_rows):
                chunk = scaled[i : i + chunk_rows]
                # bag (sequence, window start s) holds the table rows y_(s+j) * k + j, j < k
                # (written into a fresh contiguous buffer: the sum of an overlapping unfold
                # view would otherwise come out in a layout that needs another copy)
                bags = torch.empty(chunk.shape[0], T - k + 1, k, dtype=index_type, device=tokens.device)
                torch.add(chunk.unfold(1, k, 1), offsets, out=bags)
                responses = F.embedding_bag(bags.view(-1, k), table, mode="sum").view(chunk.shape[0], T - k + 1, n)
                pooled[i : i + chunk_rows, col : col + n] = torch.relu(responses.amax(dim=1) + b)
            col += n
        return pooled

    def loss_from_logits(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy plus the L2 penalty on the output layer (TF's l2_loss: sum/2)."""
        l2 = 0.5 * (self.out.weight.square().sum() + self.out.bias.square().sum())
        return F.cross_entropy(logits, labels) + self.l2_reg * l2
