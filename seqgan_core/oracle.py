"""The synthetic "oracle": a fixed random LSTM that defines the true data distribution.

SeqGAN's synthetic experiment samples its training set from this oracle and scores a
generator by NLL-oracle: how unlikely the oracle finds the generator's samples.
"""
from __future__ import annotations

from os import PathLike

import numpy as np
import torch

from .lstm import LSTMLanguageModel

# Names of the arrays in the paper's oracle file (shared/oracle/README.md), grouped by
# where they go in LSTMLanguageModel. Gate order i, f, o, c matches the model's blocks.
_GATES = ("i", "f", "o", "c")


class Oracle:
    """A frozen LSTM language model with N(0, 1) parameters.

    Build it from the paper's weights (`Oracle.from_npz`) to compare with published
    figures, or synthesise one from a seed (`Oracle(seed=...)`) of any size; the same seed
    always gives the same oracle, so every run trains on the same problem.
    """

    def __init__(
        self,
        seed: int = 0,
        vocab_size: int = 5000,
        emb_dim: int = 32,
        hidden_dim: int = 32,
        seq_len: int = 20,
        start_token: int = 0,
        device: str | torch.device = "cpu",
    ) -> None:
        # Drawn on the CPU from a generator of its own: the same oracle on every device,
        # and building one leaves torch's global random state alone.
        self.model = LSTMLanguageModel(vocab_size, emb_dim, hidden_dim, seq_len, start_token, init_std=1.0,
                                       rng=torch.Generator().manual_seed(seed))
        self.model.requires_grad_(False).eval().to(device)

    @classmethod
    def from_npz(cls, path: str | PathLike, seq_len: int = 20, start_token: int = 0,
                 device: str | torch.device = "cpu") -> "Oracle":
        """Load weights in the format of shared/oracle/seqgan_target_lstm.npz."""
        with np.load(path) as npz:
            arrays = {name: npz[name] for name in npz.files}
        _check_oracle_arrays(path, arrays)
        vocab_size, emb_dim = arrays["embedding"].shape
        hidden_dim = arrays["U_i"].shape[0]
        oracle = cls(0, vocab_size, emb_dim, hidden_dim, seq_len, start_token)
        model = oracle.model
        with torch.no_grad():
            model.embedding.copy_(torch.from_numpy(arrays["embedding"]))
            model.W.copy_(torch.from_numpy(np.concatenate([arrays[f"W_{g}"] for g in _GATES], axis=1)))
            model.U.copy_(torch.from_numpy(np.concatenate([arrays[f"U_{g}"] for g in _GATES], axis=1)))
            model.b.copy_(torch.from_numpy(np.concatenate([arrays[f"b_{g}"] for g in _GATES])))
            model.W_out.copy_(torch.from_numpy(arrays["W_out"]))
            model.b_out.copy_(torch.from_numpy(arrays["b_out"]))
        model.to(device)
        return oracle

    @property
    def vocab_size(self) -> int:
        return self.model.vocab_size

    @property
    def seq_len(self) -> int:
        return self.model.seq_len

    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        """``n`` oracle sequences, a LongTensor (n, T), reproducible from ``seed``."""
        rng = torch.Generator(device=self.model.device).manual_seed(seed)
        return self.model.sample(n, rng=rng)

    @torch.no_grad()
    def nll(self, tokens: torch.Tensor, batch_size: int = 2048) -> float:
        """Per-token negative log-likelihood of ``tokens`` (n, T) under the oracle, in nats."""
        return sequence_nll(self.model, tokens, batch_size)


def _check_oracle_arrays(path: str | PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Raise ValueError naming the first missing or mis-shaped array of an oracle file."""
    missing = [name for name in ("embedding", *(f"{m}_{g}" for m in "WUb" for g in _GATES), "W_out", "b_out")
               if name not in arrays]
    if missing:
        raise ValueError(f"{path} is not an oracle weights file: arrays {missing} are missing "
                         f"(expected embedding, W_/U_/b_ for gates {_GATES}, W_out, b_out)")
    if arrays["embedding"].ndim != 2 or arrays["U_i"].ndim != 2:
        raise ValueError(f"{path}: embedding and U_i must be matrices, got shapes "
                         f"{arrays['embedding'].shape} and {arrays['U_i'].shape}")
    (vocab, emb), hidden = arrays["embedding"].shape, arrays["U_i"].shape[0]
    expected = {"W_out": (hidden, vocab), "b_out": (vocab,)}
    for g in _GATES:
        expected |= {f"W_{g}": (emb, hidden), f"U_{g}": (hidden, hidden), f"b_{g}": (hidden,)}
    for name, shape in expected.items():
        if arrays[name].shape != shape:
            raise ValueError(
                f"{path}: array {name} has shape {arrays[name].shape}, expected {shape} for an oracle with "
                f"vocabulary {vocab}, embedding {emb} and hidden size {hidden} (read from embedding and U_i)"
            )


@torch.no_grad()
def sequence_nll(model: LSTMLanguageModel, tokens: torch.Tensor, batch_size: int = 2048) -> float:
    """Mean over all positions of -log p(y_t | y_<t) under ``model``: NLL-oracle when the
    model is the oracle and the tokens are generated; NLL-test when the model is the
    generator and the tokens are held-out data."""
    if tokens.numel() == 0:
        raise ValueError("cannot score an empty set of sequences")
    was_training = model.training
    model.eval()
    total = 0.0
    for start in range(0, tokens.shape[0], batch_size):
        batch = tokens[start : start + batch_size].to(model.device)
        total -= model.token_log_probs_chunked(batch).double().sum().item()
    model.train(was_training)
    return total / tokens.numel()
