"""Monte-Carlo rollout rewards against exact expectations on a problem small enough to
enumerate (vocabulary 3, length 4: 81 sequences), plus the delayed rollout policy."""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
import torch

from seqgan_core import DelayedPolicy, Discriminator, Generator, rollout


pytestmark = pytest.mark.usefixtures("single_thread")


V, T = 3, 4
SIGMAS = 5.0


# ------------------------------------------------------------------ tiny problem


def all_sequences(vocab: int = V, length: int = T) -> torch.Tensor:
    """Every sequence in lexicographic order: row i is the base-``vocab`` digits of i."""
    return torch.tensor(list(itertools.product(range(vocab), repeat=length)), dtype=torch.long)


def sequence_index(tokens: torch.Tensor, vocab: int = V) -> torch.Tensor:
    length = tokens.shape[-1]
    powers = vocab ** torch.arange(length - 1, -1, -1)
    return tokens @ powers


class TableDiscriminator:
    """Duck-typed D: a fixed P(real) in (0, 1) for each of the V^T sequences."""

    def __init__(self, table: torch.Tensor, vocab: int = V) -> None:
        self.table, self.vocab = table, vocab
        self.rows_scored = 0

    def prob_real(self, tokens: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        self.rows_scored += tokens.shape[0]
        return self.table[sequence_index(tokens, self.vocab)]


@dataclass
class TinyProblem:
    generator: Generator
    discriminator: TableDiscriminator
    sequences: torch.Tensor  # (81, T)
    probs: torch.Tensor  # (81,) p_G(y), float64
    d: torch.Tensor  # (81,) D(y), float64


def make_tiny_problem(seed: int = 0) -> TinyProblem:
    torch.manual_seed(seed)
    generator = Generator(V, emb_dim=4, hidden_dim=4, seq_len=T, init_std=1.0)
    table = 0.01 + 0.98 * torch.rand(V**T, generator=torch.Generator().manual_seed(seed + 100))
    sequences = all_sequences()
    with torch.no_grad():
        probs = generator.token_log_probs(sequences).double().sum(dim=1).exp()
    return TinyProblem(generator, TableDiscriminator(table), sequences, probs, table.double())


def exact_q(problem: TinyProblem, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact Q(t) and Var(D | y_1..t) for every row of ``tokens`` and t = 1..T: (B, T) each.

    Q(t) = sum over completions c of p_G(c | y_1..t) D(y_1..t, c)
         = sum_{y' extends y_1..t} p_G(y') D(y') / sum_{y' extends y_1..t} p_G(y').
    """
    B = tokens.shape[0]
    q = torch.empty(B, T, dtype=torch.float64)
    var = torch.empty(B, T, dtype=torch.float64)
    for b in range(B):
        for t in range(1, T + 1):
            match = (problem.sequences[:, :t] == tokens[b, :t]).all(dim=1)
            p = problem.probs[match] / problem.probs[match].sum()
            d = problem.d[match]
            q[b, t - 1] = (p * d).sum()
            var[b, t - 1] = (p * d.square()).sum() - q[b, t - 1].square()
    return q, var.clamp(min=0.0)


@pytest.fixture(scope="module")
def tiny() -> TinyProblem:
    return make_tiny_problem()


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------- exact rewards


def test_tiny_problem_is_a_proper_non_uniform_distribution(tiny: TinyProblem) -> None:
    assert tiny.probs.sum().item() == pytest.approx(1.0, abs=1e-6)
    assert (tiny.probs.max() / tiny.probs.min()).item() > 20  # far from uniform
    assert ((tiny.d > 0) & (tiny.d < 1)).all()


def test_rollout_rewards_match_exact_q(tiny: TinyProblem) -> None:
    n = 4000
    samples = tiny.sequences  # every prefix of every length, each continued n times
    rewards = rollout(tiny.generator, tiny.discriminator, samples, n_rollouts=n, rng=seeded(1))
    assert rewards.shape == (V**T, T)
    q, var = exact_q(tiny, samples)

    # t = T: the reward is D of the sequence itself, exactly.
    assert torch.equal(rewards[:, T - 1], tiny.discriminator.table)
    torch.testing.assert_close(q[:, T - 1], tiny.d)  # (sanity of the enumeration)

    # t < T: Monte-Carlo means within 5 standard errors of the exact expectation.
    se = torch.sqrt(var[:, : T - 1] / n)
    error = (rewards[:, : T - 1].double() - q[:, : T - 1]).abs()
    worst = (error / (se + 1e-12)).max().item()
    assert (error <= SIGMAS * se + 1e-6).all(), f"worst deviation {worst:.1f} standard errors"
    # The check has power: the exact Q(t) vary well beyond the tolerance across prefixes.
    assert (q[:, 0].max() - q[:, 0].min()).item() > 20 * se.max().item()


def test_rollout_rewards_on_generator_samples_match_exact_q(tiny: TinyProblem) -> None:
    """Same check on sampled sequences (duplicates included), the way training calls it."""
    samples = tiny.generator.sample(40, rng=seeded(2))
    n = 3000
    rewards = rollout(tiny.generator, tiny.discriminator, samples, n_rollouts=n, rng=seeded(3))
    q, var = exact_q(tiny, samples)
    se = torch.sqrt(var / n)
    assert (rewards.double() - q).abs().le(SIGMAS * se + 1e-6).all()


def test_rollout_scores_each_completion_once(tiny: TinyProblem) -> None:
    d = TableDiscriminator(tiny.discriminator.table)
    B, n = 5, 7
    rollout(tiny.generator, d, tiny.sequences[:B], n_rollouts=n, rng=seeded(4))
    assert d.rows_scored == B + B * n * (T - 1)


def test_rollout_is_deterministic_with_seeded_rng(tiny: TinyProblem) -> None:
    samples = tiny.sequences[::7]
    a = rollout(tiny.generator, tiny.discriminator, samples, n_rollouts=8, rng=seeded(5))
    b = rollout(tiny.generator, tiny.discriminator, samples, n_rollouts=8, rng=seeded(5))
    c = rollout(tiny.generator, tiny.discriminator, samples, n_rollouts=8, rng=seeded(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def step_by_step_rollout(generator, reward, samples: torch.Tensor, n: int, rng: torch.Generator) -> torch.Tensor:
    """The rollout loop drawing its uniforms step by step from ``rng`` (as it did before
    it drew them all at once), for the same prefix-state caching and row order."""
    B, T = samples.shape
    rewards = torch.empty(B, T)
    rewards[:, T - 1] = reward(samples)
    h_prefix, c_prefix = generator._teacher_forced_states(samples)
    block = n * B
    completions = samples.repeat(n * (T - 1), 1)
    h, c = torch.empty((T - 1) * block, generator.hidden_dim), torch.empty((T - 1) * block, generator.hidden_dim)
    with torch.no_grad():
        for t in range(1, T):
            running = (t - 1) * block
            if running:
                h[:running], c[:running] = generator.advance(completions[:running, t - 1], (h[:running], c[:running]))
                completions[:running, t] = generator.sample_next(h[:running], rng=rng).squeeze(1)
            first = generator.sample_next(h_prefix[:, t], num_samples=n, rng=rng)
            completions[running : running + block, t] = first.T.reshape(-1)
            h[running : running + block] = h_prefix[:, t].repeat(n, 1)
            c[running : running + block] = c_prefix[:, t].repeat(n, 1)
    rewards[:, : T - 1] = reward(completions).view(T - 1, n, B).mean(dim=1).T
    return rewards


def test_rollout_draws_the_numbers_of_step_by_step_draws() -> None:
    """The rollout draws all B x N x T(T-1)/2 uniforms at once (one host-to-device copy on a
    GPU): the same numbers in the same order as drawing them step by step, so seeded
    results did not change. Vocabulary 3,000 takes the blocked sampler, 20 the plain one."""
    for vocab, T in ((3000, 6), (20, 5)):
        g = Generator(vocab, seq_len=T, rng=seeded(0))
        d = torch.rand(vocab, generator=seeded(1))

        def reward(tokens: torch.Tensor, d: torch.Tensor = d) -> torch.Tensor:  # any reward of whole rows
            return 0.5 * d[tokens[:, -1]] + 0.5 * d[tokens[:, 1]]

        samples = g.sample(7, rng=seeded(2))
        expected = step_by_step_rollout(g, reward, samples, 5, seeded(3))
        assert torch.equal(rollout(g, reward, samples, n_rollouts=5, rng=seeded(3)), expected)


def test_rollout_of_length_one_is_d_itself() -> None:
    torch.manual_seed(0)
    g = Generator(V, emb_dim=4, hidden_dim=4, seq_len=1)
    table = torch.tensor([0.2, 0.5, 0.9])
    samples = torch.tensor([[2], [0], [1]])
    rewards = rollout(g, TableDiscriminator(table), samples, n_rollouts=4)
    assert torch.equal(rewards, torch.tensor([[0.9], [0.2], [0.5]]))


@pytest.mark.parametrize("n_rollouts", [0, -3])
def test_rollout_needs_at_least_one_completion(tiny: TinyProblem, n_rollouts: int) -> None:
    with pytest.raises(ValueError, match="n_rollouts"):
        rollout(tiny.generator, tiny.discriminator, tiny.sequences[:2], n_rollouts=n_rollouts)


# --------------------------------------------------------- real discriminator


def test_rollout_with_real_discriminator_shape_and_range() -> None:
    torch.manual_seed(3)
    vocab, length = 12, 7
    g = Generator(vocab, emb_dim=8, hidden_dim=8, seq_len=length)
    d = Discriminator(vocab, seq_len=length, emb_dim=8, filter_sizes=(2, 3), num_filters=(5, 6))
    samples = g.sample(9, rng=seeded(7))
    rewards = rollout(g, d, samples, n_rollouts=3, rng=seeded(8))
    assert rewards.shape == (9, length)
    assert rewards.dtype == torch.float32
    assert ((rewards > 0) & (rewards < 1)).all()
    torch.testing.assert_close(rewards[:, -1], d.prob_real(samples))
    assert d.training  # rollout scored in eval mode without leaving D in it


# --------------------------------------------------------------- delayed policy


def perturb_(model: torch.nn.Module, seed: int) -> None:
    gen = seeded(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen))


@pytest.mark.parametrize("rate", [0.0, 0.3, 0.8, 1.0])
def test_delayed_policy_update_is_exponential_average(rate: float) -> None:
    torch.manual_seed(0)
    g = Generator(7, emb_dim=5, hidden_dim=6, seq_len=5)
    policy = DelayedPolicy(g, rate=rate)
    perturb_(policy.model, 1)  # beta != theta so the mixing is visible
    perturb_(g, 2)
    beta = [p.detach().clone() for p in policy.model.parameters()]
    theta = [p.detach().clone() for p in g.parameters()]
    policy.update(g)
    for b_old, th, b_new in zip(beta, theta, policy.model.parameters()):
        torch.testing.assert_close(b_new, rate * b_old + (1 - rate) * th, rtol=0, atol=1e-6)
    for th, p in zip(theta, g.parameters()):
        assert torch.equal(p, th)  # the generator itself is untouched


def test_delayed_policy_rate_zero_tracks_generator_exactly() -> None:
    torch.manual_seed(0)
    g = Generator(7, emb_dim=5, hidden_dim=6, seq_len=5)
    policy = DelayedPolicy(g, rate=0.0)
    for step in range(3):
        perturb_(g, 10 + step)
        policy.update(g)
        for b, th in zip(policy.model.parameters(), g.parameters()):
            assert torch.equal(b, th)
    samples = g.sample(6, rng=seeded(0))
    table = TableDiscriminator(torch.rand(7**5, generator=seeded(1)), vocab=7)
    assert torch.equal(
        rollout(policy.model, table, samples, n_rollouts=4, rng=seeded(2)),
        rollout(g, table, samples, n_rollouts=4, rng=seeded(2)),
    )


def test_delayed_policy_is_an_independent_frozen_copy() -> None:
    torch.manual_seed(0)
    g = Generator(7, emb_dim=5, hidden_dim=6, seq_len=5)
    policy = DelayedPolicy(g, rate=0.8)
    before = [p.detach().clone() for p in policy.model.parameters()]
    perturb_(g, 3)
    for b, p in zip(before, policy.model.parameters()):
        assert torch.equal(b, p)  # changing G does not move beta until update()
    assert not any(p.requires_grad for p in policy.model.parameters())
    assert all(p.requires_grad for p in g.parameters())


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_delayed_policy_rejects_rate_outside_unit_interval(rate: float) -> None:
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="rate"):
        DelayedPolicy(Generator(5, emb_dim=2, hidden_dim=2, seq_len=3), rate=rate)
