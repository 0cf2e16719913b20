"""The LeakGAN method on a tiny problem: its updates change the generator and D, keep
every score finite, never touch D from the generator's side and keep the leaked
extractor in sync; the worker's estimator raises the probability of the sequence its
reward favours; resuming from state_dicts continues bit-identically; the interleaved
pretraining and the settings' validation."""
from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from seqgan_core import Discriminator, randomness
from seqgan_core.leakgan import (LeakGANGenerator, discriminator_pass, generator_optimizers, leakgan_discriminator,
                                 pretrain_generator_epoch, rescaled_activation)
from seqgan_core.leakgan.objectives import manager_loss, worker_loss
from seqgan_core.methods import Common
from seqgan_core.methods.leakgan import LeakGAN, LeakGANSettings
from seqgan_core.train import _apply

pytestmark = pytest.mark.usefixtures("single_thread")

V, T = 6, 8
D_SIZES = {"d_emb_dim": 4, "d_filter_sizes": [1, 2, 3], "d_num_filters": [3, 4, 5]}
COMMON = Common(batch_size=8, grad_clip=5.0, d_batch_size=8, d_epochs=1, d_negatives=16)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def models(window: str = "sliding", seed: int = 0) -> tuple[LeakGANGenerator, torch.nn.Module]:
    g = LeakGANGenerator(V, seq_len=T, emb_dim=4, hidden_dim=5, goal_size=3, step_size=2, goal_window=window,
                         rng=seeded(seed), **D_SIZES)
    with randomness.global_draws_from(seeded(seed)):
        d = leakgan_discriminator(V, T, 4, [1, 2, 3], [3, 4, 5])
    return g, d


def real_data(n: int = 32) -> torch.Tensor:
    return torch.randint(0, V, (n, T), generator=seeded(99))


def method(window: str = "sliding", settings: LeakGANSettings | None = None, seed: int = 0) -> LeakGAN:
    g, d = models(window, seed)
    return LeakGAN(g, d, real_data(), settings or LeakGANSettings(lr=1e-2, d_lr=1e-3), COMMON, seeded(seed + 1))


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def changed(before: dict[str, torch.Tensor], module: torch.nn.Module, prefix: str = "") -> set[str]:
    return {k for k, v in module.state_dict().items() if k.startswith(prefix) and not torch.equal(before[k], v)}


VARIANTS = [
    ("sliding", {}),
    ("segment", {}),
    ("segment", {"rank_order": "first_appearance", "cosine_reduction": "batch_mean", "temperature_trick": "code"}),
    ("sliding", {"mle_every": 1}),
]


@pytest.mark.parametrize(("window", "options"), VARIANTS)
def test_updates_change_the_models_keep_scores_finite_and_spare_d(window: str, options: dict) -> None:
    m = method(window, LeakGANSettings(lr=1e-2, d_lr=1e-3, **options))
    g, d = m.generator, m.discriminator
    for batch in range(2):
        g_before, d_before = snapshot(g), snapshot(d)
        d.zero_grad(set_to_none=True)  # gradients of the last D round
        row = m.generator_step(batch)
        assert all(math.isfinite(v) for v in row.values()), row
        assert 0.0 < row["final_reward"] < 1.0
        assert ("mle_worker_nll" in row) == ("mle_every" in options)
        moved = changed(g_before, g)
        assert {"W_m", "W_goal", "goal_init" if window == "segment" else "b_goal"} <= moved  # manager
        assert {"W_out", "W_psi", "embedding"} <= moved  # worker
        assert not changed(g_before, g, "feature_extractor.") and not changed(d_before, d)  # D untouched
        assert all(p.grad is None for p in [*g.feature_extractor.parameters(), *d.parameters()])
        row = m.discriminator_step(batch)
        assert all(math.isfinite(v) for v in row.values()) and changed(d_before, d)
        for k, v in d.state_dict().items():  # the generator reads the D just trained
            assert torch.equal(g.state_dict()[f"feature_extractor.{k}"], v), k


def test_generator_optimizers_hold_manager_and_worker_only() -> None:
    g, _ = models()
    opt = generator_optimizers(g, 1e-3)
    held = {id(p) for o in opt for group in o.param_groups for p in group["params"]}
    assert held == {id(p) for p in g.manager_parameters() + g.worker_parameters()}
    assert held.isdisjoint(id(p) for p in g.feature_extractor.parameters())
    assert len(held) + sum(1 for _ in g.feature_extractor.parameters()) == sum(1 for _ in g.parameters())


def test_worker_estimator_raises_the_sequence_its_reward_favours() -> None:
    """Intrinsic reward +1 on every token of a known best sequence, -1 elsewhere: one
    worker update on the model's own samples raises that sequence's probability."""
    g, _ = models()
    best = torch.tensor([[1, 2, 3, 4, 5, 0, 1, 2]])
    optimizers = generator_optimizers(g, 1e-2)
    log_p_best = g.token_log_probs(best).sum().item()
    samples = torch.cat([g.sample(63, rng=seeded(3)), best])
    rewards = torch.where(samples == best, 1.0, -1.0)
    _apply(optimizers.worker, worker_loss(g.token_log_probs(samples), rewards), g.worker_parameters(), 5.0, "worker")
    assert g.token_log_probs(best).sum().item() > log_p_best + 0.1


@pytest.mark.parametrize(("order", "pull_on_best"), [("score", "strongest"), ("first_appearance", "weakest")])
def test_the_manager_pulls_hardest_on_ds_favourite_only_with_a_real_ranking(order: str, pull_on_best: str) -> None:
    """Four sequences with the same feature move and goal; D's values put the first one
    best. Every row's descent step turns its goal towards its move (the manager's sign);
    the real ranking pulls hardest on D's favourite, the code's dictionary order least."""
    values = torch.tensor([[0.9], [0.2], [0.6], [0.4]])
    features = torch.tensor([[0.0, 0.0], [0.5, 0.0], [1.0, 2.0]]).expand(4, 3, 2)  # move f2 - f0 = (1, 2)
    goals = torch.tensor([1.0, 0.0]).expand(4, 1, 2).clone().requires_grad_(True)
    loss = manager_loss(features, goals, [0], 2, rescaled_activation(values, order=order))
    (grad,) = torch.autograd.grad(loss, goals)
    move = torch.tensor([1.0, 2.0])
    before = F.cosine_similarity(goals.detach()[:, 0], move.expand(4, 2), dim=-1)
    after = F.cosine_similarity((goals.detach() - 0.5 * grad)[:, 0], move.expand(4, 2), dim=-1)
    assert (after > before).all()
    pull = grad.norm(dim=-1)[:, 0]
    assert (pull.argmax() if pull_on_best == "strongest" else pull.argmin()).item() == 0


def test_resume_from_state_dicts_is_bit_identical() -> None:
    def run(m: LeakGAN, batches: range) -> list[dict]:
        return [{**m.generator_step(b), **m.discriminator_step(b)} for b in batches]

    first = method("sliding", seed=5)
    run(first, range(2))
    saved = {"generator": snapshot(first.generator), "discriminator": snapshot(first.discriminator),
             "stateful": {k: copy.deepcopy(v.state_dict()) for k, v in first.stateful().items()},
             "rng": first.rng.get_state()}
    expected = run(first, range(2, 4))

    resumed = method("sliding", seed=11)  # other initial weights and streams: all must be restored
    resumed.generator.load_state_dict(saved["generator"])
    resumed.discriminator.load_state_dict(saved["discriminator"])
    for name, obj in resumed.stateful().items():
        obj.load_state_dict(saved["stateful"][name])
    resumed.rng.set_state(saved["rng"])
    assert run(resumed, range(2, 4)) == expected
    for a, b in [(first.generator, resumed.generator), (first.discriminator, resumed.discriminator)]:
        for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(x, y), name


@pytest.mark.parametrize("window", ["sliding", "segment"])
def test_interleaved_pretraining_round(window: str) -> None:
    g, d = models(window)
    real = real_data(64)
    d_optimizer = torch.optim.Adam(d.parameters(), lr=1e-3)
    optimizers = generator_optimizers(g, 1e-2)
    rng = seeded(7)
    d_row = discriminator_pass(g, d, d_optimizer, real, negatives=32, epochs=1, batch_size=16, rng=rng)
    assert all(math.isfinite(v) for v in d_row.values())
    assert all(torch.equal(g.feature_extractor.state_dict()[k], v) for k, v in d.state_dict().items())
    nll_before = -g.token_log_probs(real).mean().item()
    rows = [pretrain_generator_epoch(g, optimizers, real, batch_size=16, rng=rng) for _ in range(3)]
    assert all(math.isfinite(v) for row in rows for v in row.values())
    assert rows[-1]["manager_loss"] < rows[0]["manager_loss"]  # the goals learn to point along real moves
    assert -g.token_log_probs(real).mean().item() < nll_before  # the worker learns the data


def test_method_refuses_a_discriminator_without_the_pad_row() -> None:
    g, _ = models()
    with pytest.raises(ValueError, match="7 embedding rows"):
        LeakGAN(g, Discriminator(V, T, 4, [1, 2], [3, 3]), real_data(), LeakGANSettings(), COMMON, seeded(0))


@pytest.mark.parametrize(("field", "value"), [
    ("lr", 0.0), ("d_lr", -1.0), ("n_rollouts", 0), ("rescale_delta", 0.0), ("rank_order", "dictionary"),
    ("cosine_reduction", "mean"), ("temperature_trick", "1.5"), ("mle_every", -1),
])
def test_settings_name_the_bad_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        LeakGANSettings(**{field: value})


def test_settings_defaults_are_the_papers() -> None:
    s = LeakGANSettings()
    assert (s.lr, s.d_lr, s.n_rollouts, s.rescale_delta) == (1.5e-3, 5e-5, 4, 16.0)
    assert (s.rank_order, s.cosine_reduction, s.temperature_trick, s.mle_every) == ("score", "per_element", "none", 0)
    g = LeakGANGenerator(50)  # the paper's synthetic sizes
    assert (g.emb_dim, g.hidden_dim, g.goal_size, g.step_size, g.feature_size, g.goal_window) == (32, 32, 16, 4, 1720,
                                                                                                    "sliding")
