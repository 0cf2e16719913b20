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

from dataclasses import dataclass

import torch
from torch import nn

from .sampling import sample_categorical

State = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class TeacherForcedPass:
    """Everything one teacher-forced pass over (B, T) tokens produces."""

    logits: torch.Tensor  # (B, T, V): logits[:, t] predicts token t
    h: torch.Tensor  # (B, T, H): hidden state at step t (has read tokens < t)
    c: torch.Tensor  # (B, T, H): cell state at step t


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
    ) -> None:
        super().__init__()
        if not 0 <= start_token < vocab_size:
            raise ValueError(f"start_token {start_token} is outside the vocabulary [0, {vocab_size})")
        self.vocab_size, self.emb_dim, self.hidden_dim = vocab_size, emb_dim, hidden_dim
        self.seq_len, self.start_token = seq_len, start_token
        self.embedding = nn.Parameter(torch.empty(vocab_size, emb_dim))
        # Gate blocks along the last axis, in the order i, f, o, c (candidate).
        self.W = nn.Parameter(torch.empty(emb_dim, 4 * hidden_dim))
        self.U = nn.Parameter(torch.empty(hidden_dim, 4 * hidden_dim))
        self.b = nn.Parameter(torch.empty(4 * hidden_dim))
        self.W_out = nn.Parameter(torch.empty(hidden_dim, vocab_size))
        self.b_out = nn.Parameter(torch.empty(vocab_size))
        self.reset_parameters(init_std)

    def reset_parameters(self, std: float, rng: torch.Generator | None = None) -> None:
        with torch.no_grad():
            for p in self.parameters():
                p.normal_(0.0, std, generator=rng)

    @property
    def device(self) -> torch.device:
        return self.embedding.device

    # ----------------------------------------------------------------- recurrence
    def initial_state(self, batch: int) -> State:
        zeros = torch.zeros(batch, self.hidden_dim, device=self.device)
        return zeros, zeros.clone()

    def _cell(self, gates_x: torch.Tensor, state: State) -> State:
        """One LSTM update from the input projection ``x @ W + b`` and (h, c)."""
        h, c = state
        gates = torch.addmm(gates_x, h, self.U)
        H = self.hidden_dim
        i, f, o = torch.sigmoid(gates[:, : 3 * H]).chunk(3, dim=1)
        c = torch.addcmul(f * c, i, torch.tanh(gates[:, 3 * H :]))
        return o * torch.tanh(c), c

    def advance(self, prev_tokens: torch.Tensor, state: State) -> State:
        """Read one token per row and return the new (h, c); logits are left to the caller,
        since on the sampling paths they are the expensive part and are made in chunks."""
        return self._cell(torch.addmm(self.b, self.embedding[prev_tokens], self.W), state)

    def step(self, prev_tokens: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Read one token per row; return the next-token logits (B, V) and the new state."""
        state = self.advance(prev_tokens, state)
        return self.output_logits(state[0]), state

    def output_logits(self, h: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.b_out, h, self.W_out) if h.dim() == 2 else h @ self.W_out + self.b_out

    def teacher_forced(self, tokens: torch.Tensor) -> TeacherForcedPass:
        """Run over ``tokens`` (B, T) reading the true previous token at every step."""
        h, c = self._teacher_forced_states(tokens)
        return TeacherForcedPass(logits=self.output_logits(h), h=h, c=c)

    def teacher_forced_hidden(self, tokens: torch.Tensor) -> torch.Tensor:
        """Hidden states (B, T, H) of a teacher-forced pass, without the output layer."""
        return self._teacher_forced_states(tokens)[0]

    def _teacher_forced_states(self, tokens: torch.Tensor) -> State:
        B, T = tokens.shape
        prev = torch.cat(
            [torch.full((B, 1), self.start_token, dtype=torch.long, device=tokens.device), tokens[:, :-1]],
            dim=1,
        )
        # The input projection of all steps in one matmul; only h @ U is sequential.
        gates_x = self.embedding[prev] @ self.W + self.b  # (B, T, 4H)
        state = self.initial_state(B)
        hs, cs = [], []
        for t in range(T):
            state = self._cell(gates_x[:, t], state)
            hs.append(state[0])
            cs.append(state[1])
        return torch.stack(hs, dim=1), torch.stack(cs, dim=1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits (B, T, V)."""
        return self.teacher_forced(tokens).logits

    def token_log_probs(self, tokens: torch.Tensor) -> torch.Tensor:
        """log p(y_t | y_<t) for every position: (B, T). Differentiable."""
        log_p = torch.log_softmax(self(tokens), dim=-1)
        return log_p.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)

    @torch.no_grad()
    def token_log_probs_chunked(self, tokens: torch.Tensor, chunk_rows: int = 512) -> torch.Tensor:
        """``token_log_probs`` for scoring large sets without gradients: the recurrence runs
        over the whole batch, the (positions x vocab) softmax in cache-sized chunks."""
        h = self.teacher_forced_hidden(tokens).flatten(0, 1)
        targets = tokens.reshape(-1, 1)
        out = torch.empty(h.shape[0], device=h.device)
        for start in range(0, h.shape[0], chunk_rows):
            log_p = torch.log_softmax(self.output_logits(h[start : start + chunk_rows]), dim=-1)
            out[start : start + chunk_rows] = log_p.gather(-1, targets[start : start + chunk_rows]).squeeze(-1)
        return out.view_as(tokens)

    # ------------------------------------------------------------------ sampling
    def sample_next(
        self,
        h: torch.Tensor,
        *,
        num_samples: int = 1,
        rng: torch.Generator | None = None,
        temperature: float = 1.0,
        chunk_rows: int = 512,
    ) -> torch.Tensor:
        """Sample the next token(s) for hidden states ``h`` (R, H): LongTensor (R, num_samples).

        The (rows x vocab) logits are made and consumed in chunks that stay in cache:
        on 2 CPU cores a 512 x 5000 chunk samples ~2x faster per row than a 4096-row one.
        """
        out = torch.empty(h.shape[0], num_samples, dtype=torch.long, device=h.device)
        for start in range(0, h.shape[0], chunk_rows):
            logits = self.output_logits(h[start : start + chunk_rows])
            out[start : start + chunk_rows] = sample_categorical(
                logits, num_samples, temperature=temperature, rng=rng, inplace=True
            )
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
        """
        out = torch.empty(n, self.seq_len, dtype=torch.long, device=self.device)
        fixed = 0
        if prefix is not None:
            prefix = prefix.to(self.device)
            prefix = prefix.expand(n, -1) if prefix.dim() == 1 else prefix
            fixed = prefix.shape[1]
            if fixed > self.seq_len or prefix.shape[0] != n:
                raise ValueError(f"prefix of shape {tuple(prefix.shape)} does not fit {n} x {self.seq_len}")
            out[:, :fixed] = prefix
        state = self.initial_state(n)
        prev = torch.full((n,), self.start_token, dtype=torch.long, device=self.device)
        for t in range(self.seq_len):
            state = self.advance(prev, state)
            if t >= fixed:
                out[:, t] = self.sample_next(state[0], rng=rng, temperature=temperature).squeeze(1)
            prev = out[:, t]
        return out
