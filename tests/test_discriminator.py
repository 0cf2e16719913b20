"""The CNN discriminator: dropout is the DROP rate, widths are validated, the
unfolded-matmul convolution equals conv1d + ReLU + max-over-time, the highway layer and
the L2 penalty follow the authors' code, P(real) is scored without dropout, and the
initialisers are the authors' (Glorot uniform highway layers) unless init="torch"."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from seqgan_core import Discriminator
from seqgan_core.discriminator import PAPER_FILTER_SIZES, PAPER_NUM_FILTERS


pytestmark = pytest.mark.usefixtures("single_thread")


VOCAB, LENGTH, EMB = 17, 9, 6
WIDTHS, FILTERS = (1, 2, 4, 9), (3, 5, 4, 2)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def tokens(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, VOCAB, (n, LENGTH), generator=seeded(seed))


@pytest.fixture
def disc() -> Discriminator:
    torch.manual_seed(0)
    d = Discriminator(VOCAB, seq_len=LENGTH, emb_dim=EMB, filter_sizes=WIDTHS, num_filters=FILTERS)
    # Distinct biases of both signs, so ReLU and the bias placement matter.
    with torch.no_grad():
        for b in d.conv_biases:
            b.copy_(0.3 * torch.randn(b.shape, generator=seeded(b.numel())))
    return d


def reference_pooled(d: Discriminator, x: torch.Tensor) -> torch.Tensor:
    """conv1d (with bias) -> ReLU -> max over time, for every filter width: (B, filters)."""
    emb = d.embedding(x).transpose(1, 2)  # (B, E, T)
    E = emb.shape[1]
    pooled = []
    for k, w, b in zip(d.filter_sizes, d.conv_weights, d.conv_biases):
        # w[(position * E + channel), filter] -> conv weight[filter, channel, position]
        weight = w.view(k, E, -1).permute(2, 1, 0)
        pooled.append(torch.relu(F.conv1d(emb, weight, b)).amax(dim=2))
    return torch.cat(pooled, dim=1)


def reference_features(d: Discriminator, x: torch.Tensor) -> torch.Tensor:
    """Highway as in the authors' code: t = sigmoid(W_g h + b_g + bias),
    out = t * relu(W_h h + b_h) + (1 - t) * h."""
    h = reference_pooled(d, x)
    gate = torch.sigmoid(d.highway_gate(h) + d.highway_gate_bias)
    return gate * torch.relu(d.highway_transform(h)) + (1 - gate) * h


# ------------------------------------------------------------------ construction


def test_dropout_module_is_drop_rate_default_quarter() -> None:
    d = Discriminator(VOCAB, seq_len=LENGTH, emb_dim=EMB, filter_sizes=WIDTHS, num_filters=FILTERS)
    assert isinstance(d.dropout, torch.nn.Dropout)
    assert d.dropout.p == pytest.approx(0.25)  # keep probability 0.75, as in the paper


@pytest.mark.parametrize("rate", [0.0, 0.5, 0.9])
def test_dropout_argument_is_the_drop_rate(rate: float) -> None:
    d = Discriminator(VOCAB, seq_len=LENGTH, emb_dim=EMB, filter_sizes=WIDTHS, num_filters=FILTERS, dropout=rate)
    assert d.dropout.p == pytest.approx(rate)


def test_dropout_zeroes_a_quarter_in_training() -> None:
    d = Discriminator(VOCAB, seq_len=LENGTH, emb_dim=EMB, filter_sizes=WIDTHS, num_filters=FILTERS)
    d.train()
    torch.manual_seed(1)
    out = d.dropout(torch.ones(100_000))
    dropped = (out == 0).double().mean().item()
    assert dropped == pytest.approx(0.25, abs=5 * (0.25 * 0.75 / 100_000) ** 0.5)
    torch.testing.assert_close(out[out != 0], torch.full_like(out[out != 0], 1 / 0.75))


@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5])
def test_dropout_outside_range_raises(rate: float) -> None:
    with pytest.raises(ValueError, match="dropout"):
        Discriminator(VOCAB, seq_len=LENGTH, emb_dim=EMB, filter_sizes=WIDTHS, num_filters=FILTERS, dropout=rate)


@pytest.mark.parametrize("widths", [(2, LENGTH + 1), (LENGTH + 5,), (0, 2)])
def test_filter_widths_that_do_not_fit_raise(widths: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="width"):
        Discriminator(VOCAB, seq_len=LENGTH, emb_dim=EMB, filter_sizes=widths, num_filters=(4,) * len(widths))


def test_paper_widths_need_length_twenty() -> None:
    with pytest.raises(ValueError, match="20"):
        Discriminator(VOCAB, seq_len=19, emb_dim=EMB)
    d = Discriminator(VOCAB, seq_len=20, emb_dim=4)
    assert d.filter_sizes == PAPER_FILTER_SIZES
    assert d.out.in_features == sum(PAPER_NUM_FILTERS) == 1720


def test_mismatched_filter_lists_raise() -> None:
    with pytest.raises(ValueError):
        Discriminator(VOCAB, seq_len=LENGTH, filter_sizes=(1, 2, 3), num_filters=(4, 4))


# ------------------------------------------------------------------- forward pass


def test_unfolded_convolution_equals_conv1d(disc: Discriminator) -> None:
    x = tokens(11)
    disc.eval()
    with torch.no_grad():
        expected = reference_features(disc, x)
        got = disc.features(x)
    assert got.shape == (11, sum(FILTERS))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    # Some pooled responses are clipped by the ReLU and some are not: the check covers both.
    pooled = reference_pooled(disc, x)
    assert (pooled == 0).any() and (pooled > 0).any()


def assert_same_conv_gradients(disc: Discriminator, x: torch.Tensor, got_fn, expected_fn, seed: int,
                               **tolerance: float) -> None:
    """The embedding, filter and bias gradients of a random weighting of got_fn(disc, x)
    and of expected_fn(disc, x) agree."""
    params = [disc.embedding.weight, *disc.conv_weights, *disc.conv_biases]
    weights = torch.randn(x.shape[0], sum(FILTERS), generator=seeded(seed))
    got = torch.autograd.grad((got_fn(disc, x) * weights).sum(), params)
    expected = torch.autograd.grad((expected_fn(disc, x) * weights).sum(), params)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, **tolerance)


def test_unfolded_convolution_equals_conv1d_gradients(disc: Discriminator) -> None:
    disc.eval()
    assert_same_conv_gradients(disc, tokens(6, seed=1), Discriminator.features, reference_features, seed=2,
                               rtol=1e-4, atol=1e-5)


def one_position_pooled(d: Discriminator, x: torch.Tensor) -> torch.Tensor:
    """The unfolded convolution pooled with torch.max, whose backward gives the whole
    gradient to one maximal position, as TF's max_pool in the authors' code does."""
    emb = d.embedding(x)
    B, T, E = emb.shape
    pooled = []
    for k, w, b in zip(d.filter_sizes, d.conv_weights, d.conv_biases):
        windows = emb.unfold(1, k, 1).transpose(2, 3).reshape(B * (T - k + 1), k * E)
        pooled.append(torch.relu((windows @ w).view(B, T - k + 1, -1).max(dim=1).values + b))
    return torch.cat(pooled, dim=1)


def test_max_pooling_gradient_on_exact_ties_equals_one_position_gradient(disc: Discriminator) -> None:
    """Periodic sequences repeat every window, so every filter's maximum is tied across
    positions: splitting the gradient among the tied windows reaches the same embedding
    rows and filter entries as giving it all to one of them."""
    x = torch.tensor([[3, 5] * 4 + [3], [7] * 9, [1, 2, 4] * 3])
    assert_same_conv_gradients(disc, x, Discriminator._pooled, one_position_pooled, seed=3, rtol=1e-5, atol=1e-6)


def test_max_pooling_gradient_passes_gradcheck() -> None:
    from seqgan_core.discriminator import _MaxOverTime

    responses = torch.randn(4, 7, 5, dtype=torch.float64, generator=seeded(4), requires_grad=True)
    assert torch.autograd.gradcheck(_MaxOverTime.apply, (responses,))


def test_forward_in_eval_mode_is_output_layer_of_features(disc: Discriminator) -> None:
    x = tokens(5, seed=3)
    disc.eval()
    with torch.no_grad():
        torch.testing.assert_close(disc(x), disc.out(reference_features(disc, x)), rtol=1e-5, atol=1e-5)


def test_highway_gate_bias_is_used() -> None:
    torch.manual_seed(0)
    kwargs = dict(seq_len=LENGTH, emb_dim=EMB, filter_sizes=WIDTHS, num_filters=FILTERS)
    d0 = Discriminator(VOCAB, **kwargs)
    torch.manual_seed(0)
    d2 = Discriminator(VOCAB, highway_gate_bias=-2.0, **kwargs)
    x = tokens(4, seed=4)
    with torch.no_grad():
        torch.testing.assert_close(d2.features(x), reference_features(d2, x), rtol=1e-5, atol=1e-5)
        assert not torch.allclose(d0.features(x), d2.features(x))


def test_prob_real_is_eval_softmax_and_restores_mode(disc: Discriminator) -> None:
    x = tokens(23, seed=5)
    disc.train()
    torch.manual_seed(6)
    p1 = disc.prob_real(x)
    p2 = disc.prob_real(x, batch_size=4)  # batching does not change the result
    assert disc.training
    torch.testing.assert_close(p1, p2)
    disc.eval()
    with torch.no_grad():
        torch.testing.assert_close(p1, torch.softmax(disc(x), dim=1)[:, 1])
    assert p1.shape == (23,) and ((p1 > 0) & (p1 < 1)).all()
    assert disc.prob_real(x[:0]).shape == (0,)


def test_dropout_is_active_only_in_training(disc: Discriminator) -> None:
    x = tokens(8, seed=7)
    disc.train()
    torch.manual_seed(8)
    a = disc(x)
    b = disc(x)
    assert not torch.equal(a, b)
    disc.eval()
    assert torch.equal(disc(x), disc(x))


# -------------------------------------------------------------------------- loss


@pytest.mark.parametrize("l2_reg", [0.2, 0.0, 1.3])
def test_l2_penalty_is_on_output_layer_only(l2_reg: float) -> None:
    torch.manual_seed(0)
    d = Discriminator(VOCAB, seq_len=LENGTH, emb_dim=EMB, filter_sizes=WIDTHS, num_filters=FILTERS, l2_reg=l2_reg)
    logits = torch.randn(7, 2, generator=seeded(9))
    labels = torch.tensor([0, 1, 1, 0, 1, 0, 0])
    loss = d.loss_from_logits(logits, labels)
    penalty = 0.5 * (d.out.weight.square().sum() + d.out.bias.square().sum())
    expected = F.cross_entropy(logits, labels) + l2_reg * penalty
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)

    loss.backward()  # the penalty's gradient is l2 * W on the output layer, nothing elsewhere
    torch.testing.assert_close(d.out.weight.grad, l2_reg * d.out.weight.detach())
    torch.testing.assert_close(d.out.bias.grad, l2_reg * d.out.bias.detach())
    others = [p for name, p in d.named_parameters() if not name.startswith("out.")]
    assert all(p.grad is None or not p.grad.any() for p in others)


def test_default_l2_is_point_two() -> None:
    torch.manual_seed(0)
    d = Discriminator(VOCAB, seq_len=LENGTH, emb_dim=EMB, filter_sizes=WIDTHS, num_filters=FILTERS)
    logits, labels = torch.zeros(2, 2), torch.tensor([0, 1])
    penalty = 0.5 * (d.out.weight.square().sum() + d.out.bias.square().sum()).item()
    assert d.loss_from_logits(logits, labels).item() == pytest.approx(torch.log(torch.tensor(2.0)).item() + 0.2 * penalty)


def test_authors_initialisers() -> None:
    d = Discriminator(VOCAB, seq_len=LENGTH, emb_dim=EMB, filter_sizes=WIDTHS, num_filters=FILTERS)
    assert d.embedding.weight.abs().max() <= 1.0
    for w, b in zip(d.conv_weights, d.conv_biases):
        assert w.abs().max() <= 0.2
        assert torch.equal(b, torch.full_like(b, 0.1))
    assert d.out.weight.abs().max() <= 0.2
    assert torch.equal(d.out.bias, torch.full_like(d.out.bias, 0.1))


# ------------------------------------------------------------ initialisation
def paper_sized(init: str, seed: int = 0) -> Discriminator:
    """The paper's filter bank (1,720 features) on a small embedding, built from the seed."""
    torch.manual_seed(seed)
    return Discriminator(VOCAB, seq_len=20, emb_dim=4, init=init)


def assert_uniform(x: torch.Tensor, bound: float) -> None:
    """Entries within [-bound, bound], filling it, with U(-bound, bound)'s mean and sd
    (within 5 standard errors)."""
    x = x.detach().double().flatten()
    n = x.numel()
    assert x.abs().max().item() <= bound
    assert x.abs().max().item() > bound * (1 - 20 / n)
    assert abs(x.mean().item()) < 5 * bound / math.sqrt(3 * n)
    # sd of U(-a, a) is a / sqrt(3); its estimate's standard error is ~ a / sqrt(3) * sqrt(0.8 / (4 n))
    assert x.std().item() == pytest.approx(bound / math.sqrt(3), abs=5 * bound / math.sqrt(3) * math.sqrt(0.2 / n))


def test_tf_init_gives_the_highway_layers_glorot_uniform() -> None:
    """TF 1.x's get_variable default for the authors' highway `linear`: weight and bias
    U(-a, a), a = sqrt(6 / (fan_in + fan_out)); a bias of n entries has fans n and n."""
    d = paper_sized("tf")
    features = sum(PAPER_NUM_FILTERS)
    for layer in (d.highway_transform, d.highway_gate):
        assert_uniform(layer.weight, math.sqrt(6 / (features + features)))  # 0.0418 for 1,720 features
        assert_uniform(layer.bias, math.sqrt(6 / (features + features)))
    assert not torch.equal(d.highway_transform.weight, d.highway_gate.weight)


def test_torch_init_keeps_pytorchs_linear_defaults_and_changes_nothing_else() -> None:
    tf, torch_init = paper_sized("tf"), paper_sized("torch")
    features = sum(PAPER_NUM_FILTERS)
    for layer in (torch_init.highway_transform, torch_init.highway_gate):
        assert_uniform(layer.weight, 1 / math.sqrt(features))
        assert_uniform(layer.bias, 1 / math.sqrt(features))
    # Only the highway layers differ: the Glorot draws come after every other layer's.
    for (name, a), (_, b) in zip(tf.named_parameters(), torch_init.named_parameters()):
        assert torch.equal(a, b) == (not name.startswith("highway")), name


def test_the_default_init_is_tf_and_is_seeded_by_torch_manual_seed() -> None:
    kwargs = dict(seq_len=LENGTH, emb_dim=EMB, filter_sizes=(2, 3), num_filters=(40, 40))
    torch.manual_seed(3)
    default = Discriminator(VOCAB, **kwargs)
    torch.manual_seed(3)
    tf = Discriminator(VOCAB, init="tf", **kwargs)
    for a, b in zip(default.parameters(), tf.parameters()):
        assert torch.equal(a, b)
    assert default.highway_gate.weight.abs().max() > 1 / math.sqrt(80)  # beyond PyTorch's bound, inside Glorot's
    with pytest.raises(ValueError, match="init"):
        Discriminator(VOCAB, init="xavier", **kwargs)
