"""Stage `oracle`: the synthetic experiment's data.

Synthesise the oracle LSTM from a seed (or load the paper's weights), sample the
training and test sets, and record the two reference lines of every NLL-oracle plot:
the oracle's own samples (the floor) and uniformly random tokens (the ceiling).
"""
from __future__ import annotations

from pathlib import Path

import torch

from seqgan_core import Oracle, randomness

from ..datasets import save_dataset
from ..files import StageError, write_json
from ..models import save_model
from ..runtime import run_main, stage
from ..validation import validate_token_sequences


def build_oracle(params, device: torch.device) -> Oracle:
    p = params.oracle
    if p.weights_file is None:
        return Oracle(p.seed, p.vocab_size, p.emb_dim, p.hidden_dim, p.seq_len, device=device)
    path = Path(p.weights_file)
    if path.is_dir():
        raise StageError(f"oracle.weights_file = {p.weights_file!r} is a folder; name the npz file inside it")
    if not path.exists():
        raise StageError(f"oracle.weights_file = {p.weights_file!r} does not exist; put an npz in the paper's "
                         "format there (see data/oracle/README.md) or set it to null to synthesise the oracle "
                         "from oracle.seed")
    try:
        oracle = Oracle.from_npz(path, seq_len=p.seq_len, device=device)
    except ValueError as exc:
        raise StageError(str(exc)) from None
    if (oracle.vocab_size, oracle.model.emb_dim, oracle.model.hidden_dim) != (p.vocab_size, p.emb_dim, p.hidden_dim):
        raise StageError(
            f"{path} holds an oracle of vocab {oracle.vocab_size}, emb {oracle.model.emb_dim}, hidden "
            f"{oracle.model.hidden_dim}; set oracle.vocab_size/emb_dim/hidden_dim to match"
        )
    return oracle


def main() -> None:
    with stage("oracle", "synthetic") as ctx:
        p = ctx.params.oracle
        # On the CPU whatever `device` says: every draw and every float of data/synthetic/
        # (samples, reference NLLs) then has the same bytes on every node, so the data
        # version depends on oracle.seed alone. It is a few seconds at the paper's size.
        oracle = build_oracle(ctx.params, torch.device("cpu"))
        train = oracle.sample(p.num_train, seed=p.seed + 1)
        test = oracle.sample(p.num_test, seed=p.seed + 2)
        for name, tokens, rows in (("oracle_train", train, p.num_train), ("oracle_test", test, p.num_test)):
            validate_token_sequences(tokens.cpu().numpy(), suite=name, vocab_size=p.vocab_size,
                                     seq_len=p.seq_len, expected_rows=rows)
        # Every draw here comes from oracle.seed, not the training seed: the data (and so its
        # data version, on which the promotion gate compares models) is the same for every
        # training seed.
        uniform = randomness.randint(p.vocab_size, (p.num_test, p.seq_len), randomness.generator(p.seed + 3))
        metrics = {"nll_oracle_data": oracle.nll(test), "nll_oracle_uniform": oracle.nll(uniform)}

        save_model(ctx.artifacts.oracle_model, oracle.model, {
            "vocab_size": p.vocab_size, "emb_dim": oracle.model.emb_dim, "hidden_dim": oracle.model.hidden_dim,
            "seq_len": p.seq_len, "start_token": oracle.model.start_token,
        })
        save_dataset(ctx.artifacts, train.cpu().numpy(), test.cpu().numpy(), {
            "vocab_size": p.vocab_size, "seq_len": p.seq_len,
            "start_token": oracle.model.start_token, "source": p.weights_file or f"seeded oracle (seed {p.seed})",
            "reference_nll": metrics,
        })
        write_json(ctx.artifacts.metrics("oracle"), metrics)
        ctx.tracker.log_metrics(metrics, parent=True)


if __name__ == "__main__":
    run_main(main)
