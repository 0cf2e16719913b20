"""SeqGAN's policy-gradient estimator against the exact gradient of J = E_G[D(Y)] on an
enumerable problem (vocabulary 3, length 4), and the generator objectives on hand
examples (REINFORCE surrogate reductions and baseline, MaliGAN weights)."""
from __future__ import annotations

import itertools

import pytest
import torch

from seqgan_core import Generator, rollout
from seqgan_core.objectives import maligan_weights, mle_loss, policy_gradient_loss


pytestmark = pytest.mark.usefixtures("single_thread")


V, T = 3, 4
SIGMAS = 5.0


# ------------------------------------------------------------------ tiny problem


def all_sequences() -> torch.Tensor:
    return torch.tensor(list(itertools.product(range(V), repeat=T)), dtype=torch.long)


def sequence_index(tokens: torch.Tensor) -> torch.Tensor:
    return tokens @ (V ** torch.arange(T - 1, -1, -1))


class TableDiscriminator:
    """Duck-typed D: a fixed P(real) in (0, 1) for each of the V^T sequences."""

    def __init__(self, table: torch.Tensor) -> None:
        self.table = table

    def prob_real(self, tokens: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        return self.table[sequence_index(tokens)]


def flat(tensors: list[torch.Tensor] | tuple[torch.Tensor, ...]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def exact_gradient(generator: Generator, d: TableDiscriminator) -> torch.Tensor:
    """grad_theta J, J = sum over all 81 sequences of p_theta(y) D(y), by autograd."""
    sequences = all_sequences()
    p = generator.token_log_probs(sequences).sum(dim=1).exp()
    J = (p * d.table).sum()
    return flat(torch.autograd.grad(J, list(generator.parameters())))


def seqgan_gradient(
    generator: Generator, d: TableDiscriminator, batch: int, n_rollouts: int, rng: torch.Generator
) -> torch.Tensor:
    """The SeqGAN estimate of grad J from one batch: -grad(PG loss, reduction sum) / B."""
    samples = generator.sample(batch, rng=rng)
    rewards = rollout(generator, d, samples, n_rollouts, rng=rng)
    loss = policy_gradient_loss(generator.token_log_probs(samples), rewards, reduction="sum")
    return -flat(torch.autograd.grad(loss, list(generator.parameters()))) / batch


def block_slices(generator: Generator) -> dict[str, slice]:
    out, offset = {}, 0
    for name, p in generator.named_parameters():
        out[name] = slice(offset, offset + p.numel())
        offset += p.numel()
    return out


@pytest.fixture(scope="module")
def estimate() -> dict[str, object]:
    """K independent batch estimates and the exact gradient on one tiny problem."""
    torch.manual_seed(0)
    generator = Generator(V, emb_dim=4, hidden_dim=4, seq_len=T, init_std=1.0)
    d = TableDiscriminator(0.01 + 0.98 * torch.rand(V**T, generator=torch.Generator().manual_seed(1)))
    rng = torch.Generator().manual_seed(2)
    K, B, N = 200, 64, 8
    batches = torch.stack([seqgan_gradient(generator, d, B, N, rng) for _ in range(K)]).double()
    return {
        "exact": exact_gradient(generator, d).double(),
        "mean": batches.mean(dim=0),
        "se": batches.std(dim=0) / K**0.5,
        "blocks": block_slices(generator),
    }


# --------------------------------------------------------------- estimator vs exact


@pytest.mark.parametrize("block", ["b_out", "W_out", "b", "U", "W", "embedding"])
def test_seqgan_estimator_matches_exact_gradient(estimate: dict, block: str) -> None:
    sl = estimate["blocks"][block]
    exact, mean, se = estimate["exact"][sl], estimate["mean"][sl], estimate["se"][sl]
    # The exact gradient is clearly non-zero on this block (the check has power).
    assert exact.abs().max() > 3 * se.max()
    slack = 1e-3
    z = (mean - exact).abs() / se
    assert ((mean - exact).abs() <= SIGMAS * se + slack).all(), (
        f"{block}: worst deviation {z.max().item():.1f} SE; mean {mean.tolist()} exact {exact.tolist()}"
    )


def test_seqgan_estimator_points_along_exact_gradient(estimate: dict) -> None:
    cosine = torch.nn.functional.cosine_similarity(estimate["mean"], estimate["exact"], dim=0)
    assert cosine.item() > 0.9


def test_exact_gradient_ascends_j() -> None:
    """Sanity of the reference: a small step along grad J increases J."""
    torch.manual_seed(0)
    generator = Generator(V, emb_dim=4, hidden_dim=4, seq_len=T, init_std=1.0)
    d = TableDiscriminator(torch.rand(V**T, generator=torch.Generator().manual_seed(1)))

    def J() -> float:
        with torch.no_grad():
            return (generator.token_log_probs(all_sequences()).sum(1).exp() * d.table).sum().item()

    g = exact_gradient(generator, d)
    before = J()
    with torch.no_grad():
        offset = 0
        for p in generator.parameters():
            p.add_(1e-2 * g[offset : offset + p.numel()].view_as(p))
            offset += p.numel()
    assert J() - before == pytest.approx(1e-2 * g.square().sum().item(), rel=0.1)


# ---------------------------------------------------------------- hand examples

LOG_PROBS = torch.tensor([[-1.0, -2.0], [-0.5, -3.0]])
REWARDS = torch.tensor([[0.5, 1.0], [0.2, 0.4]])


def test_policy_gradient_loss_sum() -> None:
    # -(-1*0.5 - 2*1.0 - 0.5*0.2 - 3*0.4) = 0.5 + 2 + 0.1 + 1.2
    assert policy_gradient_loss(LOG_PROBS, REWARDS).item() == pytest.approx(3.8)
    assert policy_gradient_loss(LOG_PROBS, REWARDS, reduction="sum").item() == pytest.approx(3.8)


def test_policy_gradient_loss_mean() -> None:
    assert policy_gradient_loss(LOG_PROBS, REWARDS, reduction="mean").item() == pytest.approx(3.8 / 4)


def test_policy_gradient_loss_with_baseline() -> None:
    # advantages [[0.2, 0.7], [-0.1, 0.1]]: -(-0.2 - 1.4 + 0.05 - 0.3) = 1.85
    assert policy_gradient_loss(LOG_PROBS, REWARDS, baseline=0.3).item() == pytest.approx(1.85)
    assert policy_gradient_loss(LOG_PROBS, REWARDS, reduction="mean", baseline=0.3).item() == pytest.approx(
        1.85 / 4
    )
    per_sequence = torch.tensor([[0.5], [0.2]])  # a tensor baseline broadcasts
    # advantages [[0, 0.5], [0, 0.2]]: -(-1.0 - 0.6) = 1.6
    assert policy_gradient_loss(LOG_PROBS, REWARDS, baseline=per_sequence).item() == pytest.approx(1.6)


def test_policy_gradient_loss_gradient_is_minus_advantage_and_rewards_detached() -> None:
    log_probs = LOG_PROBS.clone().requires_grad_(True)
    rewards = REWARDS.clone().requires_grad_(True)
    policy_gradient_loss(log_probs, rewards, baseline=0.3).backward()
    torch.testing.assert_close(log_probs.grad, -(REWARDS - 0.3))
    assert rewards.grad is None


@pytest.mark.parametrize("reduction", ["none", "Sum", "batchmean", ""])
def test_policy_gradient_loss_rejects_unknown_reduction(reduction: str) -> None:
    with pytest.raises(ValueError, match="reduction"):
        policy_gradient_loss(LOG_PROBS, REWARDS, reduction=reduction)


def test_maligan_weights_hand_example() -> None:
    # r = D / (1 - D) = [1, 4, 0.25]; sum 5.25
    w = maligan_weights(torch.tensor([0.5, 0.8, 0.2]))
    torch.testing.assert_close(w, torch.tensor([1.0, 4.0, 0.25]) / 5.25)
    assert w.sum().item() == pytest.approx(1.0)


def test_maligan_weights_are_not_normalised_d() -> None:
    d = torch.tensor([0.5, 0.8, 0.2])
    assert not torch.allclose(maligan_weights(d), d / d.sum(), atol=1e-3)


def test_maligan_weights_stay_finite_at_the_edges() -> None:
    w = maligan_weights(torch.tensor([1.0, 0.0, 0.5]))
    assert torch.isfinite(w).all()
    assert w.sum().item() == pytest.approx(1.0)
    assert w[0] > 0.99 and w[1] >= 0.0


def test_mle_loss_is_mean_token_nll() -> None:
    torch.manual_seed(0)
    g = Generator(V, emb_dim=4, hidden_dim=4, seq_len=T)
    tokens = all_sequences()[::5]
    expected = -g.token_log_probs(tokens).mean()
    assert mle_loss(g, tokens).item() == pytest.approx(expected.item())
    # The model is a proper distribution over the 81 sequences.
    assert g.token_log_probs(all_sequences()).sum(1).exp().sum().item() == pytest.approx(1.0, abs=1e-5)
