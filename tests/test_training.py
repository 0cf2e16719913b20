"""Training steps on a small seeded oracle: MLE lowers NLL-oracle, the discriminator
learns real from random, adversarial g-steps move the generator, divergence is caught,
and seeded runs are bit-identical on CPU."""
from __future__ import annotations

import copy
import math

import pytest
import torch

from seqgan_core import Discriminator, Generator, Oracle, TrainingDiverged
from seqgan_core.train import (
    adam,
    check_finite,
    check_weights_bounded,
    discriminator_round,
    minibatches,
    mle_epoch,
    policy_gradient_step,
    seqgan_generator_step,
)


pytestmark = pytest.mark.usefixtures("single_thread")


VOCAB, LENGTH = 64, 10


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def uniform_tokens(n: int, seed: int) -> torch.Tensor:
    return torch.randint(0, VOCAB, (n, LENGTH), generator=seeded(seed))


def nll_oracle(oracle: Oracle, generator: Generator, n: int = 2000, seed: int = 5) -> float:
    return oracle.nll(generator.sample(n, rng=seeded(seed)))


def small_discriminator() -> Discriminator:
    return Discriminator(VOCAB, seq_len=LENGTH, emb_dim=16, filter_sizes=(2, 3), num_filters=(20, 20))


def flat_params(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


@pytest.fixture(scope="module")
def oracle() -> Oracle:
    return Oracle(seed=0, vocab_size=VOCAB, seq_len=LENGTH)


@pytest.fixture(scope="module")
def data(oracle: Oracle) -> torch.Tensor:
    return oracle.sample(2000, seed=1)


@pytest.fixture(scope="module")
def pretrained(oracle: Oracle, data: torch.Tensor) -> dict[str, object]:
    """A generator after a few MLE epochs, with its NLL-oracle before and after."""
    torch.manual_seed(0)
    generator = Generator(VOCAB, seq_len=LENGTH)
    optimizer = torch.optim.Adam(generator.parameters(), lr=0.01)
    before = nll_oracle(oracle, generator)
    rng = seeded(0)
    losses = [mle_epoch(generator, optimizer, data, rng=rng) for _ in range(4)]
    return {"generator": generator, "before": before, "after": nll_oracle(oracle, generator), "losses": losses}


# ------------------------------------------------------------------------- MLE


def test_mle_epochs_lower_nll_oracle(pretrained: dict, oracle: Oracle) -> None:
    before, after = pretrained["before"], pretrained["after"]
    assert before > math.log(VOCAB) - 0.5  # an N(0, 0.1) generator is near uniform
    assert after < before - 1.5
    own = oracle.nll(oracle.sample(2000, seed=9))
    assert after > own  # and cannot beat the oracle's own samples


def test_mle_training_loss_decreases(pretrained: dict) -> None:
    losses = pretrained["losses"]
    assert all(math.isfinite(x) for x in losses)
    assert losses[-1] < losses[0]
    assert losses[0] < math.log(VOCAB)  # first epoch's mean already below the uniform NLL


def test_mle_epoch_needs_one_full_batch(data: torch.Tensor) -> None:
    torch.manual_seed(0)
    generator = Generator(VOCAB, seq_len=LENGTH)
    optimizer = torch.optim.Adam(generator.parameters(), lr=0.01)
    with pytest.raises(ValueError, match="batch"):
        mle_epoch(generator, optimizer, data[:63], batch_size=64)


def test_nan_parameter_raises_training_diverged(data: torch.Tensor) -> None:
    torch.manual_seed(0)
    generator = Generator(VOCAB, seq_len=LENGTH)
    with torch.no_grad():
        generator.W_out[0, 0] = float("nan")
    optimizer = torch.optim.Adam(generator.parameters(), lr=0.01)
    with pytest.raises(TrainingDiverged, match="learning rate") as info:
        mle_epoch(generator, optimizer, data[:256], batch_size=64)
    assert isinstance(info.value, FloatingPointError)
    assert "MLE loss" in str(info.value)


def test_mle_epoch_does_not_apply_a_non_finite_update(data: torch.Tensor) -> None:
    torch.manual_seed(0)
    generator = Generator(VOCAB, seq_len=LENGTH)
    with torch.no_grad():
        generator.b_out[3] = float("nan")  # poisons the loss of every batch, the first included
    before = {name: p.detach().clone() for name, p in generator.named_parameters()}
    optimizer = torch.optim.Adam(generator.parameters(), lr=0.01)
    with pytest.raises(TrainingDiverged):
        mle_epoch(generator, optimizer, data[:256], batch_size=64)
    for name in ("embedding", "W", "U", "b", "W_out"):
        assert torch.equal(getattr(generator, name).detach(), before[name]), f"{name} was overwritten"


def test_discriminator_round_does_not_apply_a_non_finite_update(data: torch.Tensor) -> None:
    torch.manual_seed(0)
    d = small_discriminator()
    with torch.no_grad():
        d.out.bias[0] = float("nan")
    before = [w.detach().clone() for w in d.conv_weights]
    optimizer = torch.optim.Adam(d.parameters(), lr=1e-3)
    with pytest.raises(TrainingDiverged):
        discriminator_round(d, optimizer, data[:128], uniform_tokens(128, seed=3), epochs=1)
    for w, w0 in zip(d.conv_weights, before):
        assert torch.equal(w.detach(), w0)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_check_finite_rejects_non_finite(value: float) -> None:
    with pytest.raises(TrainingDiverged):
        check_finite("loss", value)
    assert check_finite("loss", 1.25) == 1.25


def test_divergence_message_promises_no_checkpoint() -> None:
    # Before: "the last good checkpoint is kept", even where none had been saved; only the
    # caller (the pipeline's Checkpointer) knows what is on disk.
    with pytest.raises(TrainingDiverged) as info:
        check_finite("MLE loss", float("nan"))
    assert "MLE loss became nan: training diverged. Lower the learning rate" in str(info.value)
    assert "checkpoint" not in str(info.value)


def test_healthy_generator_weights_pass_the_bound(pretrained: dict) -> None:
    generator = pretrained["generator"]
    largest = max(p.detach().abs().max().item() for p in generator.parameters())
    assert 0.5 < largest < 10  # trained weights are O(1): far below the pipeline's default bound (1e3)
    check_weights_bounded(generator, 1e3)


def test_exploding_weight_raises_training_diverged_naming_value_and_bound() -> None:
    generator = Generator(VOCAB, seq_len=LENGTH)
    with torch.no_grad():
        generator.W_out[2, 5] = -2.6e8  # what adversarial.lr: 1.0e+8 reaches, every loss still finite
    with pytest.raises(TrainingDiverged) as info:
        check_weights_bounded(generator, 1e3, advice="Lower adversarial.lr.")
    assert str(info.value) == ("generator weight W_out reached |w| = 2.6e+08, above the bound 1000: training diverged "
                               "(the generator is exploding). Lower adversarial.lr.")


def test_non_finite_weight_raises_training_diverged() -> None:
    generator = Generator(VOCAB, seq_len=LENGTH)
    with torch.no_grad():
        generator.U[0, 0] = float("inf")
    with pytest.raises(TrainingDiverged, match="generator weight U became inf: training diverged. Lower the learning"):
        check_weights_bounded(generator, 1e3)


# -------------------------------------------------------------- discriminator


def test_discriminator_learns_real_from_random(oracle: Oracle, data: torch.Tensor) -> None:
    torch.manual_seed(1)
    d = small_discriminator()
    optimizer = torch.optim.Adam(d.parameters(), lr=1e-3)
    rng = seeded(1)
    metrics = {}
    for r in range(3):
        metrics = discriminator_round(d, optimizer, data, uniform_tokens(2000, seed=10 + r), epochs=2, rng=rng)
    assert 0.0 <= metrics["d_accuracy"] <= 1.0 and math.isfinite(metrics["d_loss"])
    assert metrics["d_accuracy"] > 0.85

    real = d.prob_real(oracle.sample(1000, seed=100))  # fresh, held out
    fake = d.prob_real(uniform_tokens(1000, seed=101))
    accuracy = ((real > 0.5).double().mean() + (fake < 0.5).double().mean()).item() / 2
    assert accuracy > 0.9
    assert real.mean().item() > fake.mean().item() + 0.4
    assert ((real > 0) & (real < 1)).all() and ((fake > 0) & (fake < 1)).all()


# ---------------------------------------------------------------- adversarial


def test_short_adversarial_run_moves_generator(pretrained: dict, oracle: Oracle, data: torch.Tensor) -> None:
    torch.manual_seed(2)
    generator = Generator(VOCAB, seq_len=LENGTH)
    generator.load_state_dict(pretrained["generator"].state_dict())
    d = small_discriminator()
    d_opt = torch.optim.Adam(d.parameters(), lr=1e-3)
    rng = seeded(2)
    discriminator_round(d, d_opt, data, generator.sample(2000, rng=rng), epochs=1, rng=rng)

    g_opt = torch.optim.Adam(generator.parameters(), lr=0.01)
    before = flat_params(generator)
    for _ in range(3):
        metrics = seqgan_generator_step(generator, d, g_opt, batch_size=32, n_rollouts=4, rng=rng)
        assert set(metrics) == {"g_loss", "mean_reward", "final_reward"}
        assert all(math.isfinite(v) for v in metrics.values())
        assert 0.0 < metrics["mean_reward"] < 1.0 and 0.0 < metrics["final_reward"] < 1.0
    after = flat_params(generator)
    assert not torch.equal(before, after)
    assert (after - before).abs().max().item() > 1e-3
    assert math.isfinite(nll_oracle(oracle, generator))


def test_policy_gradient_step_follows_rewards() -> None:
    """Rewarding only token 0 at every position raises its probability."""
    torch.manual_seed(3)
    generator = Generator(5, emb_dim=4, hidden_dim=4, seq_len=3)
    optimizer = torch.optim.SGD(generator.parameters(), lr=0.1)
    samples = generator.sample(256, rng=seeded(3))
    rewards = (samples == 0).float()
    probe = torch.zeros(1, 3, dtype=torch.long)
    before = generator.token_log_probs(probe).detach()
    loss = policy_gradient_step(generator, optimizer, samples, rewards, reduction="mean")
    assert math.isfinite(loss)
    after = generator.token_log_probs(probe).detach()
    assert (after > before).all()


def run_short_training(data: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """MLE epoch + D round + two g-steps from ``seed``; returns G params, D params, metrics."""
    torch.manual_seed(seed)
    generator = Generator(VOCAB, seq_len=LENGTH)
    d = small_discriminator()
    g_opt = torch.optim.Adam(generator.parameters(), lr=0.01)
    d_opt = torch.optim.Adam(d.parameters(), lr=1e-3)
    rng = seeded(seed)
    record = [mle_epoch(generator, g_opt, data[:640], rng=rng)]
    round_metrics = discriminator_round(d, d_opt, data[:320], generator.sample(320, rng=rng), epochs=1, rng=rng)
    record += list(round_metrics.values())
    for _ in range(2):
        record += list(seqgan_generator_step(generator, d, g_opt, batch_size=16, n_rollouts=3, rng=rng).values())
    return flat_params(generator), flat_params(d), record


def test_same_seeds_give_bit_identical_runs(data: torch.Tensor) -> None:
    g1, d1, m1 = run_short_training(data, seed=4)
    torch.manual_seed(12345)  # disturb the global RNG between the runs
    torch.rand(100)
    g2, d2, m2 = run_short_training(data, seed=4)
    assert torch.equal(g1, g2)
    assert torch.equal(d1, d2)
    assert m1 == m2
    g3, _, _ = run_short_training(data, seed=5)
    assert not torch.equal(g1, g3)


def test_generator_gradients_are_bit_identical_with_two_threads() -> None:
    """With two threads and a realistic vocabulary, copies of one generator (at other
    addresses) get bit-identical gradients. PyTorch's CPU backward of advanced indexing
    (`embedding[tokens]`) accumulates rows in an order that varies, which made seeded
    pipeline runs differ after their first generator update."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        torch.manual_seed(0)
        model = Generator(2000)
        samples = model.sample(64, rng=seeded(9))
        rewards = torch.rand(64, model.seq_len, generator=seeded(2))
        grads = []
        for _ in range(8):
            twin = copy.deepcopy(model)
            policy_gradient_step(twin, torch.optim.SGD(twin.parameters(), lr=0.0), samples, rewards)
            grads.append([p.grad for p in twin.parameters()])
    finally:
        torch.set_num_threads(threads)
    for other in grads[1:]:
        assert all(torch.equal(a, b) for a, b in zip(grads[0], other))


# ----------------------------------------------------------------- minibatches


def test_minibatches_drop_final_partial_batch() -> None:
    data = torch.arange(10_000).unsqueeze(1)
    batches = list(minibatches(data, 64, rng=seeded(0)))
    assert len(batches) == 156
    assert all(b.shape == (64, 1) for b in batches)
    seen = torch.cat(batches).flatten()
    assert seen.unique().numel() == 156 * 64  # no row twice
    assert not torch.equal(seen, torch.arange(156 * 64))  # shuffled


def test_minibatches_exact_multiple_and_too_small() -> None:
    data = torch.arange(128).unsqueeze(1)
    assert [len(b) for b in minibatches(data, 64)] == [64, 64]
    assert list(minibatches(data[:63], 64)) == []


def test_minibatches_seeded_shuffle_is_deterministic() -> None:
    data = torch.arange(1000).unsqueeze(1)
    a = torch.cat(list(minibatches(data, 50, rng=seeded(7))))
    b = torch.cat(list(minibatches(data, 50, rng=seeded(7))))
    c = torch.cat(list(minibatches(data, 50, rng=seeded(8))))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_discriminator_round_balances_real_and_generated(data: torch.Tensor) -> None:
    """More real sequences than negatives: each round uses a fresh subset of as many."""
    labels_seen: list[torch.Tensor] = []

    class Recording(Discriminator):
        def loss_from_logits(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            labels_seen.append(labels.clone())
            return super().loss_from_logits(logits, labels)

    d = Recording(VOCAB, seq_len=LENGTH, emb_dim=8, filter_sizes=(2,), num_filters=(4,))
    optimizer = torch.optim.Adam(d.parameters(), lr=1e-4)
    discriminator_round(d, optimizer, data[:640], uniform_tokens(128, 3), epochs=1, batch_size=32, rng=seeded(0))
    labels = torch.cat(labels_seen)
    assert len(labels) == 256 and labels.sum().item() == 128


def test_fused_adam_follows_torchs_adam_rule() -> None:
    """`adam` (the fused form the stages use) takes the same steps as torch's default Adam."""
    torch.manual_seed(0)
    d, twin = small_discriminator(), small_discriminator()
    twin.load_state_dict(d.state_dict())
    start = {k: v.clone() for k, v in d.state_dict().items()}
    d.eval(), twin.eval()  # no dropout: both compute the same function
    fused, reference = adam(d.parameters(), 1e-3), torch.optim.Adam(twin.parameters(), lr=1e-3)
    assert fused.defaults["fused"] and fused.defaults["betas"] == reference.defaults["betas"]
    tokens, labels = uniform_tokens(64, 3), torch.arange(64) % 2
    for _ in range(5):
        for model, optimizer in ((d, fused), (twin, reference)):
            optimizer.zero_grad()
            model.loss_from_logits(model(tokens), labels).backward()
            optimizer.step()
    for (name, a), b in zip(d.named_parameters(), twin.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    assert all(not torch.equal(v, start[k]) for k, v in d.state_dict().items() if k.startswith("conv_weights"))
