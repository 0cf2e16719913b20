"""How D's training step runs (seqgan_core.execution), on the CPU: the sync-free body that
a CUDA graph captures equals the eager step bit for bit (dropout included) and skips a
non-finite update on the device; every mode the device cannot run falls back to eager
with a note; `torch.compile` matches eager within float tolerance (slow: inductor's first
compile of even a tiny D takes ~60 s on this machine). The CUDA graph itself is checked
by tests/test_cuda.py on a GPU node."""
from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch

from seqgan_core import Discriminator, Generator, TrainingDiverged
from seqgan_core import execution
from seqgan_core.execution import EagerFallback, GraphedStep, resolve
from seqgan_core.methods import METHODS, Common
from seqgan_core.train import adam, balanced_round, discriminator_round

pytestmark = pytest.mark.usefixtures("single_thread")

VOCAB, LENGTH, BATCH = 20, 8, 8
CPU = torch.device("cpu")


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


POSITIVES = torch.randint(0, VOCAB, (64, LENGTH), generator=seeded(1))
NEGATIVES = torch.randint(0, VOCAB, (64, LENGTH), generator=seeded(2))


def make(dropout: float = 0.25) -> tuple[Discriminator, torch.optim.Optimizer]:
    torch.manual_seed(0)
    d = Discriminator(VOCAB, LENGTH, emb_dim=8, filter_sizes=(2, 3), num_filters=(8, 8), dropout=dropout)
    return d, adam(d.parameters(), 1e-2)


def trained(update_of, *, dropout: float = 0.25, rounds: int = 2) -> tuple[Discriminator, torch.optim.Optimizer, list, torch.Tensor]:
    """Rounds of D training with ``update_of(d, optimizer)``'s step, the global generator
    (dropout's) seeded: D, its optimiser, each round's metrics, the generator's end state."""
    d, optimizer = make(dropout)
    torch.manual_seed(5)
    rng = seeded(3)
    d.train()
    metrics = [balanced_round(POSITIVES, NEGATIVES, update_of(d, optimizer), epochs=2, batch_size=BATCH, rng=rng,
                              device=CPU) for _ in range(rounds)]
    return d, optimizer, metrics, torch.get_rng_state()


def eager(d, optimizer):
    return execution.discriminator_update(d, optimizer, (BATCH, LENGTH), "eager")


def uncaptured_body(d, optimizer):
    return GraphedStep(d, optimizer, (BATCH, LENGTH), capture=False)


def assert_same_training(a, b, *, atol: float = 0.0) -> None:
    (d1, o1, m1, rng1), (d2, o2, m2, rng2) = a, b
    for r1, r2 in zip(m1, m2):
        assert r1["d_accuracy"] == r2["d_accuracy"]
        assert r1["d_loss"] == pytest.approx(r2["d_loss"], abs=atol)
    assert torch.equal(rng1, rng2)  # the same dropout draws, in the same order
    for (name, w1), w2 in zip(d1.state_dict().items(), d2.state_dict().values()):
        torch.testing.assert_close(w1, w2, rtol=0.0, atol=atol, msg=name)
    for p1, p2 in zip(d1.parameters(), d2.parameters()):
        for key in o1.state[p1]:
            torch.testing.assert_close(o1.state[p1][key], o2.state[p2][key], rtol=0.0, atol=atol)


def test_the_graphs_body_trains_exactly_as_eager_with_dropout() -> None:
    """What `cuda_graph` captures (forward, loss, backward, clip, Adam with its found_inf
    flag, the step's one host read at the end), run uncaptured: eager's numbers bit for bit."""
    assert_same_training(trained(eager), trained(uncaptured_body))


@pytest.mark.parametrize("what", ["loss", "gradient norm"])
def test_the_graphs_body_skips_a_non_finite_update_and_raises_as_eager(what: str, monkeypatch: pytest.MonkeyPatch) -> None:
    d, optimizer = make()
    step = uncaptured_body(d, optimizer)
    step(POSITIVES[:BATCH], torch.ones(BATCH, dtype=torch.long))  # Adam's state exists from here on
    weights = {k: v.clone() for k, v in d.state_dict().items()}
    moments = [{k: v.clone() for k, v in optimizer.state[p].items()} for p in d.parameters()]
    if what == "loss":
        with torch.no_grad():
            d.out.bias.fill_(float("nan"))
        weights["out.bias"] = d.out.bias.detach().clone()
    else:
        real = execution.backward_and_clip
        monkeypatch.setattr(execution, "backward_and_clip", lambda *args: real(*args) * float("inf"))
    with pytest.raises(TrainingDiverged, match=f"discriminator loss{' gradient norm' if what != 'loss' else ''} became"):
        step(POSITIVES[:BATCH], torch.ones(BATCH, dtype=torch.long))
    for name, value in d.state_dict().items():  # the update was skipped on the device
        assert torch.equal(value, weights[name]) or (value.isnan().all() and weights[name].isnan().all()), name
    for p, before in zip(d.parameters(), moments):
        for key, value in optimizer.state[p].items():
            assert torch.equal(value, before[key]), key
    assert not hasattr(optimizer, "found_inf")  # an eager step of this optimiser is unaffected


def test_auto_is_eager_on_the_cpu_and_cuda_graph_on_cuda() -> None:
    assert resolve("auto", CPU) == "eager"
    assert resolve("auto", torch.device("cuda")) == "cuda_graph"
    assert resolve("eager", torch.device("cuda")) == "eager"
    with pytest.raises(ValueError, match="execution = 'graphs' is not allowed"):
        resolve("graphs", CPU)


@pytest.mark.parametrize("mode", ["cuda_graph", "compiled"])
def test_a_mode_the_device_cannot_run_falls_back_to_eager_with_a_note(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """cuda_graph off CUDA, and compiled where inductor has no compiler (simulated), train
    eagerly: the same numbers as eager, and one warning that says why."""
    monkeypatch.setattr(execution, "compiler_missing", lambda device: "no C++ compiler (g++) on PATH")
    with pytest.warns(EagerFallback, match="needs a CUDA device" if mode == "cuda_graph" else r"no C\+\+ compiler"):
        fallen_back = trained(lambda d, o: execution.discriminator_update(d, o, (BATCH, LENGTH), mode), rounds=1)
    assert_same_training(trained(eager, rounds=1), fallen_back)


def test_cuda_graph_with_an_unfused_optimiser_runs_eagerly_with_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    """The graph hands Adam a found_inf flag that only the fused kernel takes (the for-each
    Adam asserts it is None): with any other optimiser, even where the device could
    capture (simulated here), D's steps run eagerly and a note says why."""
    monkeypatch.setattr(execution, "resolve", lambda execution_, device: "cuda_graph")
    torch.manual_seed(0)
    d = Discriminator(VOCAB, LENGTH, 8, (1, 2), (4, 4))
    optimizer = torch.optim.Adam(d.parameters(), lr=1e-3)  # for-each, not fused
    with pytest.warns(EagerFallback, match="without fused=True"):
        update = execution.discriminator_update(d, optimizer, (BATCH, LENGTH), "cuda_graph")
    loss, correct = update(POSITIVES[:BATCH], torch.ones(BATCH, dtype=torch.long))
    assert math.isfinite(loss) and 0 <= correct <= BATCH


def test_a_round_puts_d_in_training_mode_before_it_builds_the_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """A captured step bakes in D's mode (`_fingerprint`): a round that met D in eval mode
    and built the step first would find it stale and re-capture it every round."""
    seen = []
    real = execution.discriminator_update
    monkeypatch.setattr(execution, "discriminator_update", lambda d, *args: seen.append(d.training) or real(d, *args))
    d, optimizer = make(0.25)
    d.eval()
    discriminator_round(d, optimizer, POSITIVES[:16], NEGATIVES[:16], epochs=1, batch_size=BATCH, rng=seeded(1))
    assert seen == [True]


def test_the_pipelines_option_reaches_every_discriminator_round(monkeypatch: pytest.MonkeyPatch) -> None:
    """params `execution` -> Common.execution -> each method's D round (here SeqGAN's)."""
    asked = []
    real = execution.discriminator_update
    monkeypatch.setattr(execution, "discriminator_update", lambda *args: asked.append(args[3]) or real(*args))
    torch.manual_seed(0)
    generator = Generator(VOCAB, 8, 8, LENGTH)
    d = Discriminator(VOCAB, LENGTH, 8, (1, 2), (4, 4))
    common = Common(batch_size=8, d_negatives=16, d_batch_size=8, d_epochs=1, execution="cuda_graph")
    method = METHODS["seqgan"](generator, d, POSITIVES, METHODS["seqgan"].Settings(), common, seeded(3))
    with pytest.warns(EagerFallback):
        method.discriminator_step(0)
    assert asked == ["cuda_graph"]
    with pytest.raises(ValueError, match="execution"):
        dataclasses.replace(common, execution="fast")


def test_a_captured_step_is_recaptured_when_what_it_baked_in_changes() -> None:
    """The fingerprint of a captured step: stable across steps, changed by a new optimiser
    state (a resumed checkpoint), a new learning rate, or eval mode."""
    d, optimizer = make()
    step = uncaptured_body(d, optimizer)
    step(POSITIVES[:BATCH], torch.ones(BATCH, dtype=torch.long))
    before = execution._fingerprint(d, optimizer)
    step(POSITIVES[BATCH : 2 * BATCH], torch.zeros(BATCH, dtype=torch.long))
    assert execution._fingerprint(d, optimizer) == before
    optimizer.load_state_dict(copy.deepcopy(optimizer.state_dict()))  # as a resume loads a checkpoint
    assert execution._fingerprint(d, optimizer) != before
    changed = execution._fingerprint(d, optimizer)
    optimizer.param_groups[0]["lr"] = 1e-3
    assert execution._fingerprint(d, optimizer) != changed


@pytest.mark.slow
def test_compiled_d_round_matches_eager_within_float_tolerance() -> None:
    """torch.compile (inductor, C++ on this CPU) of D's forward + loss, backward compiled by
    AOTAutograd: the same dropout masks (aten's random ops, `fallback_random`) and losses,
    weights and Adam moments within float rounding of eager's after 2 rounds. Slow: the
    first compile of even this tiny D takes ~60 s here (~12 s from a warm inductor cache)."""
    if execution.compiler_missing(CPU):
        pytest.skip(execution.compiler_missing(CPU))
    compiled = trained(lambda d, o: execution.discriminator_update(d, o, (BATCH, LENGTH), "compiled"))
    assert_same_training(trained(eager), compiled, atol=1e-5)


def test_discriminator_round_takes_the_option() -> None:
    d1, o1 = make()
    torch.manual_seed(5)
    a = discriminator_round(d1, o1, POSITIVES, NEGATIVES, epochs=1, batch_size=BATCH, rng=seeded(3), execution="auto")
    d2, o2 = make()
    torch.manual_seed(5)
    b = discriminator_round(d2, o2, POSITIVES, NEGATIVES, epochs=1, batch_size=BATCH, rng=seeded(3))
    assert a == b
