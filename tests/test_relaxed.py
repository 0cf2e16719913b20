"""The continuous-relaxation machinery: Gumbel-max draws follow the softmax, the relaxed
rows carry the generator's gradient, the temperature schedules, the GAN losses and the
MMD against hand computations, the discriminators over one-hots, and the relational
memory generator's interface."""
from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from seqgan_core import Discriminator, Generator, randomness, sequence_nll
from seqgan_core.adversarial_losses import discriminator_loss, generator_loss, kernel_variances, mmd2
from seqgan_core.generators import checkpoint_of, from_checkpoint
from seqgan_core.relaxed import anneal, embedded_step, one_hot, relaxed_rollout
from seqgan_core.relaxed_discriminators import (LSTMDiscriminator, MultiRepresentationDiscriminator,
                                                SoftSeqGANDiscriminator)
from seqgan_core.rmc import RelationalMemoryGenerator
from seqgan_core.train import adam, mle_step

pytestmark = pytest.mark.usefixtures("single_thread")

# Chi-square critical values at p = 0.001 by degrees of freedom: a correct sampler fails
# 1 run in 1,000, and the seeds are fixed, so these tests are deterministic.
CHI2_999 = {3: 16.27, 4: 18.47, 5: 20.52}


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def chi_square(tokens: torch.Tensor, probs: torch.Tensor) -> float:
    counts = torch.bincount(tokens, minlength=len(probs)).double()
    expected = len(tokens) * probs.double()
    return float(((counts - expected) ** 2 / expected).sum())


def rmc(vocab: int = 7, seq_len: int = 4, seed: int = 0, **kw) -> RelationalMemoryGenerator:
    return RelationalMemoryGenerator(vocab, emb_dim=5, head_size=4, seq_len=seq_len, rng=seeded(seed), **kw)


# ------------------------------------------------------------------ Gumbel-max
def test_new_draws_take_the_streams_uniforms() -> None:
    """gumbel, trunc_normal_ and uniform_ consume the uniforms a plain draw would (the
    random-stream rule), and have the right laws' bounds."""
    u = torch.rand(4, 5, generator=seeded(0))
    expected = -torch.log(-torch.log(u + 1e-10) + 1e-10)
    assert torch.allclose(randomness.gumbel((4, 5), seeded(0)), expected)
    w = randomness.trunc_normal_(torch.empty(20_000), 0.5, seeded(1))
    assert w.abs().max() <= 1.0 and w.std().item() == pytest.approx(0.5 * 0.8796, rel=0.03)  # sd of N(0,1) cut at 2
    x = randomness.uniform_(torch.empty(3, 4), -2.0, 1.0, seeded(2))
    assert torch.allclose(x, torch.rand(3, 4, generator=seeded(2)) * 3.0 - 2.0)


def test_gumbel_max_draws_follow_the_softmax() -> None:
    logits = torch.tensor([1.5, -0.3, 0.0, 0.7, -2.0, 0.2])
    n = 20_000
    tokens = (logits + randomness.gumbel((n, len(logits)), seeded(3))).argmax(dim=1)
    assert chi_square(tokens, torch.softmax(logits, 0)) < CHI2_999[5]


@pytest.mark.parametrize("make", [lambda: Generator(5, 4, 3, seq_len=1, init_std=1.0, rng=seeded(1)),
                                  lambda: rmc(vocab=5, seq_len=1)], ids=["lstm", "rmc"])
def test_the_rollouts_tokens_are_exact_samples_and_the_relaxed_rows_their_softmax(make) -> None:
    g = make()
    n, beta = 20_000, 3.0
    with torch.no_grad():
        tokens, relaxed = relaxed_rollout(g, n, scale=beta, feedback="hard", rng=seeded(4))
        logits, _ = embedded_step(g, g.embedding[[g.start_token]], g.initial_state(1))
        noise = randomness.gumbel((1, n, 5), seeded(4))[0]
    assert chi_square(tokens[:, 0], torch.softmax(logits[0], 0)) < CHI2_999[4]
    assert torch.allclose(relaxed[:, 0], torch.softmax(beta * (logits + noise), dim=1), atol=1e-6)
    assert torch.equal(relaxed.argmax(dim=2), tokens)


# ------------------------------------------------------- gradients through rows
@pytest.mark.parametrize("feedback", ["hard", "soft"])
@pytest.mark.parametrize("kind", ["lstm", "rmc"])
def test_the_relaxed_rows_gradient_reaches_the_generator(kind: str, feedback: str) -> None:
    """Autograd against central differences (float64) of a fixed linear functional of the
    relaxed rows, for weights before the output layer: the gradient crosses the
    recurrence (hard feedback: through the states; soft: also through the fed-back rows)."""
    g = (Generator(6, 4, 3, seq_len=4, init_std=0.5, rng=seeded(2)) if kind == "lstm" else rmc(6)).double()
    weights = torch.randn(3, 4, 6, generator=seeded(5), dtype=torch.float64)

    def objective() -> torch.Tensor:
        # (the LSTM's own initial state is float32)
        state = tuple(s.double() for s in g.initial_state(3)) if kind == "lstm" else None
        _, rows = relaxed_rollout(g, 3, scale=2.0, feedback=feedback, rng=seeded(6), state=state)
        return (rows * weights).sum()

    objective().backward()
    names = ("W", "U", "embedding") if kind == "lstm" else ("W_in", "W_mlp1", "W_gate_mem", "embedding")
    params = dict(g.named_parameters())
    for name in names:
        p = params[name]
        for index in [(0, 0), (1, 2)]:
            with torch.no_grad():
                p[index] += 1e-6
                up = objective().item()
                p[index] -= 2e-6
                down = objective().item()
                p[index] += 1e-6
            numeric = (up - down) / 2e-6
            assert p.grad[index].item() == pytest.approx(numeric, rel=1e-4, abs=1e-8), (name, index)
        assert p.grad.abs().sum() > 0, name


# ------------------------------------------------------------------- schedules
@pytest.mark.parametrize("shape, step, expected", [
    ("exp", 0, 1.0), ("exp", 2500, 10.0), ("exp", 5000, 100.0), ("exp", 3000, 100**0.6),
    ("lin", 0, 1.0), ("lin", 4999, 100.0), ("lin", 2500, 1 + 99 * 2500 / 4999),
    ("log", 0, 1.0), ("log", 4999, 100.0), ("log", 99, 1 + 99 * math.log(100) / math.log(5000)),
    ("sigmoid", 2500, 50.5), ("sigmoid", 0, 1 + 99 / (1 + math.exp(10))),
    ("quad", 4999, 100.0), ("quad", 0, 1.0), ("sqrt", 4999 / 4, 50.5), ("constant", 0, 100.0),
    ("exp", 9999, 100.0), ("lin", 6000, 100.0),  # past the horizon: held at the end value
])
def test_relgans_schedules(shape: str, step: float, expected: float) -> None:
    assert anneal(1.0, 100.0, int(step) if step == int(step) else step, 5000, shape) == pytest.approx(expected)


def test_a_falling_schedule_gsgans_tau() -> None:
    assert anneal(5.0, 1.0, 0, 100) == 5.0
    assert anneal(5.0, 1.0, 50, 100) == pytest.approx(5.0 * 0.2**0.5)
    assert anneal(5.0, 1.0, 100, 100) == pytest.approx(1.0)
    assert anneal(5.0, 1.0, 99, 100, "lin") == pytest.approx(1.0)
    with pytest.raises(ValueError, match="schedule"):
        anneal(1.0, 2.0, 0, 10, "cosine")


# ----------------------------------------------------------------------- losses
def test_gan_losses_against_hand_computation() -> None:
    r, f = torch.tensor([1.0, -0.5]), torch.tensor([0.0, 0.5])
    softplus = lambda x: math.log1p(math.exp(x))  # noqa: E731  -log sigmoid(-x)
    assert discriminator_loss("rsgan", r, f).item() == pytest.approx((softplus(-1.0) + softplus(1.0)) / 2)
    assert generator_loss("rsgan", r, f).item() == pytest.approx((softplus(1.0) + softplus(-1.0)) / 2)
    assert discriminator_loss("standard", r, f).item() == pytest.approx(
        (softplus(-1.0) + softplus(0.5)) / 2 + (softplus(0.0) + softplus(0.5)) / 2)
    assert generator_loss("standard", None, f).item() == pytest.approx((softplus(-0.0) + softplus(-0.5)) / 2)
    assert generator_loss("js", None, f).item() == pytest.approx(-(softplus(0.0) + softplus(0.5)) / 2)
    assert discriminator_loss("hinge", r, f).item() == pytest.approx((0.0 + 1.5) / 2 + (1.0 + 1.5) / 2)
    assert discriminator_loss("ls", r, f).item() == pytest.approx((0.0 + 2.25) / 2 + (0.0 + 0.25) / 2)
    assert generator_loss("ls", None, f).item() == pytest.approx((1.0 + 0.25) / 2)
    assert discriminator_loss("tv", r, f).item() == pytest.approx(
        (math.tanh(0.0) + math.tanh(0.5)) / 2 - (math.tanh(1.0) + math.tanh(-0.5)) / 2)
    with pytest.raises(ValueError, match="real logits"):
        generator_loss("rsgan", None, f)


def test_mmd_against_hand_computation() -> None:
    x, y = torch.tensor([[0.0], [1.0]]), torch.tensor([[2.0]])
    k = lambda d2, v: math.exp(-d2 / (2 * v))  # noqa: E731
    for variances in [(1.0,), (0.5, 3.0)]:
        kxx = sum((2 * k(0, v) + 2 * k(1, v)) / 4 for v in variances)
        kxy = sum((k(4, v) + k(1, v)) / 2 for v in variances)
        expected = kxx + sum(k(0, v) for v in variances) - 2 * kxy
        assert mmd2(x, y, variances).item() == pytest.approx(expected, rel=1e-6)
    assert mmd2(x, x, (1.0,)).item() == pytest.approx(0.0, abs=1e-7)
    assert kernel_variances("gaussian", 20.0) == (400.0,)
    assert len(kernel_variances("mixture", 20.0)) == 19


# --------------------------------------------------------------- discriminators
def test_multi_representation_discriminator_matches_a_conv2d_reference() -> None:
    """Shapes, and the shared filters equal TF's conv2d over (time, embedding) with kernel
    (height, width) and stride (1, width); relaxed input gets a gradient."""
    V, T, B = 11, 7, 3
    d = MultiRepresentationDiscriminator(V, T, emb_dim=8, num_rep=4, num_filters=5, hidden=6, rng=seeded(0)).eval()
    with torch.no_grad():
        for b in d.conv_biases:
            b.copy_(0.3 * torch.randn(b.shape, generator=seeded(b.numel())))
    tokens = torch.randint(0, V, (B, T), generator=seeded(1))
    logits = d(one_hot(tokens, V))
    assert logits.shape == (B * 4,)

    x = d.embedding[tokens].unsqueeze(1)  # (B, 1, T, E)
    pooled = []
    for k, w, b in zip(d.filter_sizes, d.conv_weights, d.conv_biases):
        kernel = w.T.reshape(-1, 1, k, d.width)  # (filters, 1, height, width)
        out = torch.relu(F.conv2d(x, kernel, b, stride=(1, d.width)))  # (B, filters, T-k+1, reps)
        pooled.append(out.amax(dim=2).transpose(1, 2))  # (B, reps, filters)
    h = torch.cat(pooled, dim=2).reshape(B * 4, -1)
    gate = torch.sigmoid(h @ d.highway_gate)
    h = gate * torch.relu(h @ d.highway_transform) + (1 - gate) * h
    reference = ((h @ d.fc_weight + d.fc_bias) @ d.logit_weight + d.logit_bias).squeeze(1)
    assert torch.allclose(logits, reference, atol=1e-5)

    soft = torch.softmax(torch.randn(B, T, V, generator=seeded(2)), dim=2).requires_grad_()
    d(soft).sum().backward()
    assert soft.grad.shape == (B, T, V) and soft.grad.abs().sum() > 0


def test_lstm_discriminator_reads_one_hots_through_its_embedding() -> None:
    V, T = 9, 5
    d = LSTMDiscriminator(V, emb_dim=4, hidden_dim=3, rng=seeded(0))
    tokens = torch.randint(0, V, (2, T), generator=seeded(1))
    hidden, _ = d.lstm(d.embedding[tokens])
    assert torch.allclose(d(one_hot(tokens, V)), d.out(hidden[:, -1]).squeeze(1))


def test_soft_seqgan_discriminator_on_exact_one_hots_is_the_seqgan_discriminator() -> None:
    V, T = 13, 6
    torch.manual_seed(0)
    seqgan = Discriminator(V, T, emb_dim=5, filter_sizes=(1, 2, 4), num_filters=(3, 4, 2)).eval()
    tokens = torch.randint(0, V, (4, T), generator=seeded(1))
    soft = SoftSeqGANDiscriminator(seqgan)
    assert torch.allclose(soft.features(one_hot(tokens, V)), seqgan.features(tokens), atol=1e-6)
    logits = seqgan(tokens)
    assert torch.allclose(soft(one_hot(tokens, V)), logits[:, 1] - logits[:, 0], atol=1e-6)


# ---------------------------------------------------------------- the RMC generator
def test_rmc_generator_interface() -> None:
    g = rmc(vocab=7, seq_len=4)
    assert g.kind == "rmc" and g.device == torch.device("cpu")
    assert torch.equal(g.initial_state(2)[:, 0, :3], torch.tensor([[1.0, 0, 0], [1.0, 0, 0]]))
    samples = g.sample(5, rng=seeded(1))
    assert samples.shape == (5, 4) and samples.dtype == torch.long
    assert torch.equal(g.sample(5, rng=seeded(1)), samples)  # seeded
    fixed = g.sample(3, rng=seeded(2), prefix=torch.tensor([6, 5]))
    assert torch.equal(fixed[:, :2], torch.tensor([[6, 5]] * 3))
    clone = from_checkpoint(checkpoint_of(g))  # a saved generator: {"kind": "rmc", "config", "state_dict"}
    assert isinstance(clone, RelationalMemoryGenerator)
    assert torch.equal(clone.sample(5, rng=seeded(1)), samples)
    assert torch.allclose(g.token_log_probs_chunked(samples, chunk_rows=2), g.token_log_probs(samples))
    assert sequence_nll(g, samples) == pytest.approx(-g.token_log_probs(samples).mean().item(), rel=1e-6)
    assert sequence_nll(g, samples, temperature=0.5) == pytest.approx(
        -g.token_log_probs(samples, temperature=0.5).mean().item(), rel=1e-6)


@pytest.mark.parametrize("layer_norm", ["joint", "row"])
def test_rmc_token_log_probs_form_a_distribution_over_sequences(layer_norm: str) -> None:
    """exp(sum_t log p(y_t | y_<t)) sums to 1 over all V^T sequences, at any temperature."""
    g = rmc(vocab=4, seq_len=2, layer_norm=layer_norm)
    every = torch.tensor(list(itertools.product(range(4), repeat=2)))
    for temperature in (1.0, 0.5):
        total = g.token_log_probs(every, temperature=temperature).sum(dim=1).exp().sum()
        assert total.item() == pytest.approx(1.0, abs=1e-5)


def test_rmc_samples_follow_its_own_probabilities_and_it_trains_by_mle() -> None:
    g = rmc(vocab=5, seq_len=2)
    samples = g.sample(8_000, rng=seeded(3))
    with torch.no_grad():
        first = g.token_log_probs(torch.arange(5).view(5, 1).repeat(1, 2))[:, 0].exp()
    assert chi_square(samples[:, 0], first) < CHI2_999[4]
    data = torch.randint(0, 5, (16, 2), generator=seeded(4))
    optimizer = adam(g.parameters(), 1e-2)
    losses = [mle_step(g, optimizer, data) for _ in range(15)]
    assert losses[-1] < losses[0]


def test_rmc_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="layer_norm"):
        rmc(layer_norm="batch")
    with pytest.raises(ValueError, match="start_token"):
        RelationalMemoryGenerator(5, start_token=5)
