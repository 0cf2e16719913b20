"""The random-stream rule (seqgan_core.randomness): every named stream is a CPU
generator, every seeded draw is made on its generator's device and moved to where it is
used, so the same seeds give the same draws, and the same data, on every device.

On today's CPU-only CI these pin the rule itself; tests/test_cuda.py checks its effect on
a GPU (CPU/CUDA data identity, determinism, resume)."""
from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest
import torch

from conftest import REPO_ROOT, stage_env
from seqgan_core import Generator, randomness
from seqgan_core.train import minibatches

pytestmark = pytest.mark.usefixtures("single_thread")

# Every torch function / tensor method that draws random numbers.
RANDOM_CALLS = {
    "rand", "rand_like", "randn", "randn_like", "randint", "randint_like", "randperm", "multinomial",
    "bernoulli", "bernoulli_", "normal", "normal_", "uniform_", "random_", "exponential_", "geometric_",
    "cauchy_", "log_normal_", "poisson",
}
HELPER_MODULE = Path("seqgan_core/randomness.py")


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def rule_violations(source: str) -> list[str]:
    """Calls that bypass the helpers: a torch random function, any ``generator=`` keyword,
    or a torch.Generator built for a device."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        # `x.normal_(...)` on a tensor, `torch.rand(...)`. Not torch draws through a stream:
        # numpy's, the helpers themselves, and nn.init's (models are built on the CPU, from
        # the global generator that torch.manual_seed seeds, then moved).
        receiver = ast.unparse(func.value) if isinstance(func, ast.Attribute) else ""
        exempt = receiver.startswith(("np", "numpy")) or receiver in ("randomness", "nn.init", "torch.nn.init")
        if exempt:
            continue
        if name in RANDOM_CALLS:
            found.append(f"line {node.lineno}: {ast.unparse(node)[:100]}")
        elif any(k.arg == "generator" for k in node.keywords):
            found.append(f"line {node.lineno}: {ast.unparse(node)[:100]}")
        elif name == "Generator" and receiver == "torch" and (node.args or node.keywords):
            found.append(f"line {node.lineno}: {ast.unparse(node)[:100]} (a generator for a device)")
    return found


def test_rule_checker_catches_what_it_should() -> None:
    bad = ("torch.randperm(n, generator=rng)\nx.normal_(0, 1, generator=g)\ntorch.rand(3)\n"
           "torch.Generator(device=d).manual_seed(1)\nf(a, generator=g)\np.bernoulli_(0.5)\n")
    assert len(rule_violations(bad)) == 6
    ok = ("np.random.default_rng(0).permutation(5)\ntorch.Generator().manual_seed(1)\n"
          "randomness.uniform((2,), rng)\nGenerator(**config)\nnn.init.uniform_(w, -1, 1)\n")
    assert rule_violations(ok) == []


def test_no_random_draw_outside_the_helper_module() -> None:
    """Every seeded draw of seqgan_core and pipelines goes through seqgan_core.randomness."""
    offenders = {}
    for package in ("seqgan_core", "pipelines"):
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            if path.relative_to(REPO_ROOT) == HELPER_MODULE:
                continue
            if found := rule_violations(path.read_text(encoding="utf-8")):
                offenders[str(path.relative_to(REPO_ROOT))] = found
    assert not offenders, f"random draws outside {HELPER_MODULE}: {offenders}"


@pytest.mark.parametrize("device", ["cpu", "cuda", "cuda:1", "meta"])
def test_every_named_stream_is_a_cpu_generator(device: str) -> None:
    """A stage's streams (`StageContext.rng`) are CPU generators with the same numbers
    whatever device its models run on."""
    from pipelines.config import load_params
    from pipelines.runtime import StageContext

    params = load_params(REPO_ROOT / "params.yaml")
    on_device, on_cpu = (StageContext("stage", "synthetic", params, torch.device(d))
                         for d in (device, "cpu"))
    rng = on_device.rng("batches")
    assert rng.device == torch.device("cpu")
    assert torch.equal(torch.rand(5, generator=rng), torch.rand(5, generator=on_cpu.rng("batches")))


def test_named_streams_of_one_stage_differ() -> None:
    from pipelines.runtime import seeded_rng

    a, b = (torch.rand(4, generator=seeded_rng(0, "adversarial", name)) for name in ("batches", "eval"))
    assert not torch.equal(a, b)


def test_helpers_draw_on_the_generators_device_and_move_the_result() -> None:
    """A draw for a tensor on another device (here meta, the only other device a CPU-only
    machine has) takes the CPU generator's numbers and lands where it is asked to."""
    cases = [
        (lambda rng, dev: randomness.uniform((3, 4), rng, device=dev), lambda rng: torch.rand(3, 4, generator=rng)),
        (lambda rng, dev: randomness.randint(9, (6,), rng, device=dev), lambda rng: torch.randint(0, 9, (6,), generator=rng)),
        (lambda rng, dev: randomness.randperm(11, rng, device=dev), lambda rng: torch.randperm(11, generator=rng)),
    ]
    for draw, plain in cases:
        assert draw(seeded(0), "meta").device == torch.device("meta")
        assert torch.equal(draw(seeded(0), "cpu"), plain(seeded(0)))
        moved, state = seeded(0), seeded(0)
        draw(moved, "meta")
        plain(state)
        assert torch.equal(moved.get_state(), state.get_state())  # the same numbers were consumed


def test_normal_into_another_device_uses_the_cpu_draws() -> None:
    target = torch.empty(5, 3, device="meta")
    assert randomness.normal_(target, 0.0, 2.0, seeded(1)) is target
    here = randomness.normal_(torch.empty(5, 3), 0.0, 2.0, seeded(1))
    assert torch.equal(here, torch.empty(5, 3).normal_(0.0, 2.0, generator=seeded(1)))


def test_unseeded_draws_use_the_global_cpu_generator() -> None:
    torch.manual_seed(3)
    a = randomness.uniform((4,), device="meta")
    b = randomness.uniform((4,))
    torch.manual_seed(3)
    torch.rand(4)
    assert torch.equal(b, torch.rand(4)) and a.device.type == "meta"


def test_global_draws_from_leaves_the_cuda_generators_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """The block's global draws come from a seed of rng's, and only the CPU generator is
    seeded: torch.manual_seed would reseed every CUDA generator too (a GPU run's dropout
    stream), which fork_rng(devices=[]) does not restore. Seeding CUDA is recorded, not
    done, so this runs on a CPU-only machine."""
    reseeded: list[int] = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", reseeded.append)
    torch.default_generator.manual_seed(5)
    outside = torch.rand(3)
    torch.default_generator.manual_seed(5)
    with randomness.global_draws_from(seeded(7)):
        first = torch.rand(3)
    assert torch.equal(torch.rand(3), outside)  # the caller's stream did not move
    with randomness.global_draws_from(seeded(7)):
        assert torch.equal(torch.rand(3), first)  # the block's draws are a function of rng
    assert reseeded == []


def test_sampling_draws_the_numbers_of_a_step_by_step_draw() -> None:
    """`sample` draws all steps' uniforms at once: the same numbers, in the same order,
    as one draw per step (what it did before, and what the seeds of old runs gave)."""
    from seqgan_core.sampling import sample_log2_weights

    g = Generator(3000, seq_len=7, rng=seeded(0))
    prefix = torch.arange(2)
    for kwargs in ({}, {"prefix": prefix}, {"temperature": 0.8}):
        rng = seeded(5)
        fixed = 0 if "prefix" not in kwargs else 2
        scale = 1.4426950408889634 / kwargs.get("temperature", 1.0)
        out = torch.empty(40, 7, dtype=torch.long)
        out[:, :fixed] = prefix[:fixed]
        state, prev = g.initial_state(40), torch.zeros(40, dtype=torch.long)
        with torch.no_grad():
            for t in range(7):
                state = g.advance(prev, state)
                if t >= fixed:
                    log2_weights = torch.addmm(g.b_out * scale, state[0], g.W_out * scale)
                    out[:, t] = sample_log2_weights(log2_weights, 1, rng=rng).squeeze(1)
                prev = out[:, t]
        assert torch.equal(g.sample(40, rng=seeded(5), **kwargs), out)


def test_minibatch_order_lands_on_the_data_device() -> None:
    data = torch.arange(40).view(20, 2)
    on_meta = list(minibatches(data.to("meta"), 6, seeded(2)))
    assert len(on_meta) == 3 and all(b.device.type == "meta" for b in on_meta)
    assert torch.equal(torch.cat(list(minibatches(data, 6, seeded(2)))),
                       data[torch.randperm(20, generator=seeded(2))[:18]])


def test_oracle_data_do_not_depend_on_the_device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The oracle stage writes the same bytes whatever device the params resolve to (here
    the CPU and the meta device, on which nothing can be computed: the stage must not use
    it). Before the rule it built and sampled the oracle on the stage's device."""
    import pipelines.runtime as runtime
    from pipelines.stages import oracle as oracle_stage

    outputs = {}
    for device in ("cpu", "meta"):
        root = tmp_path / device
        root.mkdir()
        shutil.copyfile(REPO_ROOT / "profiles/tiny.yaml", root / "params.yaml")
        monkeypatch.chdir(root)
        for key, value in stage_env(root).items():
            monkeypatch.setenv(key, value)
        monkeypatch.setattr(runtime, "resolve_device", lambda spec, device=device: torch.device(device))
        oracle_stage.main()
        outputs[device] = data_contents(root / "data/synthetic")
    assert set(outputs["cpu"]) >= {"train.npy", "test.npy", "dataset.json", "oracle.pt"}
    assert outputs["meta"].keys() == outputs["cpu"].keys()
    for name, content in outputs["cpu"].items():
        other = outputs["meta"][name]
        if isinstance(content, dict):  # oracle.pt, compared by content (see data_contents)
            assert content["config"] == other["config"]
            assert all(torch.equal(v, other["state_dict"][k]) for k, v in content["state_dict"].items())
        else:
            assert other == content, name


def data_contents(folder: Path) -> dict[str, object]:
    """The bytes of each file of a data folder; a torch file's loaded payload instead,
    because `pipelines.runtime.save_torch` writes through a temporary file whose random
    name torch.save records inside the archive (so two saves of the same tensors differ
    in those bytes, on any device)."""
    return {p.name: torch.load(p, map_location="cpu", weights_only=True) if p.suffix == ".pt" else p.read_bytes()
            for p in sorted(folder.iterdir())}


def test_the_same_payload_saves_to_the_same_bytes(tmp_path: Path) -> None:
    """`dvc repro -f oracle` with the same params must not change the data version: a
    saved model's bytes depend on its contents only, not on the temporary file's name."""
    from pipelines.files import save_torch

    payload = {"config": {"vocab_size": 5}, "state_dict": {"w": torch.arange(6.0)}}
    save_torch(tmp_path / "a.pt", payload)
    save_torch(tmp_path / "a2.pt", payload)
    first = (tmp_path / "a.pt").read_bytes()
    save_torch(tmp_path / "a.pt", payload)
    assert (tmp_path / "a.pt").read_bytes() == first == (tmp_path / "a2.pt").read_bytes()
