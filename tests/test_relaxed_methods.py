"""RelGAN, GSGAN and TextGAN as adversarial-method classes: a few steps change the
generator and the discriminator and keep every score finite; the settings refuse bad
values by name; the schedule's horizon; and a run resumed from the state_dicts of
`stateful()`, the generator, the discriminator and the random streams continues
bit-identically to an uninterrupted one (CPU)."""
from __future__ import annotations

import copy
import math
import pytest
import torch

from seqgan_core import Discriminator, Generator
from seqgan_core.methods import Common
from seqgan_core.methods.gsgan import GSGAN, GSGANSettings
from seqgan_core.methods.relgan import RelGAN, RelGANSettings
from seqgan_core.methods.textgan import TextGAN, TextGANSettings
from seqgan_core.rmc import RelationalMemoryGenerator

pytestmark = pytest.mark.usefixtures("single_thread")

V, T, B = 12, 6, 8
SMALL_RELGAN_D = dict(d_emb_dim=8, num_rep=4, d_filters=6)
CASES = {  # name: (method, settings); a name ending in -rmc trains the RMC generator, the others an LSTM
    "relgan-rmc": (RelGAN, RelGANSettings(beta_max=100.0, **SMALL_RELGAN_D)),
    "relgan-lstm": (RelGAN, RelGANSettings(loss="standard", **SMALL_RELGAN_D)),
    "gsgan-lstm": (GSGAN, GSGANSettings()),
    "gsgan-seqgan_cnn": (GSGAN, GSGANSettings(discriminator="seqgan_cnn", loss="rsgan")),
    # L = 10, not the paper's 1,000: see test_textgans_paper_scale_saturates_the_soft_argmax
    "textgan": (TextGAN, TextGANSettings(z_dim=5, soft_argmax_scale=10.0)),
    "textgan-code": (TextGAN, TextGANSettings(z_dim=5, soft_argmax_scale=10.0, mmd_estimate="root",
                                              mmd_kernel="mixture", recon_loss="bce")),
}


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def common(**overrides) -> Common:
    values = dict(batch_size=B, lr=1e-3, d_lr=1e-3, grad_clip=5.0, d_batch_size=B, d_epochs=1, d_negatives=B, batches=20)
    return Common(**{**values, **overrides})


def build(case: str, rng_seed: int = 7):
    cls, settings = CASES[case]
    if case.endswith("-rmc"):
        generator = RelationalMemoryGenerator(V, emb_dim=6, head_size=4, seq_len=T, rng=seeded(1))
    else:
        generator = Generator(V, 6, 5, T, rng=seeded(1))
    torch.manual_seed(0)  # the SeqGAN D's initialisers use the global generator
    discriminator = Discriminator(V, T, emb_dim=6, filter_sizes=(1, 2, 3), num_filters=(4, 5, 3))
    real = torch.randint(0, V, (40, T), generator=seeded(2))
    return cls(generator, discriminator, real, settings, common(), seeded(rng_seed)), generator, discriminator


def adversarial_step(method, step: int, d_steps: int = 2) -> dict[str, float]:
    row = method.generator_step(step)
    for _ in range(d_steps):
        row.update(method.discriminator_step(step))
    return row


def checkpointed(method) -> dict:
    """What the pipeline's checkpoint holds: the generator, the discriminator the method
    trains (RelGAN's and GSGAN's LSTM D are their own) and `stateful()`."""
    return {"generator": method.generator, "discriminator": method.discriminator, **method.stateful()}


def trained_modules(method) -> dict[str, torch.nn.Module]:
    return {k: v for k, v in checkpointed(method).items() if isinstance(v, torch.nn.Module)}


@pytest.mark.parametrize("case", list(CASES))
def test_a_few_steps_change_both_models_and_keep_scores_finite(case: str) -> None:
    method, generator, _ = build(case)
    before = {name: [p.detach().clone() for p in m.parameters()] for name, m in
              (("generator", generator), ("discriminator", method.discriminator))}
    for step in range(3):
        row = adversarial_step(method, step)
        assert all(isinstance(v, float) and math.isfinite(v) for v in row.values()), row
    for name, model in (("generator", generator), ("discriminator", method.discriminator)):
        assert any(not torch.equal(a, b) for a, b in zip(before[name], model.parameters())), name
    assert generator.sample(4, rng=seeded(0)).shape == (4, T)


@pytest.mark.parametrize("case", list(CASES))
def test_resume_is_bit_identical_to_an_uninterrupted_run(case: str) -> None:
    method, _, _ = build(case)
    for step in range(4):
        adversarial_step(method, step)
    uninterrupted = {k: copy.deepcopy(m.state_dict()) for k, m in trained_modules(method).items()}

    first, _, _ = build(case)
    for step in range(2):
        adversarial_step(first, step)
    saved = {k: copy.deepcopy(v.state_dict()) for k, v in checkpointed(first).items()}
    rng_state, torch_state = first.rng.get_state(), torch.get_rng_state()

    resumed, _, _ = build(case, rng_seed=123)  # a fresh process: new objects, then the checkpoint
    for name, obj in checkpointed(resumed).items():
        obj.load_state_dict(saved[name])
    resumed.rng.set_state(rng_state)
    torch.set_rng_state(torch_state)
    for step in range(2, 4):
        adversarial_step(resumed, step)
    for name, module in trained_modules(resumed).items():
        state = module.state_dict()
        assert state.keys() == uninterrupted[name].keys()
        for key, value in state.items():
            assert torch.equal(value, uninterrupted[name][key]), (name, key)


def test_relgans_inverse_temperature_over_the_run_or_the_codes_5000_steps() -> None:
    method, _, _ = build("relgan-rmc")  # beta_max 100, anneal_steps None: the run's 20 steps
    assert method.relaxation(0)[0] == 1.0
    assert method.relaxation(10)[0] == pytest.approx(10.0)
    assert method.relaxation(20) == (pytest.approx(100.0), {"beta": pytest.approx(100.0)})
    code = RelGAN(method.generator, None, method.real, RelGANSettings(beta_max=100.0, anneal_steps=5000,
                  **SMALL_RELGAN_D), common(batches=3000), seeded(0))
    assert code.relaxation(3000)[0] == pytest.approx(100**0.6)


def test_the_paper_profiles_beta_max_1_keeps_beta_at_1() -> None:
    method, generator, _ = build("relgan-rmc")
    paper = RelGAN(generator, None, method.real, RelGANSettings(**SMALL_RELGAN_D), common(), seeded(0))
    assert {paper.relaxation(step)[0] for step in (0, 7, 20, 50)} == {1.0}


@pytest.mark.parametrize("cls, field, value", [
    (RelGANSettings, "beta_max", 0.5), (RelGANSettings, "schedule", "cosine"), (RelGANSettings, "loss", "wgan-gp"),
    (RelGANSettings, "anneal_steps", 0), (RelGANSettings, "anneal_steps", 2.5), (RelGANSettings, "num_rep", 5),
    (RelGANSettings, "d_dropout", 1.0), (GSGANSettings, "tau_end", 0.0), (GSGANSettings, "discriminator", "cnn"),
    (TextGANSettings, "mmd_sigma", -1.0), (TextGANSettings, "mmd_estimate", "unbiased"),
    (TextGANSettings, "lambda_mmd", -0.1), (TextGANSettings, "z_dim", 0),
])
def test_settings_name_the_bad_field(cls, field: str, value) -> None:
    with pytest.raises(ValueError, match=field):
        cls(**{field: value})


def test_a_method_refuses_a_generator_kind_it_does_not_train() -> None:
    """RelGAN trains either kind (its generator is what the pipeline pretrained,
    `generator.kind`); GSGAN and TextGAN drive the LSTM's cell and state."""
    method, _, discriminator = build("textgan")
    rmc = RelationalMemoryGenerator(V, emb_dim=6, head_size=4, seq_len=T, rng=seeded(1))
    for cls, settings in ((GSGAN, GSGANSettings()), (TextGAN, TextGANSettings())):
        with pytest.raises(TypeError, match=f"{cls.name} trains lstm generators, got a rmc"):
            cls(rmc, discriminator, method.real, settings, common(), seeded(0))


def test_textgans_paper_scale_saturates_the_soft_argmax() -> None:
    """At L = 1,000 the soft-argmax rows are one-hots to float32 unless two logits lie
    within ~0.01, so the MMD's gradient reaching this small generator underflows (a
    property of the paper's setting, reported in the method's docstring); scores stay finite."""
    method, generator, discriminator = build("textgan")
    paper = TextGAN(generator, discriminator, method.real, TextGANSettings(z_dim=5), common(), seeded(3))
    with torch.no_grad():
        _, rows = paper._fake()
    assert rows.max(dim=2).values.min() > 0.999
    for step in range(2):
        assert all(math.isfinite(v) for v in adversarial_step(paper, step).values())
