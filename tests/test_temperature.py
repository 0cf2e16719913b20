"""Tempered generators: log-probabilities and NLL under softmax(logits / t) equal an
explicit log_softmax, t = 1 is today's computation bit for bit, sampling at t -> 0 is
greedy decoding, and the sampler draws from the law that token_log_probs scores."""
from __future__ import annotations

import pytest
import torch

from seqgan_core import LSTMLanguageModel, sequence_nll
from seqgan_core.lstm import _SOFTMAX_CHUNK_ROWS, _TokenLogProbs
from seqgan_core.sampling import MIN_TEMPERATURE

pytestmark = pytest.mark.usefixtures("single_thread")

VOCAB, LENGTH = 13, 6
TEMPERATURES = (0.25, 0.7, 1.0, 1.6, 4.0)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def model() -> LSTMLanguageModel:
    # std 1 (the oracle's init): peaked distributions, where a temperature visibly matters.
    return LSTMLanguageModel(VOCAB, emb_dim=5, hidden_dim=7, seq_len=LENGTH, init_std=1.0, rng=seeded(0))


@pytest.fixture(scope="module")
def tokens(model: LSTMLanguageModel) -> torch.Tensor:
    uniform = torch.randint(0, VOCAB, (10, LENGTH), generator=seeded(1))
    return torch.cat([model.sample(10, rng=seeded(2)), uniform])


def explicit_log_probs(model: LSTMLanguageModel, tokens: torch.Tensor, t: float) -> torch.Tensor:
    """log_softmax(logits / t) gathered at the tokens, in float64 from the float32 logits."""
    logits = model(tokens).double() / t
    return torch.log_softmax(logits, dim=-1).gather(2, tokens.unsqueeze(2)).squeeze(2)


@pytest.mark.parametrize("t", TEMPERATURES)
def test_tempered_log_probs_and_nll_equal_the_explicit_log_softmax(model, tokens, t: float) -> None:
    expected = explicit_log_probs(model, tokens, t)
    torch.testing.assert_close(model.token_log_probs(tokens, temperature=t).double(), expected, rtol=0, atol=2e-5)
    torch.testing.assert_close(model.token_log_probs_chunked(tokens, chunk_rows=7, temperature=t).double(),
                               expected, rtol=0, atol=2e-5)
    assert sequence_nll(model, tokens, batch_size=3, temperature=t) == pytest.approx(-expected.mean().item(), abs=2e-5)


def test_temperature_changes_the_nll(model, tokens) -> None:
    """Not a no-op: sharpening makes uniform noise less likely (the diversity side of
    the quality-diversity trade-off that a temperature sweep traces)."""
    noise = tokens[10:]
    assert sequence_nll(model, noise, temperature=0.5) > sequence_nll(model, noise) + 0.1


@pytest.mark.parametrize("t", [0.5, 2.0])
def test_tempered_gradients_equal_autograd_of_the_explicit_form(model, tokens, t: float) -> None:
    """The custom backward stays exact with the scaled output layer; the gradient reaches
    W_out and b_out through the division by t."""
    weights = torch.rand(tokens.shape, generator=seeded(3))
    params = list(model.parameters())
    got = torch.autograd.grad((model.token_log_probs(tokens, temperature=t) * weights).sum(), params)
    logits = model(tokens) / t
    explicit = torch.log_softmax(logits, dim=-1).gather(2, tokens.unsqueeze(2)).squeeze(2)
    expected = torch.autograd.grad((explicit * weights).sum(), params)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-5)


def test_temperature_one_is_todays_computation_bit_for_bit(model, tokens) -> None:
    """t = 1 runs the untempered path: the parameters themselves, no division."""
    h = model.teacher_forced_hidden(tokens).reshape(-1, model.hidden_dim)
    today = _TokenLogProbs.apply(h, model.W_out, model.b_out, tokens.reshape(-1), _SOFTMAX_CHUNK_ROWS).view_as(tokens)
    assert torch.equal(model.token_log_probs(tokens, temperature=1.0), today)
    assert torch.equal(model.token_log_probs(tokens), today)
    assert torch.equal(model.token_log_probs_chunked(tokens, temperature=1.0), model.token_log_probs_chunked(tokens))
    assert sequence_nll(model, tokens, temperature=1.0) == sequence_nll(model, tokens)


@pytest.mark.parametrize("bad", [0.0, -0.5, float("nan"), float("inf"), 1e-40, MIN_TEMPERATURE / 2])
def test_bad_temperatures_raise(model, tokens, bad: float) -> None:
    """Below MIN_TEMPERATURE too: at 1e-40 the tempered output layer overflows float32 and
    sampling returned the last id over and over instead of an error."""
    for call in (lambda: model.token_log_probs(tokens, temperature=bad),
                 lambda: model.token_log_probs_chunked(tokens, temperature=bad),
                 lambda: sequence_nll(model, tokens, temperature=bad),
                 lambda: model.sample(2, temperature=bad)):
        with pytest.raises(ValueError, match="temperature"):
            call()


def test_sampling_at_the_lowest_temperature_is_greedy_decoding(model) -> None:
    """At t = MIN_TEMPERATURE every token is the argmax of the logits given its own prefix
    (the model's second choice is at least e^(gap / t) times less likely)."""
    samples = model.sample(16, rng=seeded(4), temperature=MIN_TEMPERATURE)
    logits = model(samples)
    assert torch.equal(samples, logits.argmax(dim=-1))
    assert (samples == samples[0]).all()  # greedy decoding has one answer
    gaps = logits.topk(2, dim=-1).values.diff(dim=-1).abs()
    assert gaps.min().item() > 1e-2  # so no draw was a near-tie


@pytest.mark.parametrize("t", [0.4, 2.5])
def test_sampling_at_a_temperature_draws_the_law_token_log_probs_scores(t: float) -> None:
    """One-step model: the frequencies of 40,000 draws at temperature t match
    exp(token_log_probs(v, t)) for every id v (Pearson chi-square, 5 degrees of freedom,
    below the 99.9% point 20.52)."""
    vocab, n = 6, 40_000
    model = LSTMLanguageModel(vocab, emb_dim=4, hidden_dim=4, seq_len=1, init_std=1.0, rng=seeded(5))
    probs = model.token_log_probs(torch.arange(vocab).unsqueeze(1), temperature=t).detach().exp().squeeze(1).double()
    assert probs.sum().item() == pytest.approx(1.0, abs=1e-6)
    untempered = model.token_log_probs(torch.arange(vocab).unsqueeze(1)).detach().exp().squeeze(1).double()
    assert (probs - untempered).abs().max() > 0.05  # the check can tell the temperatures apart
    counts = torch.bincount(model.sample(n, rng=seeded(6), temperature=t).squeeze(1), minlength=vocab).double()
    expected = n * probs
    chi_square = ((counts - expected) ** 2 / expected).sum().item()
    assert chi_square < 20.52
