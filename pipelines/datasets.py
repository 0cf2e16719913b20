"""An experiment's token data: what `oracle` or `preprocess` writes and every later stage reads."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqgan_core import Oracle
from seqgan_core.corpus import Vocabulary

from .contract import Artifacts, ExperimentKind, kind_of
from .files import read_json, read_tokens, read_torch, reading, save_tokens, write_json


@dataclass(frozen=True)
class Dataset:
    kind: ExperimentKind
    train: torch.Tensor
    test: torch.Tensor
    vocab_size: int
    seq_len: int
    start_token: int
    oracle: Oracle | None = None  # synthetic data: the model that made them
    vocab: Vocabulary | None = None  # a corpus: its vocabulary
    tokenizer: str = "char"
    reference_nll: dict[str, float] = field(default_factory=dict)  # oracle data / uniform NLL lines
    fingerprint: str = ""  # content hash of the data files: the "data version" models are compared on

    @property
    def experiment(self) -> str:
        return self.kind.name

    def decode(self, tokens: torch.Tensor) -> list[str]:
        """Readable text of token rows: characters/words for a corpus, ids for the oracle."""
        decode = self.kind.decoder(self.vocab, self.tokenizer)
        return [decode(row) for row in tokens.tolist()]


def save_dataset(artifacts: Artifacts, train: np.ndarray, test: np.ndarray, spec: dict[str, Any]) -> None:
    save_tokens(artifacts.train_tokens, train.astype(np.int64))
    save_tokens(artifacts.test_tokens, test.astype(np.int64))
    write_json(artifacts.dataset_spec, {**spec, "kind": artifacts.experiment,
                                        "num_train": len(train), "num_test": len(test)})


def load_dataset(artifacts: Artifacts, device: torch.device) -> Dataset:
    kind = kind_of(artifacts.experiment)
    spec = read_json(artifacts.dataset_spec)
    with reading(artifacts.dataset_spec):  # JSON, but not a spec
        sizes = spec["vocab_size"], spec["seq_len"], spec["start_token"]
    train = torch.from_numpy(read_tokens(artifacts.train_tokens))
    test = torch.from_numpy(read_tokens(artifacts.test_tokens))
    oracle = load_oracle(artifacts.oracle_model, device) if kind.has_oracle else None
    vocab = None if kind.has_oracle else load_vocab(artifacts.vocab)
    return Dataset(
        kind, train, test, *sizes, oracle, vocab, spec.get("tokenizer", "char"), spec.get("reference_nll", {}),
        files_fingerprint(sorted(artifacts.data.iterdir())),
    )


def load_vocab(path: Path) -> Vocabulary:
    with reading(path):
        return Vocabulary.load(path)


def files_fingerprint(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def load_oracle(path: Path, device: torch.device) -> Oracle:
    state = read_torch(path)
    with reading(path):  # a config and weights that do not fit together
        cfg = state["config"]
        oracle = Oracle(0, cfg["vocab_size"], cfg["emb_dim"], cfg["hidden_dim"], cfg["seq_len"], cfg["start_token"])
        oracle.model.load_state_dict(state["state_dict"])
    oracle.model.to(device)
    return oracle
