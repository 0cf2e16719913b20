"""The synthetic oracle: the paper's weights reproduce the published reference NLLs,
seeded oracles are reproducible N(0, 1) LSTMs, loading validates its input, and the
NLL is the plain per-token average of -log p under the README's LSTM semantics."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from seqgan_core import Oracle, sequence_nll
from seqgan_core.lstm import LSTMLanguageModel


pytestmark = pytest.mark.usefixtures("single_thread")


PAPER_ORACLE = Path(__file__).resolve().parents[2] / "shared/oracle/seqgan_target_lstm.npz"
GATES = ("i", "f", "o", "c")
ARRAY_NAMES = (
    "embedding",
    *(f"{m}_{g}" for g in GATES for m in ("W", "U", "b")),
    "W_out",
    "b_out",
)


# ----------------------------------------------------------------------- helpers


def oracle_arrays(model: LSTMLanguageModel) -> dict[str, np.ndarray]:
    """The model's parameters under the names of the paper's oracle file (per-gate arrays)."""
    H = model.hidden_dim
    arrays = {"embedding": model.embedding.detach().numpy().copy()}
    for k, g in enumerate(GATES):
        block = slice(k * H, (k + 1) * H)
        arrays[f"W_{g}"] = model.W.detach()[:, block].numpy().copy()
        arrays[f"U_{g}"] = model.U.detach()[:, block].numpy().copy()
        arrays[f"b_{g}"] = model.b.detach()[block].numpy().copy()
    arrays["W_out"] = model.W_out.detach().numpy().copy()
    arrays["b_out"] = model.b_out.detach().numpy().copy()
    return arrays


def brute_force_token_log_probs(
    arrays: dict[str, np.ndarray], tokens: torch.Tensor, start_token: int = 0
) -> torch.Tensor:
    """log p(y_t | y_<t) (B, T) in float64, one explicit step at a time, written straight
    from shared/oracle/README.md (row vectors, separate per-gate arrays)."""
    a = {k: torch.from_numpy(np.asarray(v)).double() for k, v in arrays.items()}
    B, T = tokens.shape
    H = a["U_i"].shape[0]
    h = torch.zeros(B, H, dtype=torch.float64)
    c = torch.zeros(B, H, dtype=torch.float64)
    prev = torch.full((B,), start_token, dtype=torch.long)
    out = torch.empty(B, T, dtype=torch.float64)
    for t in range(T):
        x = a["embedding"][prev]
        i = torch.sigmoid(x @ a["W_i"] + h @ a["U_i"] + a["b_i"])
        f = torch.sigmoid(x @ a["W_f"] + h @ a["U_f"] + a["b_f"])
        o = torch.sigmoid(x @ a["W_o"] + h @ a["U_o"] + a["b_o"])
        c_tilde = torch.tanh(x @ a["W_c"] + h @ a["U_c"] + a["b_c"])
        c = f * c + i * c_tilde
        h = o * torch.tanh(c)
        log_p = torch.log_softmax(h @ a["W_out"] + a["b_out"], dim=-1)
        out[:, t] = log_p[torch.arange(B), tokens[:, t]]
        prev = tokens[:, t]
    return out


def params_of(oracle: Oracle) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in oracle.model.named_parameters()}


def uniform_tokens(n: int, vocab: int, seq_len: int, seed: int) -> torch.Tensor:
    return torch.randint(0, vocab, (n, seq_len), generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def paper_oracle_path() -> Path:
    if not PAPER_ORACLE.is_file():
        pytest.skip(f"paper oracle weights not found at {PAPER_ORACLE}")
    return PAPER_ORACLE


@pytest.fixture(scope="module")
def paper_oracle(paper_oracle_path: Path) -> Oracle:
    return Oracle.from_npz(paper_oracle_path)


@pytest.fixture(scope="module")
def tiny_oracle() -> Oracle:
    return Oracle(seed=7, vocab_size=11, emb_dim=5, hidden_dim=6, seq_len=8)


# ------------------------------------------------------------------ paper's oracle


def test_paper_oracle_shape(paper_oracle: Oracle) -> None:
    assert paper_oracle.vocab_size == 5000
    assert paper_oracle.seq_len == 20
    assert paper_oracle.model.emb_dim == 32 and paper_oracle.model.hidden_dim == 32
    assert not any(p.requires_grad for p in paper_oracle.model.parameters())


def test_paper_oracle_own_samples_score_reference_nll(paper_oracle: Oracle) -> None:
    samples = paper_oracle.sample(10_000, seed=0)
    assert samples.shape == (10_000, 20)
    assert paper_oracle.nll(samples) == pytest.approx(5.75, abs=0.05)


def test_paper_oracle_uniform_tokens_score_reference_nll(paper_oracle: Oracle) -> None:
    tokens = uniform_tokens(10_000, 5000, 20, seed=0)
    assert paper_oracle.nll(tokens) == pytest.approx(11.44, abs=0.05)


def test_paper_oracle_matches_readme_semantics(paper_oracle_path: Path, paper_oracle: Oracle) -> None:
    """Gate order and layout of the loaded weights agree with the README's equations."""
    with np.load(paper_oracle_path) as npz:
        arrays = {name: npz[name] for name in ARRAY_NAMES}
    tokens = torch.cat([paper_oracle.sample(8, seed=3), uniform_tokens(8, 5000, 20, seed=3)])
    expected = brute_force_token_log_probs(arrays, tokens)
    got = paper_oracle.model.token_log_probs_chunked(tokens).double()
    torch.testing.assert_close(got, expected, rtol=0, atol=2e-3)
    assert paper_oracle.nll(tokens) == pytest.approx(-expected.mean().item(), abs=1e-4)


# ----------------------------------------------------------------- seeded oracles


def test_same_seed_same_oracle_and_samples() -> None:
    torch.manual_seed(123)  # the global RNG state must not matter
    a = Oracle(seed=5, vocab_size=40, seq_len=9)
    torch.manual_seed(999)
    torch.rand(1000)
    b = Oracle(seed=5, vocab_size=40, seq_len=9)
    pa, pb = params_of(a), params_of(b)
    assert pa.keys() == pb.keys()
    for name in pa:
        assert torch.equal(pa[name], pb[name]), name
    assert torch.equal(a.sample(200, seed=1), b.sample(200, seed=1))
    assert torch.equal(a.sample(200, seed=1), a.sample(200, seed=1))


def test_building_an_oracle_leaves_the_global_rng_alone() -> None:
    state = torch.get_rng_state()
    Oracle(seed=5, vocab_size=40, seq_len=9)
    assert torch.equal(torch.get_rng_state(), state)


def test_different_seeds_differ() -> None:
    a = Oracle(seed=5, vocab_size=40, seq_len=9)
    b = Oracle(seed=6, vocab_size=40, seq_len=9)
    pa, pb = params_of(a), params_of(b)
    for name in pa:
        assert not torch.equal(pa[name], pb[name]), name
    assert not torch.equal(a.sample(200, seed=1), b.sample(200, seed=1))
    assert not torch.equal(a.sample(200, seed=1), a.sample(200, seed=2))


def test_seeded_oracle_parameters_are_standard_normal() -> None:
    """Every entry ~ N(0, 1): mean and std of each array within 5 standard errors."""
    oracle = Oracle(seed=11)  # paper size: 5000 x 32, so every array has >= 128 entries
    for name, p in oracle.model.named_parameters():
        x = p.detach().double().flatten()
        n = x.numel()
        assert abs(x.mean().item()) < 5.0 / n**0.5, name
        assert abs(x.std().item() - 1.0) < 5.0 / (2 * n) ** 0.5, name


def test_seeded_oracle_is_frozen(tiny_oracle: Oracle) -> None:
    assert not any(p.requires_grad for p in tiny_oracle.model.parameters())
    assert not tiny_oracle.model.training


def test_seeded_oracle_dimensions(tiny_oracle: Oracle) -> None:
    assert tiny_oracle.vocab_size == 11 and tiny_oracle.seq_len == 8
    samples = tiny_oracle.sample(30, seed=0)
    assert samples.shape == (30, 8)
    assert int(samples.min()) >= 0 and int(samples.max()) < 11


# ------------------------------------------------------------------------ from_npz


def test_from_npz_round_trip(tmp_path: Path, tiny_oracle: Oracle) -> None:
    path = tmp_path / "tiny.npz"
    np.savez(path, **oracle_arrays(tiny_oracle.model))
    loaded = Oracle.from_npz(path, seq_len=8)
    assert loaded.vocab_size == 11 and loaded.seq_len == 8
    expected, got = params_of(tiny_oracle), params_of(loaded)
    for name in expected:
        assert torch.equal(got[name], expected[name]), name
    assert torch.equal(loaded.sample(50, seed=4), tiny_oracle.sample(50, seed=4))


@pytest.mark.parametrize("missing", ["embedding", "U_i", "W_f", "b_o", "W_c", "W_out", "b_out"])
def test_from_npz_missing_array_raises_value_error(tmp_path: Path, tiny_oracle: Oracle, missing: str) -> None:
    arrays = oracle_arrays(tiny_oracle.model)
    del arrays[missing]
    path = tmp_path / "broken.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=missing) as info:
        Oracle.from_npz(path)
    assert not isinstance(info.value, KeyError)


@pytest.mark.parametrize("name", ["W_i", "U_f", "b_c", "W_out", "b_out", "embedding"])
def test_from_npz_mis_shaped_array_raises_value_error(tmp_path: Path, tiny_oracle: Oracle, name: str) -> None:
    arrays = oracle_arrays(tiny_oracle.model)
    arrays[name] = arrays[name][..., :-1]  # one column (or entry) short
    path = tmp_path / "broken.npz"
    np.savez(path, **arrays)
    # Sizes are read from embedding and U_i, so a short embedding shows up as W_i's mismatch.
    culprit = "W_i" if name == "embedding" else name
    with pytest.raises(ValueError, match=f"array {culprit} has shape"):
        Oracle.from_npz(path)


def assert_names_file_and_fix(message: str, path: Path, problem: str) -> None:
    assert str(path) in message and problem in message
    assert "copy it again" in message and "../shared/oracle/seqgan_target_lstm.npz" in message
    assert "data/oracle/README.md" in message


@pytest.mark.parametrize("kept", [0.3, 0.95])
def test_from_npz_truncated_file_names_the_file(tmp_path: Path, tiny_oracle: Oracle, kept: float) -> None:
    whole = tmp_path / "whole.npz"
    np.savez(whole, **oracle_arrays(tiny_oracle.model))
    data = whole.read_bytes()
    path = tmp_path / "truncated.npz"
    path.write_bytes(data[: int(kept * len(data))])  # an interrupted copy
    with pytest.raises(ValueError) as info:  # before: zipfile.BadZipFile
        Oracle.from_npz(path)
    assert_names_file_and_fix(str(info.value), path, "not an npz archive (truncated")


def test_from_npz_changed_bytes_name_the_file(tmp_path: Path, tiny_oracle: Oracle) -> None:
    path = tmp_path / "damaged.npz"
    np.savez(path, **oracle_arrays(tiny_oracle.model))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError) as info:  # before: zipfile.BadZipFile (bad CRC)
        Oracle.from_npz(path)
    assert_names_file_and_fix(str(info.value), path, "damaged npz archive")


def test_from_npz_text_file_names_the_file_and_never_suggests_unpickling(tmp_path: Path) -> None:
    path = tmp_path / "weights.npz"
    path.write_text("embedding: see the paper\n")
    with pytest.raises(ValueError) as info:  # before: numpy's "... using the `allow_pickle=` keyword ..."
        Oracle.from_npz(path)
    assert_names_file_and_fix(str(info.value), path, "not an npz archive")
    assert "allow_pickle" not in str(info.value)


def test_from_npz_object_array_names_file_and_array(tmp_path: Path, tiny_oracle: Oracle) -> None:
    arrays = oracle_arrays(tiny_oracle.model)
    arrays["W_out"] = np.array([{"not": "numbers"}], dtype=object)
    path = tmp_path / "pickled.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError) as info:  # before: numpy's message, naming no file
        Oracle.from_npz(path)
    assert_names_file_and_fix(str(info.value), path, "array W_out is not a plain numeric array")


@pytest.mark.parametrize("bad, problem", [(np.full(6, "x"), "holds <U1 values, not floats"),
                                          (np.full(6, np.nan, np.float32), "holds NaN or infinite values")])
def test_from_npz_non_float_values_name_the_array(tmp_path: Path, tiny_oracle: Oracle, bad: np.ndarray,
                                                  problem: str) -> None:
    arrays = oracle_arrays(tiny_oracle.model)
    arrays["b_f"] = bad
    path = tmp_path / "odd.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError) as info:  # before: a TypeError from torch, or an oracle of NaNs
        Oracle.from_npz(path, seq_len=8)
    assert_names_file_and_fix(str(info.value), path, f"array b_f {problem}")


# ----------------------------------------------------------------------------- NLL


def test_own_samples_score_lower_than_uniform_tokens() -> None:
    oracle = Oracle(seed=2, vocab_size=60, seq_len=10)
    own = oracle.nll(oracle.sample(3000, seed=0))
    uniform = oracle.nll(uniform_tokens(3000, 60, 10, seed=0))
    assert own < uniform - 0.5
    # Uniform tokens cost at least the entropy gap: with N(0,1) weights the oracle is
    # far from uniform, so both are far from log(V) in opposite directions.
    assert own < np.log(60) < uniform


def test_nll_equals_brute_force(tiny_oracle: Oracle) -> None:
    tokens = torch.cat([tiny_oracle.sample(20, seed=1), uniform_tokens(20, 11, 8, seed=1)])
    expected_per_token = brute_force_token_log_probs(oracle_arrays(tiny_oracle.model), tokens)
    torch.testing.assert_close(
        tiny_oracle.model.token_log_probs(tokens).double(), expected_per_token, rtol=0, atol=1e-5
    )
    assert tiny_oracle.nll(tokens) == pytest.approx(-expected_per_token.mean().item(), abs=1e-5)


def test_nll_does_not_depend_on_batch_size(tiny_oracle: Oracle) -> None:
    tokens = uniform_tokens(101, 11, 8, seed=2)
    whole = tiny_oracle.nll(tokens)
    assert tiny_oracle.nll(tokens, batch_size=7) == pytest.approx(whole, rel=1e-6)
    assert tiny_oracle.nll(tokens, batch_size=1) == pytest.approx(whole, rel=1e-6)


def test_sequence_nll_of_empty_set_raises(tiny_oracle: Oracle) -> None:
    with pytest.raises(ValueError):
        sequence_nll(tiny_oracle.model, torch.empty(0, 8, dtype=torch.long))


def test_sequence_nll_restores_training_mode() -> None:
    torch.manual_seed(0)
    model = LSTMLanguageModel(11, emb_dim=5, hidden_dim=6, seq_len=8)
    model.train()
    sequence_nll(model, uniform_tokens(4, 11, 8, seed=3))
    assert model.training
