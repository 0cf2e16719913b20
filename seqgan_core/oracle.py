"""The synthetic "oracle": a fixed random LSTM that defines the true data distribution.

SeqGAN's synthetic experiment samples its training set from this oracle and scores a
generator by NLL-oracle: how unlikely the oracle finds the generator's samples.
"""
from __future__ import annotations

import copy
import zipfile
import zlib
from os import PathLike

import numpy as np
import torch

from . import randomness
from .lstm import LSTMLanguageModel
from .sampling import check_temperature, check_tokens

# Names of the arrays in the paper's oracle file (shared/oracle/README.md), grouped by
# where they go in LSTMLanguageModel. Gate order i, f, o, c matches the model's blocks.
_GATES = ("i", "f", "o", "c")
_ARRAY_NAMES = ("embedding", *(f"{m}_{g}" for m in "WUb" for g in _GATES), "W_out", "b_out")


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
        """Load weights in the format of shared/oracle/seqgan_target_lstm.npz; a file that is
        not one raises ValueError naming the file, what is wrong and how to fix it."""
        arrays = _read_npz(path)
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
        """``n`` oracle sequences, a LongTensor (n, T) on the oracle's device, reproducible
        from ``seed`` and the same on every device: they are drawn from a CPU generator
        and computed by the CPU (a GPU's float rounding would move the rare draw that lies
        at a CDF boundary, and every token after it), so the data depend on the seeds only."""
        model = self.model
        if model.device.type != "cpu":
            model = copy.deepcopy(model).cpu()
        return model.sample(n, rng=randomness.generator(seed)).to(self.model.device)

    @torch.no_grad()
    def nll(self, tokens: torch.Tensor, batch_size: int = 2048) -> float:
        """Per-token negative log-likelihood of ``tokens`` (n, T) under the oracle, in nats."""
        return sequence_nll(self.model, tokens, batch_size)


# What to do about a damaged or foreign weights file, appended to every such error.
_REPLACE_FILE = ("copy it again from its source (the paper's oracle: ../shared/oracle/seqgan_target_lstm.npz; "
                 "see data/oracle/README.md) or rewrite it with np.savez of float32 arrays")


def _read_npz(path: str | PathLike) -> dict[str, np.ndarray]:
    """The arrays of an npz file, read without unpickling (a pickle in a weights file could
    run code); ValueError names the file when it is not a readable npz of plain arrays."""
    # np.load guesses the format from the first bytes and, for anything it does not
    # recognise (a text file), suggests allow_pickle; an npz is a zip archive, so ask that.
    with open(path, "rb") as file:  # a missing file stays a FileNotFoundError
        if not zipfile.is_zipfile(file):
            raise ValueError(f"{path} is not an npz archive (truncated, or another kind of file); {_REPLACE_FILE}")
    arrays = {}
    try:
        with np.load(path, allow_pickle=False) as npz:
            for name in npz.files:
                arrays[name] = _read_array(path, npz, name)
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:  # e.g. a bad CRC: bytes changed after writing
        raise ValueError(f"{path} is a damaged npz archive ({exc}); {_REPLACE_FILE}") from None
    return arrays


def _read_array(path: str | PathLike, npz: np.lib.npyio.NpzFile, name: str) -> np.ndarray:
    try:
        return npz[name]
    except ValueError as exc:  # object arrays need unpickling; a damaged header cannot be parsed
        raise ValueError(f"{path}: array {name} is not a plain numeric array ({exc}); {_REPLACE_FILE}") from None


def _check_oracle_arrays(path: str | PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Raise ValueError naming the first missing, non-float, non-finite or mis-shaped array
    of an oracle file."""
    missing = [name for name in _ARRAY_NAMES if name not in arrays]
    if missing:
        raise ValueError(f"{path} is not an oracle weights file: arrays {missing} are missing "
                         f"(expected embedding, W_/U_/b_ for gates {_GATES}, W_out, b_out)")
    for name in _ARRAY_NAMES:
        if not np.issubdtype(arrays[name].dtype, np.floating):
            raise ValueError(f"{path}: array {name} holds {arrays[name].dtype} values, not floats; {_REPLACE_FILE}")
        if not np.isfinite(arrays[name]).all():
            raise ValueError(f"{path}: array {name} holds NaN or infinite values; {_REPLACE_FILE}")
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
def sequence_nll(model: torch.nn.Module, tokens: torch.Tensor, batch_size: int = 2048,
                 temperature: float = 1.0) -> float:
    """Mean over all positions of -log p(y_t | y_<t) under ``model`` at ``temperature``
    (softmax(logits / temperature)): NLL-oracle when the model is the oracle and the tokens
    are generated; NLL-test when the model is the generator and the tokens are held-out
    data (at t != 1, the NLL-test of the tempered generator, the diversity side of a
    temperature sweep's quality-diversity frontier).

    ``model`` is any generator of the common interface (``token_log_probs(tokens,
    temperature)``); one that offers `LSTMLanguageModel.token_log_probs_chunked` is
    scored with it, which never holds a whole batch's (positions x vocab) softmax.
    """
    check_temperature(temperature)
    check_tokens(tokens, model.vocab_size)
    if tokens.numel() == 0:
        raise ValueError("cannot score an empty set of sequences")
    score = getattr(model, "token_log_probs_chunked", model.token_log_probs)
    was_training = model.training
    model.eval()
    total = 0.0
    try:
        for start in range(0, tokens.shape[0], batch_size):
            batch = tokens[start : start + batch_size].to(model.device)
            total -= score(batch, temperature=temperature).double().sum().item()
    finally:
        model.train(was_training)
    return total / tokens.numel()
