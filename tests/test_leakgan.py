"""LeakGAN's generator and objectives on tiny problems: the rescaled activation, the goal
aggregation over c steps and the losses against hand computations; the generator as a
proper distribution whose sampler, teacher-forced pass and step-by-step recurrence
agree; all prefixes' leaked features in one call; rollout values against exact
conditional expectations."""
from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from seqgan_core.leakgan import (CODE_SHARPENING, LeakGANGenerator, code_temperatures, leakgan_discriminator,
                                 rescaled_activation, sharpened_samples)
from seqgan_core.leakgan.objectives import intrinsic_rewards, manager_loss, manager_starts, worker_loss
from seqgan_core.leakgan.rollout import rollout_values

pytestmark = pytest.mark.usefixtures("single_thread")

WINDOWS = ["sliding", "segment"]
D_SIZES = {"d_emb_dim": 4, "d_filter_sizes": [1, 2, 3], "d_num_filters": [3, 4, 5]}
S2 = 1 / math.sqrt(2.0)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def tiny_generator(window: str = "sliding", vocab: int = 3, length: int = 4, step: int = 2, seed: int = 0,
                   init_std: float = 0.5) -> LeakGANGenerator:
    return LeakGANGenerator(vocab, seq_len=length, emb_dim=4, hidden_dim=5, goal_size=3, step_size=step,
                            goal_window=window, init_std=init_std, rng=seeded(seed), **D_SIZES)


def all_sequences(vocab: int, length: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product(range(vocab), repeat=length)), dtype=torch.long)


def stepwise_logits(g: LeakGANGenerator, tokens: torch.Tensor) -> torch.Tensor:
    """The recurrence one step at a time (as `sample` runs it), teacher-forced: (B, T, V)."""
    B, T = tokens.shape
    state = g.initial_state(B)
    prefix = torch.full_like(tokens, g.pad_id)
    prev = torch.full((B,), g.start_token, dtype=torch.long)
    out = []
    with torch.no_grad():
        for t in range(T):
            logits, state = g.step(t, prev, state)
            state = g.observe(g.leaked_features(prefix), state)
            out.append(logits)
            prev = prefix[:, t] = tokens[:, t]
    return torch.stack(out, dim=1)


# ------------------------------------------------------- rescaled activation
def test_rescaled_activation_ranks_by_score_as_the_paper() -> None:
    scores = torch.tensor([[0.2, 0.1], [0.9, 0.3], [0.5, 0.2], [0.9, 0.4]])
    # column 0: high-to-low ranks 4, 1, 3, 1 (tie shares the best rank); column 1: 4, 2, 3, 1
    # sigmoid(16 * (0.5 - rank / 4))
    s = torch.sigmoid
    expected = torch.stack([s(torch.tensor([-8.0, 4.0, -4.0, 4.0])), s(torch.tensor([-8.0, 0.0, -4.0, 4.0]))], dim=1)
    torch.testing.assert_close(rescaled_activation(scores, 16.0), expected)


def test_rescaled_activation_in_the_codes_dictionary_order() -> None:
    scores = torch.tensor([[0.2], [0.9], [0.5], [0.9]])
    # values numbered by first appearance: 0.2 -> 1, 0.9 -> 2, 0.5 -> 3; sigmoid(16 * idx / 4 - 8)
    expected = torch.sigmoid(torch.tensor([[-4.0], [0.0], [4.0], [0.0]]))
    torch.testing.assert_close(rescaled_activation(scores, 16.0, order="first_appearance"), expected)
    # The middle score gets the top reward and the best a middling one: the order ignores D.


@pytest.mark.parametrize("order", ["score", "first_appearance"])
def test_rescaled_batch_mean_is_a_constant(order: str) -> None:
    """LeakGAN#17: distinct scores become a permutation of fixed values, whatever D says."""
    means = {rescaled_activation(torch.rand(64, 1, generator=seeded(seed)), 16.0, order).mean().item()
             for seed in range(5)}
    assert max(means) - min(means) < 1e-6
    # The code logs this mean divided by its 4 rollouts: 0.12695.
    code_mean = torch.sigmoid(16.0 * torch.arange(1, 65) / 64 - 8.0).mean().item() / 4
    assert code_mean == pytest.approx(0.12695, abs=5e-5)


def test_real_ranking_follows_d_and_the_codes_order_does_not() -> None:
    scores = torch.tensor([[0.95], [0.10], [0.50], [0.30]])  # the best sequence comes first
    paper = rescaled_activation(scores, 16.0)[:, 0]
    assert torch.equal(paper.argsort(), scores[:, 0].argsort())
    code = rescaled_activation(scores, 16.0, order="first_appearance")[:, 0]
    assert code.argmin().item() == 0  # the code rewards D's favourite least


# --------------------------------------------------------- goal aggregation
@pytest.mark.parametrize("window", WINDOWS)
def test_goal_aggregates_the_last_c_subgoals(window: str) -> None:
    g = tiny_generator(window, length=7, step=3)
    tokens = torch.randint(0, 3, (2, 7), generator=seeded(1))
    passed = g.teacher_forced(tokens)
    c, init = 3, g.goal_init.detach()

    def sub(j: int) -> torch.Tensor:  # g_j, goal_init before the sequence starts
        return passed.subgoals[:, j].detach() if j >= 0 else init.expand(2, -1)

    for t in range(7):
        at = t if window == "sliding" else t // c * c  # the code holds the goal of the segment start
        expected = sum(sub(at - i) for i in range(1, c + 1))
        torch.testing.assert_close(passed.goals[:, t].detach(), expected, rtol=1e-5, atol=1e-6)


def test_segment_goal_changes_only_at_segment_starts() -> None:
    g = tiny_generator("segment", length=8, step=4)
    passed = g.teacher_forced(torch.randint(0, 3, (2, 8), generator=seeded(2)))
    goals = passed.goals.detach()
    assert torch.equal(goals[:, 0], goals[:, 3]) and torch.equal(goals[:, 4], goals[:, 7])
    assert not torch.allclose(goals[:, 3], goals[:, 4])


def test_manager_terms_every_step_or_every_segment() -> None:
    assert manager_starts(20, 4, "sliding") == list(range(17))
    assert manager_starts(20, 4, "segment") == [0, 4, 8, 12, 16]  # rewards at 4, 8, 12, 16 and D(full)


# ------------------------------------------------------------------ losses
FEATURES = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]],
                         [[0.0, 0.0], [0.0, 2.0], [1.0, 2.0], [1.0, 2.0]]])  # (B 2, T+1 4, F 2)


def test_manager_loss_hand_example() -> None:
    goals = torch.tensor([[[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [3.0, 0.0]]], requires_grad=True)
    q = torch.tensor([[0.5, 1.0], [0.25, 0.75]])
    # c = 2, terms t = 0, 1: moves f2 - f0, f3 - f1
    # row 0: (1,1) vs (1,0): 1/sqrt2; (-1,1) vs (1,0): -1/sqrt2
    # row 1: (1,2) vs (0,1): 2/sqrt5; (1,0) vs (3,0): 1
    cos = torch.tensor([[S2, -S2], [2 / math.sqrt(5), 1.0]])
    loss = manager_loss(FEATURES, goals, [0, 1], 2, q)
    assert loss.item() == pytest.approx(-(q * cos).mean().item())
    assert manager_loss(FEATURES, goals, [0, 1], 2).item() == pytest.approx(-cos.mean().item())  # pretraining: Q = 1
    code = manager_loss(FEATURES, goals, [0, 1], 2, q, reduction="batch_mean")
    assert code.item() == pytest.approx(-q.mean().item() * cos.mean().item())
    loss.backward()
    # d cos(m, g) / dg = m/(|m||g|) - cos g/|g|^2; row 0 term 0: m = (1,1), g = (1,0)
    expected = -(0.5 / 4) * (torch.tensor([1.0, 1.0]) * S2 - S2 * torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(goals.grad[0, 0], expected)


def test_intrinsic_reward_paper_hand_example() -> None:
    f = FEATURES[:1]
    subgoals = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
    # r_u = 1/2 sum_{i <= min(2, u+1)} cos(f_{u+1} - f_{u+1-i}, g_{u+1-i})
    # u=0: cos((1,0),(1,0)) = 1; u=1: cos((0,1),(0,1)) + cos((1,1),(1,0)) = 1 + 1/sqrt2;
    # u=2: cos((-1,0),(1,1)) + cos((-1,1),(0,1)) = -1/sqrt2 + 1/sqrt2
    r = intrinsic_rewards(f, subgoals, torch.zeros_like(subgoals), 2, "sliding")
    torch.testing.assert_close(r, torch.tensor([[0.5, (1 + S2) / 2, 0.0]]), atol=1e-6, rtol=0)


def test_intrinsic_reward_code_hand_example() -> None:
    f = FEATURES[:1]
    goals = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])
    # r_u = cos(f_{u+1} - f_{segment start}, G_u), c = 2: starts 0, 0, 2
    # u=0: (1,0) vs (1,0) = 1; u=1: (1,1) vs (1,0) = 1/sqrt2; u=2: (-1,0) vs (0,1) = 0
    r = intrinsic_rewards(f, torch.zeros_like(goals), goals, 2, "segment")
    torch.testing.assert_close(r, torch.tensor([[1.0, S2, 0.0]]), atol=1e-6, rtol=0)
    code = intrinsic_rewards(f, torch.zeros_like(goals), goals, 2, "segment", reduction="batch_mean")
    torch.testing.assert_close(code, torch.full((1, 3), (1.0 + S2) / 3))


def test_worker_loss_hand_example_and_detached_reward() -> None:
    log_probs = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    rewards = torch.tensor([[0.5, -1.0]], requires_grad=True)
    loss = worker_loss(log_probs, rewards)
    assert loss.item() == pytest.approx(-(0.5 * -1.0 + -1.0 * -2.0) / 2)
    loss.backward()
    torch.testing.assert_close(log_probs.grad, torch.tensor([[-0.25, 0.5]]))
    assert rewards.grad is None


# ---------------------------------------------------------------- generator
@pytest.mark.parametrize("window", WINDOWS)
def test_generator_is_a_proper_distribution(window: str) -> None:
    g = tiny_generator(window)
    total = g.token_log_probs(all_sequences(3, 4)).sum(dim=1).exp().sum().item()
    assert total == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("window", WINDOWS)
def test_teacher_forced_pass_matches_the_step_by_step_recurrence(window: str) -> None:
    g = tiny_generator(window, vocab=5, length=6, step=2)
    tokens = torch.randint(0, 5, (3, 6), generator=seeded(3))
    logits = stepwise_logits(g, tokens)
    expected = torch.log_softmax(logits, -1).gather(2, tokens.unsqueeze(2)).squeeze(2)
    torch.testing.assert_close(g.token_log_probs(tokens).detach(), expected, rtol=1e-5, atol=1e-5)
    sharp = torch.log_softmax(logits * CODE_SHARPENING, -1).gather(2, tokens.unsqueeze(2)).squeeze(2)
    torch.testing.assert_close(g.token_log_probs(tokens, temperature=1 / CODE_SHARPENING).detach(), sharp,
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("window", WINDOWS)
def test_samples_follow_the_models_probabilities(window: str) -> None:
    g = tiny_generator(window, vocab=2, length=3, step=2, init_std=1.0)
    n = 6000
    samples = g.sample(n, rng=seeded(4))
    sequences = all_sequences(2, 3)
    p = g.token_log_probs(sequences).sum(1).exp().detach()
    counts = (samples.unsqueeze(1) == sequences.unsqueeze(0)).all(dim=2).sum(dim=0).double()
    se = (p * (1 - p) / n).sqrt()
    assert ((counts / n - p).abs() <= 5 * se + 1e-3).all(), (counts / n, p)


def test_sample_keeps_a_prefix_and_temperatures() -> None:
    g = tiny_generator(vocab=5, length=6)
    out = g.sample(4, rng=seeded(5), prefix=torch.tensor([4, 1]))
    assert out.shape == (4, 6) and (out[:, :2] == torch.tensor([4, 1])).all() and (out < 5).all()
    assert code_temperatures(4, train=True) == [1 / 1.5, 1 / 1.5, 1.0, 1.0]
    assert code_temperatures(3, train=False) == [1 / 1.5] * 3
    assert torch.equal(sharpened_samples(g, 8, rng=seeded(6)), g.sample(8, rng=seeded(6), temperature=1 / 1.5))
    assert not torch.equal(g.sample(64, rng=seeded(6)), g.sample(64, rng=seeded(6), temperature=1 / 1.5))
    with pytest.raises(ValueError, match="temperatures"):
        g.sample(2, temperature=[1.0, 1.0])


def test_all_prefix_features_in_one_batched_call(monkeypatch: pytest.MonkeyPatch) -> None:
    g = tiny_generator(vocab=5, length=6)
    tokens = torch.randint(0, 5, (3, 6), generator=seeded(7))
    calls = []
    frozen = g.feature_extractor.eval_features
    monkeypatch.setattr(g.feature_extractor, "eval_features", lambda x: calls.append(x.shape) or frozen(x))
    features = g.prefix_features(tokens)
    assert calls == [(3 * 7, 6)] and features.shape == (3, 7, 12)
    for t in range(7):
        prefix = torch.where(torch.arange(6) < t, tokens, g.pad_id)
        torch.testing.assert_close(features[:, t], frozen(prefix))


@pytest.mark.parametrize("lookup", [False, True])
def test_leaked_features_are_ds_features_by_either_convolution(lookup: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    d = leakgan_discriminator(5, 6, 4, [1, 2, 3], [3, 4, 5])
    monkeypatch.setattr(d, "_lookup_pays_off", lambda rows: lookup)
    tokens = torch.randint(0, 6, (10, 6), generator=seeded(13))  # 5 is the pad id
    leaked = d.eval_features(tokens)
    assert not leaked.requires_grad
    torch.testing.assert_close(leaked, d.features(tokens).detach())


def test_generator_rebuilds_from_config_and_state_dict_and_reads_the_synced_d() -> None:
    g = tiny_generator(vocab=5, length=6)
    d = leakgan_discriminator(5, 6, 4, [1, 2, 3], [3, 4, 5])
    tokens = torch.randint(0, 5, (4, 6), generator=seeded(8))
    before = g.token_log_probs(tokens).detach()
    g.sync_features(d)
    assert not torch.allclose(before, g.token_log_probs(tokens).detach())  # the leaked features matter
    twin = type(g)(**g.config())
    twin.load_state_dict(g.state_dict())
    assert torch.equal(twin.sample(16, rng=seeded(9)), g.sample(16, rng=seeded(9)))
    assert not any(p.requires_grad for p in twin.feature_extractor.parameters())
    assert g.config()["d_num_filters"] == [3, 4, 5] and g.kind == "leakgan"


def test_construction_is_seeded_and_leaves_the_global_stream_alone() -> None:
    state = torch.get_rng_state()
    a, b = tiny_generator(seed=3), tiny_generator(seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name


# ------------------------------------------------------------------ rollouts
class TableScorer:
    """Duck-typed D: a fixed P(real) for each of the V^T sequences."""

    def __init__(self, table: torch.Tensor, vocab: int, length: int) -> None:
        self.table, self.weights = table, vocab ** torch.arange(length - 1, -1, -1)

    def prob_real(self, tokens: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        return self.table[tokens @ self.weights]


@pytest.mark.parametrize("window", WINDOWS)
def test_rollout_values_are_the_conditional_expectations_of_d(window: str) -> None:
    """MC values of every prefix of 4 samples vs exact sums over the 2^6 sequences. The
    leaked features, the manager and the goal's effect are scaled up so that a rollout
    continuing from a wrong state (a sub-goal window, manager state or prefix feature one
    step off) misses by 7 to 20+ standard errors."""
    V, T = 2, 6
    g = tiny_generator(window, vocab=V, length=T, init_std=1.0)
    with torch.no_grad():
        for p in [*g.feature_extractor.parameters(), g.W_out, g.W_m, g.U_m, g.W_goal]:
            p.mul_(3.0)
    d = TableScorer(torch.rand(V**T, generator=seeded(10)), V, T)
    samples = g.sample(4, rng=seeded(11))
    n, lengths = 4000, [1, 2, 3, 4, 5]
    values = rollout_values(g, d, samples, g.teacher_forced(samples), lengths, n, rng=seeded(12))
    sequences = all_sequences(V, T)
    log_p = g.token_log_probs(sequences).detach()
    for b in range(4):
        for j, p in enumerate(lengths):
            match = (sequences[:, :p] == samples[b, :p]).all(dim=1)
            conditional = log_p[match, p:].sum(dim=1).exp()  # p(completion | prefix)
            exact = (conditional * d.table[match]).sum().item()
            sd = ((conditional * (d.table[match] - exact) ** 2).sum().item() / n) ** 0.5
            assert abs(values[b, j].item() - exact) <= 5 * sd, (window, b, p, values[b, j].item(), exact)
