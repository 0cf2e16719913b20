"""LeakGAN's generator (Guo et al., AAAI 2018): a MANAGER that reads the discriminator's
leaked feature of the current prefix and a WORKER that writes the next token.

Positions are 0-indexed as in `seqgan_core.lstm`: step t predicts token x_t from the
prefix x_<t. With f_t = F(x_<t) the discriminator's feature of that prefix (padded to
the full length with the pad id ``vocab_size``; f_0 is the all-pad sequence):

    manager   h^M_t = LSTM_M(f_t, h^M_{t-1}),   g_t = normalise(W_M h^M_t + b_M)
    goal      G_t   = sum_{i=1..c} g_{t-i}      (paper eq. 5; g_j = goal_init for j < 0)
    worker    h^W_t = LSTM_W(emb(x_{t-1}), h^W_{t-1}),   O_t = reshape(W_W h^W_t + b_W) in R^{V x k}
    policy    pi(. | x_<t) = softmax(O_t normalise(W_psi G_t) / temperature)

``goal_window="segment"`` is the official code's goal instead: held for c steps and
refreshed at t = 0, c, 2c, ... with the sum above (the c sub-goals of the previous
segment; goal_init in the first). The code's own graphs disagree by one step here: its
sampling graph sums g_{t-c}..g_{t-1} as above, its teacher-forced graph (training
losses, rollouts) g_{t-c+1}..g_t, so it trains on a policy it does not sample from. We
use the sampling graph's goal everywhere: `sample`, `token_log_probs` and the rollouts
are one distribution.

The goal reaches the worker detached: as in the code (whose worker losses differentiate
the worker's variables only), the manager learns from its own cosine losses alone.
goal_init (a code variable; the paper's eq. 5 leaves t < c open) only fills the window
before the first sub-goals: with the segment goal it is the first segment's goal, which
the manager's loss trains, as in the code; with the sliding goal no loss reaches it and
it stays at its initial value.

The leaked feature is `Discriminator.features`, the highway output before dropout. The
code leaks the dropout output, but every generator pass feeds keep-prob 1.0, so it is
the same tensor. The generator owns a copy of D (`feature_extractor`, no gradients,
restored from its state_dict), so a saved generator samples exactly as in training;
`sync_features` copies the discriminator being trained into it (the paper's generator
reads the CURRENT D; the LeakGAN method calls it after every D step).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .. import randomness
from ..discriminator import PAPER_FILTER_SIZES, PAPER_NUM_FILTERS, Discriminator
from ..lstm import State, lstm_cell, lstm_states
from ..sampling import check_finite_weights, check_temperature, check_tokens, place_prefix, sample_categorical

GoalWindow = Literal["sliding", "segment"]
GOAL_WINDOWS = ("sliding", "segment")
# Rows per leaked-feature call: bounds the memory of sampling 10,000 sequences at once,
# and is past the row count where D's lookup-table convolutions pay off at paper sizes.
FEATURE_CHUNK_ROWS = 2048


def leakgan_discriminator(vocab_size: int, seq_len: int = 20, emb_dim: int = 64,
                          filter_sizes: Sequence[int] = PAPER_FILTER_SIZES,
                          num_filters: Sequence[int] = PAPER_NUM_FILTERS, dropout: float = 0.0,
                          l2_reg: float = 0.0, init: Literal["tf", "torch"] = "tf") -> Discriminator:
    """LeakGAN's D: SeqGAN's CNN with one more embedding row, for the pad id ``vocab_size``
    of the prefixes whose features it leaks (the code pads with -1, shifted to row 0; a
    dedicated row cannot collide with a real token). D trains on full sequences only.
    Defaults are the official synthetic code's: no dropout (keep-prob 1.0) and no L2
    (``dis_l2_reg_lambda`` is defined but never passed). The pipeline builds it from the
    ``discriminator`` params (`pipelines.models.build_discriminator`)."""
    return Discriminator(vocab_size + 1, seq_len, emb_dim, filter_sizes, num_filters, dropout, l2_reg, init=init)


class LeakState(NamedTuple):
    """Everything the recurrence carries from one step to the next, for R rows."""
    worker: State            # (h, c), each (R, H)
    manager: State           # (h, c), each (R, H)
    subgoals: torch.Tensor   # (R, c, F): g_{t-c}..g_{t-1}, oldest first
    goal: torch.Tensor       # (R, F): the goal of the last step (held in "segment" mode)

    def repeat(self, n: int) -> "LeakState":
        """Tiled ``n`` times along the rows: row k * R + r is row r."""
        tile = lambda x: x.repeat(n, *([1] * (x.dim() - 1)))  # noqa: E731
        return LeakState((tile(self.worker[0]), tile(self.worker[1])), (tile(self.manager[0]), tile(self.manager[1])),
                         tile(self.subgoals), tile(self.goal))

    @staticmethod
    def cat(states: Sequence["LeakState"]) -> "LeakState":
        join = lambda xs: torch.cat(list(xs))  # noqa: E731
        return LeakState((join(s.worker[0] for s in states), join(s.worker[1] for s in states)),
                         (join(s.manager[0] for s in states), join(s.manager[1] for s in states)),
                         join(s.subgoals for s in states), join(s.goal for s in states))


class TeacherForced(NamedTuple):
    """One teacher-forced pass over tokens (B, T): every step's quantities at once."""
    features: torch.Tensor   # (B, T+1, F): f_0..f_T (no gradient)
    subgoals: torch.Tensor   # (B, T, F): g_0..g_{T-1}
    goals: torch.Tensor      # (B, T, F): G_0..G_{T-1}, the goal step t's token was drawn under
    padded: torch.Tensor     # (B, T+c, F): c x goal_init, then g_0..g_{T-1}
    manager: State           # (B, T, H) each: after reading f_t
    worker: State            # (B, T, H) each: after step t

    def state_after(self, t: int) -> LeakState:
        """The recurrent state after step t (token x_t drawn, f_t read), as `step` and
        `observe` leave it: where a completion of the prefix x_<=t continues from."""
        c = self.padded.shape[1] - self.subgoals.shape[1]
        return LeakState((self.worker[0][:, t], self.worker[1][:, t]), (self.manager[0][:, t], self.manager[1][:, t]),
                         self.padded[:, t + 1 : t + 1 + c], self.goals[:, t])


class LeakGANGenerator(nn.Module):
    """Manager and worker LSTMs with the leaked feature extractor. Defaults: the official
    synthetic code at L = 20 (embedding and both hidden sizes 32, k = 16, c = 4, D of
    1,720 features); every weight N(0, init_std) and goal_init truncated N(0, 0.1^2), as
    there; goal_init is one vector (the code learns one per row of its fixed batch)."""

    kind = "leakgan"

    def __init__(self, vocab_size: int, seq_len: int = 20, emb_dim: int = 32, hidden_dim: int = 32,
                 goal_size: int = 16, step_size: int = 4, start_token: int = 0, goal_window: GoalWindow = "sliding",
                 d_emb_dim: int = 64, d_filter_sizes: Sequence[int] = PAPER_FILTER_SIZES,
                 d_num_filters: Sequence[int] = PAPER_NUM_FILTERS, init_std: float = 0.1,
                 rng: torch.Generator | None = None) -> None:
        super().__init__()
        if not 0 <= start_token < vocab_size:
            raise ValueError(f"start_token {start_token} is outside the vocabulary [0, {vocab_size})")
        if not 1 <= step_size <= seq_len:
            raise ValueError(f"step_size (c) must be in [1, seq_len = {seq_len}], got {step_size}")
        too_wide = [k for k in d_filter_sizes if not 1 <= k <= seq_len]
        if too_wide:  # named here: D's own message would name its filter_sizes, not ours
            raise ValueError(f"d_filter_sizes {too_wide} do not fit sequences of length {seq_len}; pass d_filter_sizes "
                             f"(and d_num_filters, one count per width) with widths in 1..{seq_len}")
        if goal_window not in GOAL_WINDOWS:
            raise ValueError(f"goal_window must be one of {GOAL_WINDOWS}, got {goal_window!r}")
        self.vocab_size, self.seq_len, self.start_token = vocab_size, seq_len, start_token
        self.emb_dim, self.hidden_dim, self.goal_size, self.step_size = emb_dim, hidden_dim, goal_size, step_size
        self.goal_window, self.init_std = goal_window, init_std
        self.d_emb_dim, self.d_filter_sizes, self.d_num_filters = d_emb_dim, list(d_filter_sizes), list(d_num_filters)
        H, k, V, Fd = hidden_dim, goal_size, vocab_size, sum(d_num_filters)
        self.feature_size = Fd
        # Worker: the SeqGAN cell (as `LSTMLanguageModel`), output layer W_W (H -> V*k)
        # stored as ((H*k) x V) so that O_t w_t = (h_t outer w_t) @ W_out + w_t @ b_out:
        # one (R, H*k) x (H*k, V) matmul instead of an (R, V*k) output per step.
        self.embedding = nn.Parameter(torch.empty(V, emb_dim))
        self.W, self.U, self.b = (nn.Parameter(torch.empty(*s)) for s in ((emb_dim, 4 * H), (H, 4 * H), (4 * H,)))
        self.W_out, self.b_out = nn.Parameter(torch.empty(H * k, V)), nn.Parameter(torch.empty(k, V))
        self.W_psi = nn.Parameter(torch.empty(Fd, k))  # the code's g_change: a worker variable, no bias
        # Manager.
        self.W_m, self.U_m, self.b_m = (nn.Parameter(torch.empty(*s)) for s in ((Fd, 4 * H), (H, 4 * H), (4 * H,)))
        self.W_goal, self.b_goal = nn.Parameter(torch.empty(H, Fd)), nn.Parameter(torch.empty(Fd))
        self.goal_init = nn.Parameter(torch.empty(Fd))
        with torch.no_grad():
            for p in self.manager_parameters()[:-1] + self.worker_parameters():
                randomness.normal_(p, 0.0, init_std, rng)
            randomness.trunc_normal_(self.goal_init, 0.1, rng)
        with randomness.global_draws_from(rng):  # D's own initialisers use the global stream
            self.feature_extractor = leakgan_discriminator(vocab_size, seq_len, d_emb_dim, d_filter_sizes,
                                                           d_num_filters)
        self.feature_extractor.requires_grad_(False)

    def config(self) -> dict:
        return {"vocab_size": self.vocab_size, "seq_len": self.seq_len, "emb_dim": self.emb_dim,
                "hidden_dim": self.hidden_dim, "goal_size": self.goal_size, "step_size": self.step_size,
                "start_token": self.start_token, "goal_window": self.goal_window, "d_emb_dim": self.d_emb_dim,
                "d_filter_sizes": list(self.d_filter_sizes), "d_num_filters": list(self.d_num_filters),
                "init_std": self.init_std}

    @property
    def device(self) -> torch.device:
        return self.embedding.device

    @property
    def pad_id(self) -> int:
        return self.vocab_size

    def manager_parameters(self) -> list[nn.Parameter]:
        return [self.W_m, self.U_m, self.b_m, self.W_goal, self.b_goal, self.goal_init]

    def worker_parameters(self) -> list[nn.Parameter]:
        return [self.embedding, self.W, self.U, self.b, self.W_out, self.b_out, self.W_psi]

    @torch.no_grad()
    def sync_features(self, discriminator: Discriminator) -> None:
        """Copy ``discriminator``'s weights into the leaked feature extractor."""
        self.feature_extractor.load_state_dict(discriminator.state_dict())

    # ------------------------------------------------------------- leaked features
    def leaked_features(self, prefixes: torch.Tensor) -> torch.Tensor:
        """D's features (R, F) of pad-filled prefixes (R, T), without gradients, in calls of
        at most `FEATURE_CHUNK_ROWS` rows."""
        extract = self.feature_extractor.eval_features
        return torch.cat([extract(chunk) for chunk in prefixes.split(FEATURE_CHUNK_ROWS)])

    def prefix_features(self, tokens: torch.Tensor) -> torch.Tensor:
        """f_0..f_T (B, T+1, F) of all T+1 prefixes of ``tokens`` (B, T), in one batched call
        (chunked beyond `FEATURE_CHUNK_ROWS` rows: a batch of 64 x 21 prefixes is one)."""
        B, T = tokens.shape
        positions = torch.arange(T, device=tokens.device)
        keep = positions.unsqueeze(0) < torch.arange(T + 1, device=tokens.device).unsqueeze(1)  # (T+1, T)
        prefixes = torch.where(keep, tokens.unsqueeze(1), torch.full_like(tokens, self.pad_id).unsqueeze(1))
        return self.leaked_features(prefixes.reshape(B * (T + 1), T)).view(B, T + 1, self.feature_size)

    # ------------------------------------------------------------------ recurrence
    def initial_state(self, n: int) -> LeakState:
        zeros = torch.zeros(n, self.hidden_dim, device=self.device)
        init = self.goal_init.expand(n, self.step_size, -1)
        return LeakState((zeros, zeros.clone()), (zeros.clone(), zeros.clone()), init, init[:, 0])

    def worker_logits(self, h: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """Logits O_t w_t (R, V) from worker states (R, H) and goals (R, F); the goal is
        detached (see the module docstring)."""
        w = F.normalize(goal.detach() @ self.W_psi, dim=-1)  # (R, k)
        outer = (h.unsqueeze(2) * w.unsqueeze(1)).flatten(1)  # (R, H*k), index h * k + j
        return torch.addmm(w @ self.b_out, outer, self.W_out)

    def step(self, t: int, prev_tokens: torch.Tensor, state: LeakState) -> tuple[torch.Tensor, LeakState]:
        """Step t's worker: read x_{t-1}, take the goal, return the logits of x_t (R, V)."""
        worker = lstm_cell(torch.addmm(self.b, F.embedding(prev_tokens, self.embedding), self.W), state.worker, self.U)
        refresh = self.goal_window == "sliding" or t % self.step_size == 0
        goal = state.subgoals.sum(dim=1) if refresh else state.goal
        return self.worker_logits(worker[0], goal), state._replace(worker=worker, goal=goal)

    def observe(self, features: torch.Tensor, state: LeakState) -> LeakState:
        """Step t's manager: read f_t (R, F) and push the sub-goal g_t (used from t+1 on)."""
        manager = lstm_cell(torch.addmm(self.b_m, features, self.W_m), state.manager, self.U_m)
        g = F.normalize(torch.addmm(self.b_goal, manager[0], self.W_goal), dim=-1)
        return state._replace(manager=manager, subgoals=torch.cat([state.subgoals[:, 1:], g.unsqueeze(1)], dim=1))

    def teacher_forced(self, tokens: torch.Tensor) -> TeacherForced:
        """All steps of ``tokens`` (B, T) at once: one leaked-feature call for all
        prefixes, then both LSTMs over the sequence. Differentiable in the generator."""
        return TeacherForced(*self._manager_pass(tokens), self._worker_pass(tokens))

    def _manager_pass(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                                           State]:
        """features, subgoals, goals, padded sub-goals and manager states (`TeacherForced`)."""
        B, T = tokens.shape
        c = self.step_size
        features = self.prefix_features(tokens)
        manager = lstm_states(features[:, :T] @ self.W_m + self.b_m, self.U_m, self._zeros(B))
        subgoals = F.normalize(manager[0] @ self.W_goal + self.b_goal, dim=-1)
        padded = torch.cat([self.goal_init.expand(B, c, -1), subgoals], dim=1)
        goals = padded.unfold(1, c, 1)[:, :T].sum(dim=-1)  # G_t = sum of padded[t : t + c]
        if self.goal_window == "segment":
            goals = goals[:, torch.arange(T, device=tokens.device) // c * c]
        return features, subgoals, goals, padded, manager

    def _worker_pass(self, tokens: torch.Tensor) -> State:
        start = torch.full((tokens.shape[0], 1), self.start_token, dtype=torch.long, device=tokens.device)
        inputs = F.embedding(torch.cat([start, tokens[:, :-1]], dim=1), self.embedding) @ self.W + self.b
        return lstm_states(inputs, self.U, self._zeros(tokens.shape[0]))

    def _zeros(self, n: int) -> State:
        zeros = torch.zeros(n, self.hidden_dim, device=self.device)
        return zeros, zeros.clone()

    def log_probs_of(self, worker_hidden: torch.Tensor, goals: torch.Tensor, tokens: torch.Tensor,
                     temperature: float = 1.0) -> torch.Tensor:
        """log pi(x_t | x_<t) (B, T) from a pass's worker states and goals (each (B, T, .))."""
        check_temperature(temperature)
        logits = self.worker_logits(worker_hidden.flatten(0, 1), goals.flatten(0, 1))
        log_probs = torch.log_softmax(logits / temperature, dim=-1)
        return log_probs.gather(1, tokens.reshape(-1, 1)).view_as(tokens)

    def token_log_probs(self, tokens: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        """log pi(x_t | x_<t) (B, T) under softmax(logits / temperature); differentiable in
        the worker (the manager only sets the detached goal, so it runs without autograd)."""
        check_tokens(tokens, self.vocab_size)
        if tokens.shape[1] != self.seq_len:  # the leaked features are D's, of full-length rows
            raise ValueError(f"LeakGAN scores rows of its seq_len ({self.seq_len}) tokens, got {tokens.shape[1]}")
        tokens = tokens.to(self.device)
        with torch.no_grad():
            goals = self._manager_pass(tokens)[2]
        return self.log_probs_of(self._worker_pass(tokens)[0], goals, tokens, temperature)

    @torch.no_grad()
    def token_log_probs_chunked(self, tokens: torch.Tensor, chunk_rows: int = 256,
                                temperature: float = 1.0) -> torch.Tensor:
        """`token_log_probs` without gradients, ``chunk_rows`` sequences at a time (each
        needs T+1 leaked features): for scoring large sets (`sequence_nll`)."""
        return torch.cat([self.token_log_probs(chunk, temperature) for chunk in tokens.split(chunk_rows)])

    # -------------------------------------------------------------------- sampling
    @torch.no_grad()
    def sample(self, n: int, *, rng: torch.Generator | None = None, temperature: float | Sequence[float] = 1.0,
               prefix: torch.Tensor | None = None) -> torch.Tensor:
        """Draw ``n`` sequences (n, T) on ``self.device`` from softmax(logits / temperature).

        ``temperature`` is one value or one per position (the official code's training
        samples sharpen the first two steps only: `code_temperatures`). ``prefix`` (P,) or
        (n, P) fixes the first P tokens. All uniforms are drawn from ``rng`` at once, in
        step order, then the rows run in chunks (whose state holds c x 1,720 sub-goals
        per row at paper sizes)."""
        single = isinstance(temperature, (int, float))
        temperatures = [float(temperature)] * self.seq_len if single else list(temperature)
        if len(temperatures) != self.seq_len:
            raise ValueError(f"{len(temperatures)} temperatures for {self.seq_len} positions")
        for value in temperatures:
            check_temperature(value)
        check_finite_weights(self)
        out = torch.full((n, self.seq_len), self.pad_id, dtype=torch.long, device=self.device)
        fixed = place_prefix(out, prefix, self.vocab_size)
        uniforms = randomness.uniform((self.seq_len - fixed, n, 1), rng, device=self.device)
        for start in range(0, n, FEATURE_CHUNK_ROWS):
            rows = slice(start, start + FEATURE_CHUNK_ROWS)
            self._generate(out[rows], fixed, uniforms[:, rows], temperatures)
        return out

    def _generate(self, out: torch.Tensor, fixed: int, uniforms: torch.Tensor, temperatures: list[float]) -> None:
        """Fill positions ``fixed``.. of ``out`` (rows, T) in place."""
        rows = out.shape[0]
        state = self.initial_state(rows)
        prefix = torch.full_like(out, self.pad_id)  # x_<t, then pad ids: what D reads at step t
        prev = torch.full((rows,), self.start_token, dtype=torch.long, device=self.device)
        for t in range(self.seq_len):
            logits, state = self.step(t, prev, state)
            if t + 1 < self.seq_len:  # g_t is first used at step t + 1
                state = self.observe(self.leaked_features(prefix), state)
            if t >= fixed:
                out[:, t] = sample_categorical(logits, temperature=temperatures[t], inplace=True,
                                               uniforms=uniforms[t - fixed]).squeeze(1)
            prev = prefix[:, t] = out[:, t]
