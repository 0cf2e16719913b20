"""The baselines and MaliGAN: hand-computed MaliGAN losses, the schedules of scheduled
sampling and of mixed MLE, scheduled sampling's use of the model's own tokens, PG-BLEU's
reward, and every method's update changing the generator on a small seeded problem."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from seqgan_core import Discriminator, Generator, Oracle, rollout
from seqgan_core.bleu import BLEU, BLEUReward
from seqgan_core.corpus import strip_eos
from seqgan_core.objectives import maligan_loss, maligan_weights, mle_loss, scheduled_sampling_loss
from seqgan_core.train import (
    maligan_generator_step,
    mixed_mle_prefix_length,
    mle_step,
    real_prefix_negatives,
    scheduled_sampling_step,
    seqgan_generator_step,
    teacher_forcing_probability,
)

pytestmark = pytest.mark.usefixtures("single_thread")

VOCAB, LENGTH = 32, 8


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------- MaliGAN
def test_maligan_weights_normalise_within_each_group() -> None:
    d = torch.tensor([[0.5, 0.8], [0.2, 0.5]])  # r = [1, 4], [0.25, 1]
    w = maligan_weights(d)
    assert torch.allclose(w, torch.tensor([[0.2, 0.8], [0.2, 0.8]]))


def test_maligan_loss_hand_example() -> None:
    # Two prefixes (G = 2) of length N = 1, m = 2 completions each, T = 3.
    lp = torch.tensor([[-1.0, -2.0, -3.0],
                       [-1.0, -0.5, -0.5],
                       [-2.0, -1.0, -1.0],
                       [-2.0, -4.0, -2.0]], requires_grad=True)
    d = torch.tensor([0.5, 0.8, 0.2, 0.5])
    # weights [0.2, 0.8] in both groups; baseline b = 1/m = 0.5 -> advantages [-0.3, 0.3]
    # group 1: -(-0.3 * -5 + 0.3 * -1) - (-1) = -(1.5 - 0.3) + 1 = -0.2
    # group 2: -(-0.3 * -2 + 0.3 * -6) - (-2) = -(0.6 - 1.8) + 2 = 3.2
    loss = maligan_loss(lp, d, group_size=2, prefix_len=1, baseline=True)
    assert loss.item() == pytest.approx((-0.2 + 3.2) / 2)
    loss.backward()
    expected = torch.tensor([[-0.5, 0.15, 0.15],    # prefix MLE (-1/G) on each group's first row
                             [0.0, -0.15, -0.15],   # sampled part: -(w - b) / G
                             [-0.5, 0.15, 0.15],
                             [0.0, -0.15, -0.15]])
    assert torch.allclose(lp.grad, expected)


def test_maligan_loss_without_baseline_uses_raw_weights() -> None:
    lp = torch.zeros(2, 2, requires_grad=True)
    maligan_loss(lp, torch.tensor([0.5, 0.8]), group_size=2, prefix_len=0, baseline=False).backward()
    assert torch.allclose(lp.grad, -torch.tensor([[0.2, 0.2], [0.8, 0.8]]))


def test_maligan_loss_with_the_whole_sequence_kept_is_mle() -> None:
    lp = -torch.rand(6, 4, generator=seeded(0))
    loss = maligan_loss(lp, torch.rand(6, generator=seeded(1)), group_size=3, prefix_len=4)
    assert loss.item() == pytest.approx(-lp.view(2, 3, 4)[:, 0].sum(1).mean().item())


def test_maligan_loss_rejects_ragged_groups() -> None:
    with pytest.raises(ValueError, match="groups of 4"):
        maligan_loss(torch.zeros(6, 3), torch.full((6,), 0.5), group_size=4)


def test_mixed_mle_prefix_falls_by_k_before_the_first_update() -> None:
    """Algorithm 2: N <- T, then N <- N - K at the start of every iteration, so the first
    update already samples K tokens (it used to keep all T: a pure MLE batch)."""
    assert [mixed_mle_prefix_length(step, 20, 3) for step in range(9)] == [17, 14, 11, 8, 5, 2, 0, 0, 0]


def test_real_prefix_negatives_keep_real_prefixes_and_sample_the_rest() -> None:
    torch.manual_seed(0)
    g = Generator(VOCAB, 8, 8, LENGTH)
    real = torch.randint(0, VOCAB, (40, LENGTH), generator=seeded(1))
    negatives = real_prefix_negatives(g, real, 30, 5, rng=seeded(2))
    # The same draws by hand: a random order of the real rows, then the continuations.
    rng = seeded(2)
    rows = torch.randperm(40, generator=rng)[:30]
    assert torch.equal(negatives, g.sample(30, rng=rng, prefix=real[rows, :5]))
    assert torch.equal(negatives[:, :5], real[rows, :5]) and len(set(rows.tolist())) == 30
    assert not torch.equal(negatives[:, 5:], real[rows, 5:])  # sampled, not copied


def test_real_prefix_negatives_cycle_through_the_real_rows() -> None:
    torch.manual_seed(0)
    g = Generator(VOCAB, 8, 8, LENGTH)
    real = torch.arange(7).unsqueeze(1).repeat(1, LENGTH)  # row i is all i: its prefix names it
    negatives = real_prefix_negatives(g, real, 17, 2, rng=seeded(3))
    first = negatives[:, 0]
    for start in (0, 7):  # two whole passes, each every row once, then 3 rows of a third
        assert torch.equal(first[start : start + 7].sort().values, torch.arange(7))
    assert len(set(first[14:].tolist())) == 3


def test_real_prefix_negatives_without_a_prefix_are_free_samples() -> None:
    torch.manual_seed(0)
    g = Generator(VOCAB, 8, 8, LENGTH)
    real = torch.randint(0, VOCAB, (40, LENGTH), generator=seeded(1))
    assert torch.equal(real_prefix_negatives(g, real, 12, 0, rng=seeded(4)), g.sample(12, rng=seeded(4)))
    with pytest.raises(ValueError, match="prefix_len"):
        real_prefix_negatives(g, real, 12, LENGTH + 1)


# --------------------------------------------------------- scheduled sampling
def test_teacher_forcing_schedule_is_linear_with_a_floor() -> None:
    values = [teacher_forcing_probability(step, start=1.0, decay=0.25, floor=0.1) for step in range(6)]
    assert values == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.1, 0.1])


def test_scheduled_sampling_with_full_teacher_forcing_is_mle() -> None:
    torch.manual_seed(0)
    g = Generator(VOCAB, 8, 8, LENGTH)
    tokens = torch.randint(0, VOCAB, (16, LENGTH), generator=seeded(1))
    assert scheduled_sampling_loss(g, tokens, 1.0).item() == pytest.approx(mle_loss(g, tokens).item(), rel=1e-5)


def test_without_teacher_forcing_the_model_reads_only_its_own_tokens() -> None:
    """With probability 0 no real token is read: changing the first real token changes
    only the first step's target, so the loss moves by exactly that step's NLL change."""
    torch.manual_seed(0)
    g = Generator(VOCAB, 8, 8, LENGTH)
    a = torch.randint(0, VOCAB, (16, LENGTH), generator=seeded(1))
    b = a.clone()
    b[:, 0] = (a[:, 0] + 1) % VOCAB
    first_logits = g.step(torch.full((16,), g.start_token), g.initial_state(16))[0]
    first_step_change = (F.cross_entropy(first_logits, a[:, 0], reduction="none")
                         - F.cross_entropy(first_logits, b[:, 0], reduction="none")).mean() / LENGTH
    own = scheduled_sampling_loss(g, a, 0.0, seeded(2)) - scheduled_sampling_loss(g, b, 0.0, seeded(2))
    assert own.item() == pytest.approx(first_step_change.item(), abs=1e-6)
    forced = mle_loss(g, a) - mle_loss(g, b)  # teacher forcing: every later step changes too
    assert abs(forced.item() - first_step_change.item()) > 1e-4


def test_scheduled_sampling_is_seeded_and_rejects_bad_probabilities() -> None:
    torch.manual_seed(0)
    g = Generator(VOCAB, 8, 8, LENGTH)
    tokens = torch.randint(0, VOCAB, (16, LENGTH), generator=seeded(1))
    assert scheduled_sampling_loss(g, tokens, 0.5, seeded(3)).item() == scheduled_sampling_loss(g, tokens, 0.5, seeded(3)).item()
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="probability"):
            scheduled_sampling_loss(g, tokens, bad)


# ------------------------------------------------------------------ PG-BLEU
def test_bleu_reward_is_the_authors_bleu_of_each_row_cut_at_eos() -> None:
    references = torch.tensor([[5, 6, 7, 8, 0, 0], [5, 6, 9, 9, 9, 0]])
    hypotheses = torch.tensor([[5, 6, 7, 0, 3, 3], [9, 9, 9, 9, 9, 9], [4, 4, 0, 0, 0, 0]])
    rewards = BLEUReward(references, n=3, eos_id=0)(hypotheses)
    expected = BLEU(strip_eos(references), max_n=3, smoothing="none_nltk32").sentence_scores(strip_eos(hypotheses), 3)
    assert rewards.dtype == torch.float32 and rewards.shape == (3,)
    assert torch.allclose(rewards, torch.tensor(expected, dtype=torch.float32))
    assert rewards[0] > rewards[2]
    assert strip_eos(hypotheses)[0] == [5, 6, 7]  # the 3s after <eos> are padding, not scored


def test_bleu_reward_scores_oracle_rows_whole() -> None:
    references = torch.tensor([[0, 1, 2, 3]])
    assert BLEUReward(references, n=2)(torch.tensor([[0, 1, 2, 3]])).item() == pytest.approx(1.0)


def test_rollout_with_a_reward_function_is_exact_when_the_reward_reads_the_prefix() -> None:
    """A reward that depends only on the first token is known once that token is: every
    Q(t) equals it exactly, whatever the completions."""
    torch.manual_seed(0)
    g = Generator(VOCAB, 8, 8, LENGTH)
    samples = g.sample(12, rng=seeded(4))

    def first_token_is_even(tokens: torch.Tensor) -> torch.Tensor:
        return (tokens[:, 0] % 2 == 0).float()

    q = rollout(g, first_token_is_even, samples, n_rollouts=3, rng=seeded(5))
    assert torch.equal(q, first_token_is_even(samples).unsqueeze(1).expand(-1, LENGTH))


# ------------------------------------------------- every method moves the generator
@pytest.fixture(scope="module")
def problem() -> dict:
    oracle = Oracle(seed=0, vocab_size=VOCAB, seq_len=LENGTH)
    data = oracle.sample(512, seed=1)
    torch.manual_seed(0)
    return {"data": data, "generator": Generator(VOCAB, 16, 16, LENGTH),
            "discriminator": Discriminator(VOCAB, LENGTH, 16, (2, 3), (10, 10))}


def _updates(problem: dict, generator: Generator, optimizer: torch.optim.Optimizer):
    data, d, rng = problem["data"], problem["discriminator"], seeded(7)
    return {
        "mle": lambda step: {"g_loss": mle_step(generator, optimizer, data[step * 32:(step + 1) * 32])},
        "scheduled_sampling": lambda step: scheduled_sampling_step(
            generator, optimizer, data[step * 32:(step + 1) * 32], teacher_forcing_probability(step, decay=0.3), rng=rng),
        "pg_bleu": lambda step: seqgan_generator_step(generator, BLEUReward(data[:200], 3), optimizer, batch_size=16,
                                                      n_rollouts=1, rng=rng),
        "seqgan": lambda step: seqgan_generator_step(generator, d, optimizer, batch_size=16, n_rollouts=2, rng=rng),
        "maligan_basic": lambda step: maligan_generator_step(generator, d, optimizer, torch.empty(1, 0, dtype=torch.long),
                                                             completions=16, rng=rng),
        "maligan_full": lambda step: maligan_generator_step(
            generator, d, optimizer, data[step * 4:(step + 1) * 4, : mixed_mle_prefix_length(step, LENGTH, 3)],
            completions=4, rng=rng),
    }


@pytest.mark.parametrize("method", ["mle", "scheduled_sampling", "pg_bleu", "seqgan", "maligan_basic", "maligan_full"])
def test_each_method_changes_the_generator_with_finite_losses(problem: dict, method: str) -> None:
    generator = Generator(VOCAB, 16, 16, LENGTH)
    generator.load_state_dict(problem["generator"].state_dict())
    before = [p.detach().clone() for p in generator.parameters()]
    optimizer = torch.optim.Adam(generator.parameters(), lr=0.01)
    update = _updates(problem, generator, optimizer)[method]
    rows = [update(step) for step in range(3)]
    assert all(math.isfinite(v) for row in rows for v in row.values())
    changed = [not torch.equal(b, p) for b, p in zip(before, generator.parameters())]
    assert any(changed)
    assert all(torch.isfinite(p).all() for p in generator.parameters())


def test_mle_method_lowers_the_training_nll(problem: dict) -> None:
    generator = Generator(VOCAB, 16, 16, LENGTH)
    generator.load_state_dict(problem["generator"].state_dict())
    optimizer = torch.optim.Adam(generator.parameters(), lr=0.01)
    data = problem["data"]
    before = mle_loss(generator, data).item()
    for step in range(16):
        mle_step(generator, optimizer, data[step * 32:(step + 1) * 32])
    assert mle_loss(generator, data).item() < before - 0.2


def test_maligan_step_raises_the_likelihood_of_what_d_prefers(problem: dict) -> None:
    """With a D that calls sequences starting with token 3 real, MaliGAN-basic updates
    shift the generator's first-token probability towards 3."""

    class FirstTokenDiscriminator:
        def prob_real(self, tokens: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
            return torch.where(tokens[:, 0] == 3, 0.9, 0.1)

    generator = Generator(VOCAB, 16, 16, LENGTH)
    generator.load_state_dict(problem["generator"].state_dict())
    optimizer = torch.optim.Adam(generator.parameters(), lr=0.01)

    def p_first_is_3() -> float:
        logits = generator.step(torch.full((1,), generator.start_token), generator.initial_state(1))[0]
        return torch.softmax(logits, dim=1)[0, 3].item()

    before, rng = p_first_is_3(), seeded(11)
    for _ in range(20):
        maligan_generator_step(generator, FirstTokenDiscriminator(), optimizer, torch.empty(1, 0, dtype=torch.long),
                               completions=64, rng=rng)
    assert p_first_is_3() > 2 * before
