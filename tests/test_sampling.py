"""Categorical sampling (inverse CDF) and the LSTM language model's sampling paths:
frequencies match the softmax, zero-probability ids never appear, temperature, seeding,
prefixes, and chunked scoring."""
from __future__ import annotations

import itertools

import pytest
import torch

from seqgan_core import LSTMLanguageModel
from seqgan_core.sampling import sample_categorical


pytestmark = pytest.mark.usefixtures("single_thread")


SIGMAS = 5.0

LOGITS_6 = torch.tensor([[1.5, -0.3, 0.0, 2.2, -1.7, 0.8]])


def counts_per_id(ids: torch.Tensor, vocab: int) -> torch.Tensor:
    """Histogram of the drawn ids of one row: (vocab,) float64 counts."""
    return torch.bincount(ids.flatten(), minlength=vocab).double()


def assert_frequencies_match(ids: torch.Tensor, probs: torch.Tensor, sigmas: float = SIGMAS) -> None:
    """Empirical frequencies of ``ids`` (all from one distribution) match ``probs`` within
    ``sigmas`` binomial standard deviations per entry (plus a hair for float rounding)."""
    n = ids.numel()
    probs = probs.double().flatten()
    freq = counts_per_id(ids, probs.numel()) / n
    std = torch.sqrt(probs * (1 - probs) / n)
    bad = (freq - probs).abs() > sigmas * std + 1e-9
    assert not bad.any(), f"frequencies {freq.tolist()} vs probabilities {probs.tolist()}"


def assert_group_frequencies_match(
    ids: torch.Tensor, probs: torch.Tensor, groups: torch.Tensor, sigmas: float = SIGMAS
) -> None:
    """Like `assert_frequencies_match` for the total frequency of each group of ids
    (``groups[i]`` is the group of id i): usable when the vocabulary is large."""
    n = ids.numel()
    n_groups = int(groups.max()) + 1
    group_probs = torch.zeros(n_groups, dtype=torch.float64).index_add_(0, groups, probs.double().flatten())
    freq = torch.bincount(groups[ids.flatten()], minlength=n_groups).double() / n
    std = torch.sqrt(group_probs * (1 - group_probs) / n)
    bad = (freq - group_probs).abs() > sigmas * std + 1e-9
    assert not bad.any(), (
        f"groups {bad.nonzero().flatten().tolist()}: {freq[bad].tolist()} vs {group_probs[bad].tolist()}"
    )


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------ sample_categorical


def test_frequencies_match_softmax() -> None:
    ids = sample_categorical(LOGITS_6, 200_000, rng=seeded(0))
    assert ids.shape == (1, 200_000)
    assert ids.dtype == torch.long
    assert_frequencies_match(ids, torch.softmax(LOGITS_6, dim=-1))


def test_frequencies_match_softmax_many_rows_one_draw_each() -> None:
    """The hot path: one draw per row over many identical rows."""
    logits = LOGITS_6.expand(100_000, -1).contiguous()
    ids = sample_categorical(logits, rng=seeded(1))
    assert ids.shape == (100_000, 1)
    assert_frequencies_match(ids, torch.softmax(LOGITS_6, dim=-1))


@pytest.mark.parametrize("position", ["first", "middle", "last", "several"])
def test_zero_probability_ids_never_drawn(position: str) -> None:
    logits = torch.tensor([[0.3, -1.0, 2.0, 0.5, -0.2, 1.0]])
    masked = {"first": [0], "middle": [2], "last": [5], "several": [0, 2, 3, 5]}[position]
    logits[:, masked] = float("-inf")
    ids = sample_categorical(logits, 100_000, rng=seeded(2))
    drawn = set(ids.unique().tolist())
    assert drawn.isdisjoint(masked)
    assert drawn == set(range(6)) - set(masked)  # every allowed id does appear
    assert_frequencies_match(ids, torch.softmax(logits, dim=-1))


def test_single_allowed_id_always_drawn() -> None:
    logits = torch.full((4, 7), float("-inf"))
    logits[torch.arange(4), torch.tensor([0, 3, 6, 2])] = torch.tensor([5.0, -100.0, 0.0, 1e4])
    ids = sample_categorical(logits, 1000, rng=seeded(3))
    assert torch.equal(ids, torch.tensor([0, 3, 6, 2]).unsqueeze(1).expand(4, 1000))


def test_extreme_logits_stay_finite() -> None:
    """Logits far from zero (exp would overflow without the max shift)."""
    logits = torch.tensor([[1000.0, 999.0, -1000.0]])
    ids = sample_categorical(logits, 50_000, rng=seeded(4))
    assert_frequencies_match(ids, torch.softmax(logits, dim=-1))


@pytest.mark.parametrize("temperature", [0.5, 2.0, 3.7])
def test_temperature_matches_softmax_of_scaled_logits(temperature: float) -> None:
    ids = sample_categorical(LOGITS_6, 200_000, temperature=temperature, rng=seeded(5))
    expected = torch.softmax(LOGITS_6 / temperature, dim=-1)
    assert_frequencies_match(ids, expected)
    # The draw is clearly distinguishable from the untempered softmax.
    freq = counts_per_id(ids, 6) / ids.numel()
    plain = torch.softmax(LOGITS_6, dim=-1).double().flatten()
    assert (freq - plain).abs().max() > 0.05


def test_temperature_sharpens_and_flattens() -> None:
    n = 100_000
    top = int(LOGITS_6.argmax())
    share = {
        t: (sample_categorical(LOGITS_6, n, temperature=t, rng=seeded(6)) == top).double().mean().item()
        for t in (0.25, 1.0, 4.0)
    }
    assert share[0.25] > share[1.0] + 0.1
    assert share[1.0] > share[4.0] + 0.1
    assert share[4.0] < 0.35  # close to uniform (1/6 ~ 0.17) at high temperature


def test_num_samples_per_row_follow_their_own_row() -> None:
    logits = torch.tensor([[2.0, 0.0, -2.0, 0.0], [-1.0, -1.0, 3.0, 0.5], [0.0, 0.0, 0.0, 0.0]])
    ids = sample_categorical(logits, 60_000, rng=seeded(7))
    assert ids.shape == (3, 60_000)
    for row in range(3):
        assert_frequencies_match(ids[row], torch.softmax(logits[row], dim=-1))


def test_num_samples_are_independent_draws() -> None:
    """Consecutive draws of one row are not correlated (pairs follow the product law)."""
    logits = torch.tensor([[0.0, 0.7, -0.4]])
    ids = sample_categorical(logits, 90_001, rng=seeded(8)).flatten()
    pairs = ids[:-1] * 3 + ids[1:]
    p = torch.softmax(logits, dim=-1).flatten()
    assert_frequencies_match(pairs, torch.outer(p, p).flatten())


def test_seeded_generator_is_deterministic() -> None:
    logits = torch.randn(16, 50, generator=seeded(9))
    a = sample_categorical(logits, 8, rng=seeded(10))
    b = sample_categorical(logits, 8, rng=seeded(10))
    c = sample_categorical(logits, 8, rng=seeded(11))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_not_inplace_leaves_logits_untouched(temperature: float) -> None:
    logits = torch.randn(5, 20, generator=seeded(12))
    logits[0, 3] = float("-inf")
    before = logits.clone()
    sample_categorical(logits, 3, temperature=temperature, rng=seeded(13))
    assert torch.equal(logits, before)
    # Default is not in place either.
    sample_categorical(logits)
    assert torch.equal(logits, before)


def test_inplace_draws_the_same_ids() -> None:
    logits = torch.randn(5, 20, generator=seeded(14))
    expected = sample_categorical(logits, 4, temperature=0.8, rng=seeded(15))
    scratch = logits.clone()
    got = sample_categorical(scratch, 4, temperature=0.8, rng=seeded(15), inplace=True)
    assert torch.equal(got, expected)


@pytest.mark.parametrize("vocab", [50, 3000])  # the one-level and the blocked search
def test_given_uniforms_draw_what_the_generator_would(vocab: int) -> None:
    """Callers that draw many steps' uniforms at once (one host-to-device copy) pass them
    in: the same ids as drawing them from the generator inside."""
    logits = torch.randn(6, vocab, generator=seeded(16))
    uniforms = torch.rand(6, 2, generator=seeded(17))
    got = sample_categorical(logits, 2, uniforms=uniforms.clone())
    assert torch.equal(got, sample_categorical(logits, 2, rng=seeded(17)))


def test_given_uniforms_of_the_wrong_shape_raise() -> None:
    with pytest.raises(ValueError, match="uniforms"):
        sample_categorical(torch.randn(6, 50, generator=seeded(18)), 2, uniforms=torch.rand(6, 1))


def test_sample_next_draws_all_chunks_uniforms_at_once(tiny_model: LSTMLanguageModel) -> None:
    """One draw of R x num_samples for all row chunks: the numbers chunk-by-chunk draws take."""
    h = torch.randn(70, tiny_model.hidden_dim, generator=seeded(19))
    chunked = tiny_model.sample_next(h, num_samples=3, rng=seeded(20), chunk_rows=16)
    assert torch.equal(chunked, tiny_model.sample_next(h, num_samples=3, rng=seeded(20), chunk_rows=256))
    given = tiny_model.sample_next(h, num_samples=3, uniforms=torch.rand(70, 3, generator=seeded(20)), chunk_rows=16)
    assert torch.equal(chunked, given)


@pytest.mark.parametrize("temperature", [0.0, -1.0, -1e-9])
def test_non_positive_temperature_raises(temperature: float) -> None:
    with pytest.raises(ValueError, match="temperature"):
        sample_categorical(LOGITS_6, temperature=temperature)


# ------------------------------------------------------------------ large vocabularies
# The sampler may pick a different search (e.g. a blocked two-level inverse CDF) by
# vocabulary size, memory layout and samples per row; these tests draw the same totals
# through several shapes so that every such path is covered whichever one is chosen.

LARGE_VOCAB = 5034  # paper-sized, and not a multiple of any block size: a short last block
BOOSTED = torch.tensor([0, 99, 100, 101, 555, 1023, 1024, 2047, 4999, 5000, 5033])
MASKED = torch.cat([torch.arange(300, 400), torch.tensor([1, 98, 5001, 5032])])
SAMPLES_PER_ROW = [1, 4, 20_000]


def large_logits(seed: int, scale: float = 1.0, shift: float = 0.0) -> torch.Tensor:
    """(1, LARGE_VOCAB) logits: a spread background, a few boosted ids in different blocks
    (block edges and the short last block included), and masked ids (a whole block too)."""
    logits = 0.5 * torch.randn(1, LARGE_VOCAB, generator=seeded(seed))
    logits[0, BOOSTED] += 6.0
    logits = logits * scale + shift
    logits[0, MASKED] = float("-inf")
    return logits


def large_groups(block: int = 250) -> torch.Tensor:
    """Every boosted id alone, the rest grouped by ``block`` consecutive ids."""
    groups = torch.arange(LARGE_VOCAB) // block
    groups[BOOSTED] = int(groups.max()) + 1 + torch.arange(len(BOOSTED))
    return groups


def draw_many(
    row: torch.Tensor, total: int, per_row: int, seed: int, temperature: float = 1.0, max_rows: int = 1024
) -> torch.Tensor:
    """``total`` draws from one row of logits, made ``per_row`` at a time from copies of
    the row (at most ``max_rows`` rows per call)."""
    rng = seeded(seed)
    rows = max(1, min(max_rows, total // per_row))
    logits = row.reshape(1, -1).expand(rows, -1).contiguous()
    out: list[torch.Tensor] = []
    drawn = 0
    while drawn < total:
        ids = sample_categorical(logits, per_row, temperature=temperature, rng=rng)
        assert ids.shape == (rows, per_row)
        out.append(ids.flatten())
        drawn += ids.numel()
    return torch.cat(out)[:total]


@pytest.mark.parametrize("per_row", SAMPLES_PER_ROW)
@pytest.mark.parametrize(
    ("scale", "shift"),
    [(1.0, 0.0), (1.0, 55.0), (1.0, -58.0), (8.0, 0.0), (1.0, 500.0), (1.0, -500.0)],
    ids=["plain", "high", "low", "spread", "far-above-range", "far-below-range"],
)
def test_large_vocabulary_frequencies_match_softmax(scale: float, shift: float, per_row: int) -> None:
    logits = large_logits(20, scale, shift)
    probs = torch.softmax(logits.double(), dim=-1)
    ids = draw_many(logits, 30_000, per_row, seed=21)
    assert not torch.isin(ids, MASKED).any()
    assert_group_frequencies_match(ids, probs, large_groups())


@pytest.mark.parametrize("per_row", [1, 3, 5000])
def test_large_vocabulary_rows_follow_their_own_row(per_row: int) -> None:
    logits = torch.cat([large_logits(22), large_logits(23, scale=2.0), torch.zeros(1, LARGE_VOCAB)])
    logits[2, MASKED] = float("-inf")
    logits = logits.repeat(max(1, 5000 // per_row), 1)  # rows cycle through the three laws
    ids = sample_categorical(logits, per_row, rng=seeded(24))
    for law in range(3):
        drawn = ids[law::3].flatten()
        assert not torch.isin(drawn, MASKED).any()
        assert_group_frequencies_match(drawn, torch.softmax(logits[law].double(), dim=-1), large_groups())


@pytest.mark.parametrize("per_row", [1, 64])
def test_large_vocabulary_masked_blocks_never_drawn(per_row: int) -> None:
    logits = torch.randn(512, LARGE_VOCAB, generator=seeded(35))
    logits[:, -40:] = float("-inf")  # the whole short last block and the end of the one before
    logits[:, :100] = float("-inf")  # and the whole first block
    ids = sample_categorical(logits, per_row, rng=seeded(36))
    assert int(ids.min()) >= 100 and int(ids.max()) < LARGE_VOCAB - 40


@pytest.mark.parametrize("per_row", [1, 64])
@pytest.mark.parametrize("allowed", [0, 99, 100, 4999, 5000, LARGE_VOCAB - 1])
def test_large_vocabulary_single_allowed_id(allowed: int, per_row: int) -> None:
    logits = torch.full((3, LARGE_VOCAB), float("-inf"))
    logits[:, allowed] = torch.tensor([-30.0, 80.0, 0.0])
    ids = sample_categorical(logits, per_row, rng=seeded(27))
    assert (ids == allowed).all()


@pytest.mark.parametrize("per_row", [1, 20_000])
@pytest.mark.parametrize("temperature", [0.5, 2.5])
def test_large_vocabulary_temperature(temperature: float, per_row: int) -> None:
    logits = large_logits(28)
    ids = draw_many(logits, 30_000, per_row, seed=29, temperature=temperature)
    expected = torch.softmax(logits.double() / temperature, dim=-1)
    assert_group_frequencies_match(ids, expected, large_groups())


@pytest.mark.parametrize("per_row", [1, 4, 64])
def test_large_vocabulary_not_inplace_and_deterministic(per_row: int) -> None:
    logits = torch.randn(6, LARGE_VOCAB, generator=seeded(30))
    before = logits.clone()
    a = sample_categorical(logits, per_row, temperature=0.9, rng=seeded(31))
    assert torch.equal(logits, before)
    b = sample_categorical(logits.clone(), per_row, temperature=0.9, rng=seeded(31), inplace=True)
    c = sample_categorical(logits, per_row, temperature=0.9, rng=seeded(32))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.filterwarnings("ignore:torch.searchsorted")  # the strided input's cdf is strided too
@pytest.mark.parametrize("per_row", [1, 4, 64])
def test_contiguous_and_strided_logits_draw_the_same_ids(per_row: int) -> None:
    """A strided (non-contiguous) input may take a different search than a contiguous one.
    Both consume the same uniforms in the same order, so they agree except where a uniform
    lies within float rounding of a CDF boundary."""
    logits = 2.0 * torch.randn(512, LARGE_VOCAB, generator=seeded(33))
    strided = logits.t().contiguous().t()
    assert not strided.is_contiguous() and torch.equal(strided, logits)
    a = sample_categorical(logits, per_row, rng=seeded(34))
    b = sample_categorical(strided, per_row, rng=seeded(34))
    assert (a == b).double().mean().item() > 0.995


# ------------------------------------------------------------------- LSTM sampling


@pytest.fixture
def tiny_model() -> LSTMLanguageModel:
    torch.manual_seed(0)
    return LSTMLanguageModel(5, emb_dim=6, hidden_dim=7, seq_len=6, init_std=1.0)


def test_sample_shape_dtype_range(tiny_model: LSTMLanguageModel) -> None:
    out = tiny_model.sample(40, rng=seeded(0))
    assert out.shape == (40, 6) and out.dtype == torch.long
    assert int(out.min()) >= 0 and int(out.max()) < 5


def test_sequence_frequencies_match_model_probabilities() -> None:
    """Sampling whole sequences agrees with the teacher-forced log-probabilities."""
    torch.manual_seed(1)
    model = LSTMLanguageModel(3, emb_dim=4, hidden_dim=4, seq_len=3, init_std=1.0)
    every = torch.tensor(list(itertools.product(range(3), repeat=3)))
    probs = model.token_log_probs(every).sum(dim=1).exp().detach()
    assert probs.sum().item() == pytest.approx(1.0, abs=1e-5)
    samples = model.sample(100_000, rng=seeded(1))
    index = samples @ torch.tensor([9, 3, 1])
    assert_frequencies_match(index, probs)


def test_sample_with_1d_prefix_keeps_it(tiny_model: LSTMLanguageModel) -> None:
    prefix = torch.tensor([4, 0, 2])
    out = tiny_model.sample(50, rng=seeded(2), prefix=prefix)
    assert out.shape == (50, 6)
    assert torch.equal(out[:, :3], prefix.expand(50, -1))
    assert int(out[:, 3:].min()) >= 0 and int(out[:, 3:].max()) < 5
    assert len(out[:, 3:].unique(dim=0)) > 1  # the rest is sampled


def test_sample_with_2d_prefix_keeps_each_row(tiny_model: LSTMLanguageModel) -> None:
    prefix = torch.randint(0, 5, (8, 4), generator=seeded(3))
    out = tiny_model.sample(8, rng=seeded(4), prefix=prefix)
    assert torch.equal(out[:, :4], prefix)


def test_full_length_prefix_is_returned_unchanged(tiny_model: LSTMLanguageModel) -> None:
    prefix = torch.randint(0, 5, (3, 6), generator=seeded(5))
    assert torch.equal(tiny_model.sample(3, prefix=prefix), prefix)


def test_prefix_continuation_uses_the_prefix_state(tiny_model: LSTMLanguageModel) -> None:
    """With a prefix of length T-1, the last token follows p(y_T | prefix)."""
    prefix = torch.tensor([1, 3, 3, 0, 2])
    out = tiny_model.sample(60_000, rng=seeded(6), prefix=prefix)
    with torch.no_grad():
        logits = tiny_model(torch.cat([prefix, torch.zeros(1, dtype=torch.long)]).unsqueeze(0))
    assert_frequencies_match(out[:, -1], torch.softmax(logits[0, -1], dim=-1))


@pytest.mark.parametrize("bad", [torch.zeros(7, dtype=torch.long), torch.zeros(3, 2, dtype=torch.long)])
def test_prefix_that_does_not_fit_raises(tiny_model: LSTMLanguageModel, bad: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="prefix"):
        tiny_model.sample(4, prefix=bad)


def test_seeded_model_sampling_is_deterministic(tiny_model: LSTMLanguageModel) -> None:
    a = tiny_model.sample(64, rng=seeded(7))
    b = tiny_model.sample(64, rng=seeded(7))
    c = tiny_model.sample(64, rng=seeded(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    pa = tiny_model.sample(64, rng=seeded(9), prefix=torch.tensor([1]))
    pb = tiny_model.sample(64, rng=seeded(9), prefix=torch.tensor([1]))
    assert torch.equal(pa, pb)


@pytest.mark.parametrize("chunk_rows", [3, 7, 512])
def test_token_log_probs_chunked_equals_token_log_probs(tiny_model: LSTMLanguageModel, chunk_rows: int) -> None:
    tokens = torch.randint(0, 5, (13, 6), generator=seeded(12))
    expected = tiny_model.token_log_probs(tokens).detach()
    got = tiny_model.token_log_probs_chunked(tokens, chunk_rows=chunk_rows)
    assert got.shape == (13, 6)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)


def test_token_log_probs_are_normalised(tiny_model: LSTMLanguageModel) -> None:
    """exp(log p) summed over the vocabulary at each position is 1."""
    prefix = torch.randint(0, 5, (1, 6), generator=seeded(13))
    rows = prefix.repeat(5, 1)
    rows[:, 4] = torch.arange(5)  # every choice of token 4 after the same prefix
    p = tiny_model.token_log_probs(rows).detach()[:, 4].exp()
    assert p.sum().item() == pytest.approx(1.0, abs=1e-5)
