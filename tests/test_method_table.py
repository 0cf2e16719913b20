"""The method table (seqgan_core.methods): every method runs through the one interface the
pipeline's loop uses, changes the generator with finite metrics, and resumes bit-identically
from what `stateful()` names; settings ranges reach the params schema."""
from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from seqgan_core import Discriminator, Generator
from seqgan_core.leakgan import LeakGANGenerator, leakgan_discriminator
from seqgan_core.methods import METHODS, Common, check_bounds
from seqgan_core.rmc import RelationalMemoryGenerator

pytestmark = pytest.mark.usefixtures("single_thread")

VOCAB, LENGTH = 16, 6
COMMON = Common(batches=4, batch_size=8, d_negatives=16, d_batch_size=8, d_epochs=1)
# Every method on every generator kind it trains (RelGAN: the RMC of its paper, and the LSTM;
# LeakGAN's generator: LeakGAN and continued MLE).
TRAINED = [(name, kind) for name, cls in METHODS.items() if cls.trains for kind in cls.generator_kinds]

# Settings other than the defaults, where the paper's sizes are heavy for this problem (the
# methods own discriminators and the critic at these sizes cost seconds per step) or where
# the paper's value leaves nothing to test: TextGAN's L = 1,000 saturates the soft-argmax
# in float32, so no gradient would reach this small generator (tests/test_relaxed_methods.py).
SMALL = {
    "seqgan": {"critic": {"emb_dim": 8, "hidden_dim": 8, "num_layers": 1}},
    "rankgan": {"reference_size": 4},
    "gsgan": {"d_emb_dim": 8, "d_hidden": 8},
    "textgan": {"z_dim": 8, "soft_argmax_scale": 10.0},
    "relgan": {"d_emb_dim": 8, "num_rep": 4, "d_filters": 6},
}


REAL = Generator(VOCAB, 8, 8, LENGTH, init_std=1.0, rng=torch.Generator().manual_seed(1)).sample(
    64, rng=torch.Generator().manual_seed(2))


def settings_of(name: str):
    """`name`'s default settings with `SMALL`'s overrides (nested ones merged)."""
    cls = METHODS[name].Settings
    values = dataclasses.asdict(cls())
    for key, value in SMALL.get(name, {}).items():
        values[key] = {**values[key], **value} if isinstance(value, dict) else value
    return cls.from_dict(values)


def make(name: str, kind: str = "lstm"):
    """`name`'s method on a tiny problem, seeded."""
    torch.manual_seed(0)
    if kind == "rmc":
        generator = RelationalMemoryGenerator(VOCAB, emb_dim=8, head_size=4, seq_len=LENGTH)
    elif kind == "leakgan":
        generator = LeakGANGenerator(VOCAB, LENGTH, 8, 8, goal_size=4, step_size=2, d_emb_dim=8,
                                     d_filter_sizes=(1, 2, 3), d_num_filters=(4, 4, 4))
    else:
        generator = Generator(VOCAB, 8, 8, LENGTH)
    # LeakGAN's generator reads a D with the pad row of leaked prefixes.
    discriminator = (leakgan_discriminator if kind == "leakgan" else Discriminator)(VOCAB, LENGTH, 8, (1, 2, 3),
                                                                                    (4, 4, 4))
    cls = METHODS[name]
    return cls(generator, discriminator, REAL, settings_of(name), COMMON, torch.Generator().manual_seed(3))


def run(method, batches: range) -> list[dict[str, float]]:
    rows = []
    for batch in batches:
        row = method.generator_step(batch)
        row.update(method.discriminator_step(batch))
        rows.append(row)
    return rows


def test_table_keys_are_the_method_names_and_settings_are_complete() -> None:
    for name, cls in METHODS.items():
        assert cls.name == name
        check_bounds(cls.Settings())  # the paper's defaults are inside their own ranges


@pytest.mark.parametrize("name, kind", TRAINED)
def test_each_method_changes_the_generator_with_finite_metrics(name: str, kind: str) -> None:
    method = make(name, kind)
    before = copy.deepcopy(method.generator.state_dict())
    for row in run(method, range(2)):
        assert row and all(torch.isfinite(torch.tensor(v)) for v in row.values()), row
    assert any(not torch.equal(before[k], v) for k, v in method.generator.state_dict().items())
    assert ("d_loss" in row) == METHODS[name].trains_discriminator


@pytest.mark.parametrize("name, kind", TRAINED)
def test_resume_from_stateful_parts_is_bit_identical(name: str, kind: str) -> None:
    whole = make(name, kind)
    run(whole, range(2))
    saved = {k: copy.deepcopy(v.state_dict()) for k, v in
             {"generator": whole.generator, "discriminator": whole.discriminator, **whole.stateful()}.items()}
    rng_state, torch_state = whole.rng.get_state(), torch.get_rng_state()
    run(whole, range(2, 4))

    # Built as the stage builds it on a re-run (same seed: draws made at construction, such
    # as PG-BLEU's references, repeat), then brought to batch 2 by the checkpoint alone.
    resumed = make(name, kind)
    for key, obj in {"generator": resumed.generator, "discriminator": resumed.discriminator,
                     **resumed.stateful()}.items():
        obj.load_state_dict(saved[key])
    resumed.rng.set_state(rng_state)
    torch.set_rng_state(torch_state)
    run(resumed, range(2, 4))
    for (key, a), b in zip(whole.generator.state_dict().items(), resumed.generator.state_dict().values()):
        assert torch.equal(a, b), key


def test_check_bounds_names_the_field() -> None:
    settings_class = METHODS["pg_bleu"].Settings
    with pytest.raises(ValueError, match=r"order = 9 must be <= 5"):
        settings_class(order=9)
    with pytest.raises(ValueError, match="must be a finite number"):
        Common(lr=float("inf"))


def test_settings_ranges_reach_the_params_schema() -> None:
    from pipelines.config import ParamsError, load_params, parse_params

    raw = load_params().model_dump()
    raw["methods"]["pg_bleu"]["order"] = 9
    raw["methods"]["seqgan"]["rollout"]["n_rollouts"] = 0
    with pytest.raises(ParamsError) as refused:
        parse_params(raw)
    assert "methods.pg_bleu.order: value 9 is not allowed" in str(refused.value)
    assert "methods.seqgan.rollout.n_rollouts: value 0 is not allowed" in str(refused.value)
    for name, cls in METHODS.items():  # every field of every method's settings is a params key
        assert set(getattr(load_params().methods, name).model_fields) == {f.name for f in dataclasses.fields(cls.Settings)}
