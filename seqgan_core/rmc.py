"""RelGAN's generator: a relational memory core (Santoro et al., 2018) language model.

Sizes and structure follow the official RelGAN code (`models/rmc_vanilla.py`,
`utils/models/relational_memory.py`; REFERENCE_MODELS.md section 3.1): memory of
``mem_slots`` rows of width ``num_heads * head_size`` (1 x 2 x 256 = 512 in the paper),
one attention block, a 2-layer attention MLP, per-element ("unit") input and forget gates
with constant biases 0 and +1, initial memory the identity padded with zeros, and the
flattened memory as the output, mapped linearly to the vocabulary. One step:

1. project the input embedding to the memory width and append it as an extra row;
2. multi-head attention over [memory; input] (q, k, v from one bias-free linear map and a
   layer norm; q scaled by (2 key + head)^-1/2 as in the code); residual + layer norm,
   MLP (ReLU between its two layers only), residual + layer norm; drop the input row;
3. next memory = sigmoid(i) * tanh(attended) + sigmoid(f) * memory, the gates read the
   projected input and tanh(memory) through bias-free linear maps.

Layer norm: the official code calls TF's ``layer_norm`` on (batch, rows, features)
tensors, whose statistics run over the rows *and* the features together (parameters per
feature). ``layer_norm="joint"`` (default) does that; ``"row"`` normalises each row alone,
as Santoro et al.'s Sonnet core does. Weights are truncated normal (cut at 2 sd) with sd
1/sqrt(fan_in), biases zero, as the code's `create_linear_initializer`; the embedding
(V x E) uses sd 1/sqrt(V) like the code's.

It satisfies the generator interface of `seqgan_core.lstm.LSTMLanguageModel` (kind
"rmc"): `sample`, `token_log_probs`, `config`, `device`; `initial_state` and
`step_embedded` are what `seqgan_core.relaxed` drives for RelGAN's Gumbel path.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import randomness
from .sampling import check_finite_weights, check_temperature, check_tokens, place_prefix, sample_categorical

LAYER_NORMS = ("joint", "row")
_LAYER_NORM_EPS = 1e-12  # TF's layer_norm variance epsilon
_FORGET_BIAS, _INPUT_BIAS = 1.0, 0.0


class RelationalMemoryGenerator(nn.Module):
    kind = "rmc"

    def __init__(
        self,
        vocab_size: int,
        emb_dim: int = 32,
        mem_slots: int = 1,
        num_heads: int = 2,
        head_size: int = 256,
        seq_len: int = 20,
        start_token: int = 0,
        layer_norm: str = "joint",
        rng: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if not 0 <= start_token < vocab_size:
            raise ValueError(f"start_token {start_token} is outside the vocabulary [0, {vocab_size})")
        if layer_norm not in LAYER_NORMS:
            raise ValueError(f"layer_norm must be one of {LAYER_NORMS}, got {layer_norm!r}")
        for name, value in (("emb_dim", emb_dim), ("mem_slots", mem_slots), ("num_heads", num_heads),
                            ("head_size", head_size), ("seq_len", seq_len)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        self.vocab_size, self.emb_dim, self.seq_len, self.start_token = vocab_size, emb_dim, seq_len, start_token
        self.mem_slots, self.num_heads, self.head_size, self.layer_norm = mem_slots, num_heads, head_size, layer_norm
        M = self.mem_size = num_heads * head_size
        qkv = num_heads * 3 * head_size  # key size = head size, as in the paper's runs
        shapes = {
            "embedding": (vocab_size, emb_dim),
            "W_in": (emb_dim, M), "b_in": (M,),                      # input -> memory row
            "W_qkv": (M, qkv), "ln_qkv_g": (qkv,), "ln_qkv_b": (qkv,),
            "ln_att_g": (M,), "ln_att_b": (M,),
            "W_mlp1": (M, M), "b_mlp1": (M,), "W_mlp2": (M, M), "b_mlp2": (M,),
            "ln_mlp_g": (M,), "ln_mlp_b": (M,),
            "W_gate_in": (M, 2 * M), "W_gate_mem": (M, 2 * M),       # i, f per element
            "W_out": (mem_slots * M, vocab_size), "b_out": (vocab_size,),
        }
        for name, shape in shapes.items():
            self.register_parameter(name, nn.Parameter(torch.empty(shape)))
        self.reset_parameters(rng)

    def reset_parameters(self, rng: torch.Generator | None = None) -> None:
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.startswith("ln_"):
                    p.fill_(1.0 if name.endswith("_g") else 0.0)
                elif name.startswith("b_"):
                    p.zero_()
                else:  # the embedding's fan-in is the vocabulary (the code's initializer)
                    randomness.trunc_normal_(p, p.shape[0] ** -0.5, rng)

    @property
    def device(self) -> torch.device:
        return self.embedding.device

    def config(self) -> dict[str, Any]:
        return {"vocab_size": self.vocab_size, "emb_dim": self.emb_dim, "mem_slots": self.mem_slots,
                "num_heads": self.num_heads, "head_size": self.head_size, "seq_len": self.seq_len,
                "start_token": self.start_token, "layer_norm": self.layer_norm}

    # ----------------------------------------------------------------- recurrence
    def initial_state(self, batch: int) -> torch.Tensor:
        """The identity, zero-padded (or cut) to (batch, slots, memory width)."""
        eye = torch.eye(self.mem_slots, max(self.mem_slots, self.mem_size), device=self.device,
                        dtype=self.embedding.dtype)[:, : self.mem_size]
        return eye.expand(batch, -1, -1).clone()

    def _norm(self, x: torch.Tensor, gain: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        dims = (-2, -1) if self.layer_norm == "joint" else (-1,)
        var, mean = torch.var_mean(x, dim=dims, correction=0, keepdim=True)
        return (x - mean) * torch.rsqrt(var + _LAYER_NORM_EPS) * gain + bias

    def _attend(self, rows: torch.Tensor) -> torch.Tensor:
        """Multi-head attention + MLP block over rows (B, N, M)."""
        B, N, M = rows.shape
        H, D = self.num_heads, self.head_size
        qkv = self._norm(rows @ self.W_qkv, self.ln_qkv_g, self.ln_qkv_b)
        q, k, v = qkv.view(B, N, H, 3 * D).transpose(1, 2).split(D, dim=-1)  # (B, H, N, D) each
        weights = torch.softmax((q * (3 * D) ** -0.5) @ k.transpose(-1, -2), dim=-1)
        attended = (weights @ v).transpose(1, 2).reshape(B, N, M)
        rows = self._norm(rows + attended, self.ln_att_g, self.ln_att_b)
        mlp = torch.relu(rows @ self.W_mlp1 + self.b_mlp1) @ self.W_mlp2 + self.b_mlp2
        return self._norm(rows + mlp, self.ln_mlp_g, self.ln_mlp_b)

    def step_embedded(self, inputs: torch.Tensor, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Read input embeddings (B, E) (a token's row, or a soft mix of rows); return the
        next-token logits (B, V) and the new memory (B, slots, M)."""
        projected = torch.addmm(self.b_in, inputs, self.W_in)  # (B, M)
        attended = self._attend(torch.cat([memory, projected.unsqueeze(1)], dim=1))[:, :-1]
        gates = (torch.tanh(memory) @ self.W_gate_mem + (projected @ self.W_gate_in).unsqueeze(1))
        input_gate, forget_gate = gates.chunk(2, dim=-1)
        memory = (torch.sigmoid(input_gate + _INPUT_BIAS) * torch.tanh(attended)
                  + torch.sigmoid(forget_gate + _FORGET_BIAS) * memory)
        logits = torch.addmm(self.b_out, memory.flatten(1), self.W_out)
        return logits, memory

    def _start(self, n: int) -> torch.Tensor:
        return torch.full((n,), self.start_token, dtype=torch.long, device=self.device)

    # ------------------------------------------------------------ the interface
    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits (B, T, V): step t reads the start token, then y_{t-1}."""
        tokens = tokens.to(self.device)
        previous = torch.cat([self._start(tokens.shape[0]).unsqueeze(1), tokens[:, :-1]], dim=1)
        inputs = F.embedding(previous, self.embedding)  # F.embedding: deterministic backward
        memory = self.initial_state(tokens.shape[0])
        logits = []
        for t in range(tokens.shape[1]):
            step_logits, memory = self.step_embedded(inputs[:, t], memory)
            logits.append(step_logits)
        return torch.stack(logits, dim=1)

    def token_log_probs(self, tokens: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        """log p(y_t | y_<t) under softmax(logits / temperature): (B, T). Differentiable."""
        check_temperature(temperature)
        check_tokens(tokens, self.vocab_size)
        logits = self(tokens)
        if temperature != 1.0:
            logits = logits / temperature
        return torch.log_softmax(logits, dim=-1).gather(2, tokens.to(self.device).unsqueeze(2)).squeeze(2)

    @torch.no_grad()
    def token_log_probs_chunked(self, tokens: torch.Tensor, chunk_rows: int = 256,
                                temperature: float = 1.0) -> torch.Tensor:
        """`token_log_probs` without gradients, ``chunk_rows`` sequences at a time, so
        scoring a test set (`seqgan_core.oracle.sequence_nll`) never holds more than
        chunk_rows x T x V logits."""
        return torch.cat([self.token_log_probs(tokens[i : i + chunk_rows], temperature)
                          for i in range(0, len(tokens), chunk_rows)])

    @torch.no_grad()
    def sample(self, n: int, *, rng: torch.Generator | None = None, temperature: float = 1.0,
               prefix: torch.Tensor | None = None) -> torch.Tensor:
        """``n`` sequences (n, T) drawn from softmax(logits / temperature), on ``self.device``.

        ``prefix`` (P,) or (n, P) fixes the first P tokens. One uniform per sampled token,
        all drawn from ``rng`` at once in step order (as `LSTMLanguageModel.sample`)."""
        check_temperature(temperature)
        check_finite_weights(self)
        out = torch.empty(n, self.seq_len, dtype=torch.long, device=self.device)
        fixed = place_prefix(out, prefix, self.vocab_size)
        uniforms = randomness.uniform((self.seq_len - fixed, n, 1), rng, device=self.device, dtype=self.embedding.dtype)
        memory, previous = self.initial_state(n), self._start(n)
        for t in range(self.seq_len):
            logits, memory = self.step_embedded(F.embedding(previous, self.embedding), memory)
            if t >= fixed:
                out[:, t] = sample_categorical(logits, temperature=temperature, inplace=True,
                                               uniforms=uniforms[t - fixed]).squeeze(1)
            previous = out[:, t]
        return out
