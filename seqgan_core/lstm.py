"""The LSTM language model shared by the oracle and the generator.

SeqGAN's oracle ("target LSTM") and its generator are the same network: a token
embedding, one LSTM layer and a softmax output layer; they differ only in their
initialisation and in whether they are trained. The cell follows the authors' code
(row vectors, ``x @ W``, gates i, f, o and candidate c, one bias per gate), so the
paper's oracle weights load without any transposition or bias splitting.

Positions are 0-indexed. Step ``t`` reads the previous token (the start token at
``t = 0``), updates (h, c), and its logits predict token ``t``. "State at step t" is
therefore the state that has read ``y_0 .. y_{t-1}``: exactly what a rollout from a
prefix of length ``t`` continues from.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from . import randomness
from .sampling import LOG2E, check_finite_weights, check_temperature, check_tokens, place_prefix, sample_log2_weights

State = tuple[torch.Tensor, torch.Tensor]

# Rows per chunk of the (rows x vocab) gradient in token_log_probs' backward: 128 x 5000
# floats stay in cache (and, unlike one 1280 x 5000 buffer per batch, cost no page faults).
_SOFTMAX_CHUNK_ROWS = 128
# exp2 needs no max shift while every row's largest base-2 logit is within +-86 (see
# seqgan_core.sampling._SAFE_EXP2_RANGE: no overflow, no all-zero row).
_SAFE_EXP2_RANGE = 86.0


def lstm_cell(gates_x: torch.Tensor, state: State, U: torch.Tensor) -> State:
    """One step of the authors' LSTM cell: gate blocks i, f, o, c (candidate) along the
    last axis, from the input projection ``gates_x = x @ W + b`` (R, 4H) and (h, c)."""
    h, c = state
    gates = torch.addmm(gates_x, h, U)
    H = U.shape[0]
    i, f, o = torch.sigmoid(gates[:, : 3 * H]).chunk(3, dim=1)
    c = torch.addcmul(f * c, i, torch.tanh(gates[:, 3 * H :]))
    return o * torch.tanh(c), c


def lstm_states(gates_x: torch.Tensor, U: torch.Tensor, state: State) -> State:
    """`lstm_cell` over the steps of ``gates_x`` (B, T, 4H) from ``state``: every step's
    (h, c), each (B, T, H)."""
    hs, cs = [], []
    for t in range(gates_x.shape[1]):
        state = lstm_cell(gates_x[:, t], state, U)
        hs.append(state[0])
        cs.append(state[1])
    return torch.stack(hs, dim=1), torch.stack(cs, dim=1)


class _TokenLogProbs(torch.autograd.Function):
    """log softmax(h @ W + b)[target] per row, and its gradient, in few passes.

    `log_softmax` + `gather` writes the (rows x vocab) log-probabilities, and its backward
    reads them again, zero-fills a one-hot gradient and exponentiates a second time: on 2
    cores that costs more than the output-layer matmuls. Here the matmul makes logits
    scaled by log2(e), exponentiated in place by exp2 (half the cost of exp) into the
    softmax numerators, which backward reuses: d log p_y / d logits = onehot(y) - softmax.
    Backward works through the rows in chunks, so its (rows x vocab) gradient never
    exists whole: a small buffer that stays in cache instead of another large fresh one.
    Same values up to float rounding.
    """

    @staticmethod
    def forward(ctx, h, weight, bias, targets, chunk_rows: int):
        logits2 = torch.addmm(bias * LOG2E, h, weight * LOG2E)  # base 2: exp2(l * log2 e) = e^l
        picked = logits2.gather(1, targets.unsqueeze(1)).squeeze(1)
        row_max = logits2.amax(dim=1, keepdim=True)
        if bool((row_max.abs() <= _SAFE_EXP2_RANGE).all()):  # also false for inf / nan
            row_max.zero_()
        else:
            logits2.sub_(row_max)
        numerators = logits2.exp2_()
        total = numerators.sum(dim=1)
        ctx.save_for_backward(h, weight, targets, numerators, total)
        ctx.chunk_rows = chunk_rows
        return (picked - row_max.squeeze(1) - torch.log2(total)) * math.log(2.0)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        h, weight, targets, numerators, total = ctx.saved_tensors
        grad_h = torch.empty_like(h)
        grad_weight = torch.zeros_like(weight)
        grad_bias = torch.zeros(weight.shape[1], dtype=grad.dtype, device=grad.device)
        scale = (-grad / total).unsqueeze(1)
        for start in range(0, h.shape[0], ctx.chunk_rows):
            rows = slice(start, start + ctx.chunk_rows)
            # grad * (onehot(y) - softmax) for these rows
            grad_logits = numerators[rows] * scale[rows]
            grad_logits.scatter_add_(1, targets[rows].unsqueeze(1), grad[rows].unsqueeze(1))
            torch.mm(grad_logits, weight.t(), out=grad_h[rows])
            grad_weight.addmm_(h[rows].t(), grad_logits)
            grad_bias.add_(grad_logits.sum(dim=0))
        return grad_h, grad_weight, grad_bias, None, None


class LSTMLanguageModel(nn.Module):
    """Embedding -> LSTM -> linear output over the vocabulary.

    Every parameter is initialised from N(0, init_std): 0.1 for the SeqGAN generator,
    1.0 for the oracle (both as in the authors' code).
    """

    def __init__(
        self,
        vocab_size: int,
        emb_dim: int = 32,
        hidden_dim: int = 32,
        seq_len: int = 20,
        start_token: int = 0,
        init_std: float = 0.1,
        rng: torch.Generator | None = None,
    ) -> None:
        """Parameters ~ N(0, init_std), drawn from ``rng`` (default: torch's global generator)."""
        super().__init__()
        if not 0 <= start_token < vocab_size:
            raise ValueError(f"start_token {start_token} is outside the vocabulary [0, {vocab_size})")
        self.vocab_size, self.emb_dim, self.hidden_dim = vocab_size, emb_dim, hidden_dim
        self.seq_len, self.start_token = seq_len, start_token
        # Read with F.embedding, never `embedding[tokens]`: on CPU the backward of advanced
        # indexing accumulates repeated rows in a varying order under several threads, so
        # seeded runs would differ after their first update (test_training).
        self.embedding = nn.Parameter(torch.empty(vocab_size, emb_dim))
        # Gate blocks along the last axis, in the order i, f, o, c (candidate).
        self.W = nn.Parameter(torch.empty(emb_dim, 4 * hidden_dim))
        self.U = nn.Parameter(torch.empty(hidden_dim, 4 * hidden_dim))
        self.b = nn.Parameter(torch.empty(4 * hidden_dim))
        self.W_out = nn.Parameter(torch.empty(hidden_dim, vocab_size))
        self.b_out = nn.Parameter(torch.empty(vocab_size))
        self.reset_parameters(init_std, rng)

    def reset_parameters(self, std: float, rng: torch.Generator | None = None) -> None:
        with torch.no_grad():
            for p in self.parameters():
                randomness.normal_(p, 0.0, std, rng)  # on rng's device (the CPU), then moved

    @property
    def device(self) -> torch.device:
        return self.embedding.device

    kind = "lstm"  # its key in seqgan_core.generators.GENERATORS

    def config(self) -> dict[str, int]:
        """The constructor's arguments that fix the shapes: ``type(self)(**config())`` plus
        the state dict rebuilds this model."""
        return {"vocab_size": self.vocab_size, "emb_dim": self.emb_dim, "hidden_dim": self.hidden_dim,
                "seq_len": self.seq_len, "start_token": self.start_token}

    # ----------------------------------------------------------------- recurrence
    def initial_state(self, batch: int) -> State:
        zeros = torch.zeros(batch, self.hidden_dim, device=self.device)
        return zeros, zeros.clone()

    def _cell(self, gates_x: torch.Tensor, state: State) -> State:
        """One LSTM update from the input projection ``x @ W + b`` and (h, c)."""
        return lstm_cell(gates_x, state, self.U)

    def advance(self, prev_tokens: torch.Tensor, state: State) -> State:
        """Read one token per row and return the new (h, c); logits are left to the caller,
        since on the sampling paths they are the expensive part and are made in chunks."""
        return self._cell(torch.addmm(self.b, F.embedding(prev_tokens, self.embedding), self.W), state)

    def step(self, prev_tokens: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Read one token per row; return the next-token logits (B, V) and the new state."""
        state = self.advance(prev_tokens, state)
        return self.output_logits(state[0]), state

    def output_logits(self, h: torch.Tensor) -> torch.Tensor:
        # One addmm over all leading dims: `h @ W_out + b_out` on (B, T, H) would make a
        # second pass over the (B, T, V) logits to add the bias, and another in backward.
        flat = torch.addmm(self.b_out, h.reshape(-1, self.hidden_dim), self.W_out)
        return flat.view(*h.shape[:-1], self.vocab_size)

    def teacher_forced_hidden(self, tokens: torch.Tensor) -> torch.Tensor:
        """Hidden states (B, T, H) of a teacher-forced pass, without the output layer.

        On CPU this runs PyTorch's fused LSTM kernel on this model's weights: the same
        cell (gates reordered to PyTorch's i, f, g, o), forward and backward ~2.5x faster
        than the step loop of `_teacher_forced_states`, which other devices use (the fused
        path has not been measured there).
        """
        if self.device.type != "cpu" or tokens.shape[0] == 0:
            return self._teacher_forced_states(tokens)[0]
        H = self.hidden_dim
        # Our gate blocks are i, f, o, c (candidate); PyTorch's are i, f, g (candidate), o.
        order = torch.cat([torch.arange(0, 2 * H), torch.arange(3 * H, 4 * H), torch.arange(2 * H, 3 * H)])
        order = order.to(self.device)
        params = [self.W[:, order].t(), self.U[:, order].t(), self.b[order], torch.zeros_like(self.b)]
        zeros = torch.zeros(1, tokens.shape[0], H, device=self.device)
        hidden, _, _ = torch.lstm(
            F.embedding(self._previous_tokens(tokens), self.embedding), (zeros, zeros), params,
            has_biases=True, num_layers=1, dropout=0.0, train=self.training, bidirectional=False, batch_first=True,
        )
        return hidden

    def _previous_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """The token each step reads: the start token, then tokens[:, :-1]."""
        start = torch.full((tokens.shape[0], 1), self.start_token, dtype=torch.long, device=tokens.device)
        return torch.cat([start, tokens[:, :-1]], dim=1)

    def _teacher_forced_states(self, tokens: torch.Tensor) -> State:
        prev = self._previous_tokens(tokens)
        # The input projection of all steps in one matmul; only h @ U is sequential.
        gates_x = F.embedding(prev, self.embedding) @ self.W + self.b  # (B, T, 4H)
        return lstm_states(gates_x, self.U, self.initial_state(tokens.shape[0]))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits (B, T, V)."""
        return self.output_logits(self.teacher_forced_hidden(tokens))

    def token_log_probs(self, tokens: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        """log p(y_t | y_<t) for every position under softmax(logits / temperature): (B, T).
        Differentiable (through the temperature's scaling of the output layer too)."""
        check_tokens(tokens, self.vocab_size)
        weight, bias = self._tempered_output_layer(temperature)
        h = self.teacher_forced_hidden(tokens).reshape(-1, self.hidden_dim)
        return _TokenLogProbs.apply(h, weight, bias, tokens.reshape(-1), _SOFTMAX_CHUNK_ROWS).view_as(tokens)

    @torch.no_grad()
    def token_log_probs_chunked(self, tokens: torch.Tensor, chunk_rows: int = 512,
                                temperature: float = 1.0) -> torch.Tensor:
        """``token_log_probs`` for scoring large sets without gradients: the recurrence runs
        over the whole batch, the (positions x vocab) softmax in cache-sized chunks."""
        weight, bias = self._tempered_output_layer(temperature)
        h = self.teacher_forced_hidden(tokens).flatten(0, 1)
        targets = tokens.reshape(-1)
        out = torch.empty(h.shape[0], device=h.device)
        for start in range(0, h.shape[0], chunk_rows):
            rows = slice(start, start + chunk_rows)
            out[rows] = _TokenLogProbs.apply(h[rows], weight, bias, targets[rows], chunk_rows)
        return out.view_as(tokens)

    def _tempered_output_layer(self, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(W_out, b_out) / temperature, whose logits are logits / temperature. At 1 the
        parameters themselves, with no copy: the untempered path is the one training takes,
        and its values stay bit-identical to those before temperatures existed."""
        check_temperature(temperature)
        if temperature == 1.0:
            return self.W_out, self.b_out
        return self.W_out / temperature, self.b_out / temperature

    # ------------------------------------------------------------------ sampling
    def sample_next(
        self,
        h: torch.Tensor,
        *,
        num_samples: int = 1,
        rng: torch.Generator | None = None,
        temperature: float = 1.0,
        chunk_rows: int = 256,
        uniforms: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Sample the next token(s) for hidden states ``h`` (R, H): LongTensor (R, num_samples).

        The (rows x vocab) logits are made and consumed in chunks that stay in cache:
        on 2 CPU cores a 256 x 5000 chunk samples ~1.4x faster per row than a 1024-row one.
        The output layer is scaled by log2(e) / temperature so that the sampler can
        exponentiate with the cheaper exp2 (see `seqgan_core.sampling`).

        The R x num_samples uniforms are drawn from ``rng`` in one go (on its device, see
        `seqgan_core.randomness`) unless the caller passes them as ``uniforms`` (on
        ``h``'s device; overwritten), as `sample` and `rollout` do for many steps at once.
        """
        check_temperature(temperature)
        if uniforms is None:
            uniforms = randomness.uniform((h.shape[0], num_samples), rng, device=h.device, dtype=h.dtype)
        with torch.no_grad():
            scale = LOG2E / temperature
            weight, bias = self.W_out * scale, self.b_out * scale
            out = torch.empty(h.shape[0], num_samples, dtype=torch.long, device=h.device)
            # One logits buffer for all chunks: a fresh one per chunk is fresh memory, and on
            # this VM its first-touch page faults cost more than the matmul that fills it.
            buffer = torch.empty(min(chunk_rows, h.shape[0]), self.vocab_size, dtype=h.dtype, device=h.device)
            for start in range(0, h.shape[0], chunk_rows):
                rows = h[start : start + chunk_rows]
                log2_weights = torch.addmm(bias, rows, weight, out=buffer[: rows.shape[0]])
                out[start : start + chunk_rows] = sample_log2_weights(
                    log2_weights, num_samples, uniforms=uniforms[start : start + chunk_rows])
        return out

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        rng: torch.Generator | None = None,
        temperature: float = 1.0,
        prefix: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Draw ``n`` sequences of ``seq_len`` tokens: a LongTensor (n, T) on ``self.device``.

        ``prefix`` (P,) or (n, P) fixes the first P tokens; sampling continues after them.
        The uniforms of all sampled steps are drawn from ``rng`` at once, in step order
        (the numbers a step-by-step draw takes), and moved to the device in one copy.
        """
        check_finite_weights(self)
        out = torch.empty(n, self.seq_len, dtype=torch.long, device=self.device)
        fixed = place_prefix(out, prefix, self.vocab_size)
        state = self.initial_state(n)
        uniforms = randomness.uniform((self.seq_len - fixed, n, 1), rng, device=self.device, dtype=state[0].dtype)
        prev = torch.full((n,), self.start_token, dtype=torch.long, device=self.device)
        for t in range(self.seq_len):
            state = self.advance(prev, state)
            if t >= fixed:
                out[:, t] = self.sample_next(state[0], temperature=temperature, uniforms=uniforms[t - fixed]).squeeze(1)
            prev = out[:, t]
        return out
