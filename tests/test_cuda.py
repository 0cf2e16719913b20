"""CUDA checks, run on a GPU node by `make gpu-check` (`pytest -m cuda`); skipped where
CUDA is absent, so the CPU suite and CI are unchanged.

* every stage of the tiny profile with `device: cuda`, and a forced re-run of
  `adversarial` giving the same model (seeded determinism of a stage);
* seeded determinism of the training steps themselves (MLE, D round with dropout, g-step);
* the same seeds give the same `data/` on `device: cpu` and `device: cuda`;
* sampling, rollout rewards and the policy-gradient estimator correct on CUDA (against
  exact values on enumerable problems, as tests/test_sampling.py, test_rollout.py and
  test_policy_gradient.py do on the CPU);
* a killed adversarial run on CUDA resumes bit-identically to an uninterrupted one
  (the pipeline's `execution: auto` runs D's steps as CUDA graphs there);
* D's training step as one CUDA graph (`execution: cuda_graph`) and compiled
  (`execution: compiled`) against eager: the same dropout draws, losses and weights
  within float tolerance; a non-finite step skipped in the graph and raised; a graph
  re-captured after a checkpoint is loaded; and a timing sanity check (the graph is no
  slower than eager at the paper's D and batch).
"""
from __future__ import annotations

import copy
import importlib.util
import itertools
import json
import math
import re
import shutil
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import copy_project, dvc, stage_env
from seqgan_core import Discriminator, Generator, Oracle, TrainingDiverged, execution, rollout, sampling
from seqgan_core.objectives import policy_gradient_loss
from seqgan_core.sampling import sample_categorical
from seqgan_core.train import adam, discriminator_round, mle_epoch, seqgan_generator_step

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is absent")]

CUDA = torch.device("cuda")
SIGMAS = 5.0


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)  # the project's rule: every stream is a CPU generator


def set_device(root: Path, device: str) -> None:
    params = root / "params.yaml"
    text, count = re.subn(r"(?m)^device:\s*\S+", f"device: {device}", params.read_text())
    assert count == 1
    params.write_text(text)


def tree_contents(folder: Path) -> dict[str, object]:
    """Every file under ``folder`` by relative path: its bytes, or for a torch file its
    loaded payload (see tests/test_rng_rule.py's data_contents for why). DVC's
    .gitignore files are left out: they list outputs in the order the stages ran."""
    return {str(p.relative_to(folder)): torch.load(p, map_location="cpu", weights_only=True) if p.suffix == ".pt" else p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".gitignore"}


def assert_same_payload(a: object, b: object, where: str) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            assert_same_payload(a[key], b[key], f"{where}/{key}")
    else:
        assert a == b, where


# ------------------------------------------------------------------ the pipeline


PIPELINE_PACKAGES = ("pydantic", "dvc", "mlflow", "great_expectations")


def pipeline_stack_missing() -> str | None:
    """Why the pipeline cannot run under this python, or None: a GPU image that has its own
    CUDA torch but not the project's other packages still runs every core check here."""
    absent = [name for name in PIPELINE_PACKAGES if importlib.util.find_spec(name) is None]
    if not (Path(sys.executable).parent / "dvc").exists():
        absent.append(f"the dvc command beside {sys.executable}")
    return f"the pipeline's packages are absent here: {', '.join(absent)} (see benchmarks/README.md, " \
           "make gpu-check)" if absent else None


@pytest.fixture(scope="module")
def cuda_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny pipeline reproduced with `device: cuda`."""
    missing = pipeline_stack_missing()
    if missing:
        pytest.skip(missing)
    root = copy_project(tmp_path_factory.mktemp("cuda") / "repo")
    set_device(root, "cuda")
    dvc(root, "repro")
    return root


def test_every_stage_runs_on_cuda(cuda_repo: Path) -> None:
    assert "up to date" in dvc(cuda_repo, "status", "dvc.yaml").stdout.lower()
    for experiment in ("synthetic", "real"):
        for model in ("generator_mle.pt", "discriminator_pre.pt", "generator_adv.pt"):
            assert (cuda_repo / "models" / experiment / model).exists()
        metrics = json.loads((cuda_repo / "metrics" / experiment / "evaluate.json").read_text())
        numbers = [v for v in _leaves(metrics) if isinstance(v, float)]
        assert numbers and all(math.isfinite(v) for v in numbers)


def _leaves(tree: object):
    if isinstance(tree, dict):
        for value in tree.values():
            yield from _leaves(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from _leaves(value)
    else:
        yield tree


def test_a_forced_rerun_of_a_stage_on_cuda_gives_the_same_model(cuda_repo: Path, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    shutil.copytree(cuda_repo, root, symlinks=True)
    path = "models/synthetic/generator_adv.pt"
    before = torch.load(root / path, map_location="cpu", weights_only=True)
    dvc(root, "repro", "--force", "--single-item", "adversarial@synthetic")
    assert_same_payload(torch.load(root / path, map_location="cpu", weights_only=True), before, path)


def test_data_are_the_same_on_cpu_and_cuda(cuda_repo: Path, tmp_path: Path) -> None:
    """Same seeds, same data, any device: data/ of a `device: cpu` run equals the CUDA run's."""
    cpu = copy_project(tmp_path / "cpu")
    set_device(cpu, "cpu")
    dvc(cpu, "repro", "oracle", "preprocess")
    ours, theirs = tree_contents(cpu / "data"), tree_contents(cuda_repo / "data")
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert_same_payload(theirs[name], ours[name], f"data/{name}")


def test_resume_on_cuda_is_bit_identical(cuda_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture) -> None:
    """A killed adversarial run on CUDA resumes to exactly the uninterrupted run's result:
    the checkpoint must carry every random state the run draws from (named CPU streams,
    torch's CPU state, and the CUDA state dropout draws from)."""
    from test_resume import Crash, crash_at, train

    root = tmp_path / "repo"
    shutil.copytree(cuda_repo, root, symlinks=True)
    monkeypatch.chdir(root)
    for key, value in stage_env(root).items():
        monkeypatch.setenv(key, value)
    whole = train(root / "whole")
    assert next(whole.parameters()).device.type == "cuda"
    with monkeypatch.context() as patch:
        crash_at(patch, 3)
        with pytest.raises(Crash):
            train(root / "resumed")
    resumed = train(root / "resumed")
    assert "resuming from" in capsys.readouterr().err
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert (root / "whole/curve.csv").read_text() == (root / "resumed/curve.csv").read_text()


# ------------------------------------------------------------------ determinism and data


def _train_a_little(seed: int) -> dict[str, torch.Tensor]:
    """MLE epoch, a D round (dropout on the CUDA generator) and a g-step, all on CUDA."""
    torch.manual_seed(seed)
    oracle = Oracle(seed=1, vocab_size=500, emb_dim=16, hidden_dim=16, seq_len=12, device=CUDA)
    G = Generator(500, 16, 16, 12, rng=seeded(2)).to(CUDA)
    D = Discriminator(500, 12, emb_dim=16, filter_sizes=(2, 3, 5), num_filters=(20, 20, 20)).to(CUDA)
    g_opt, d_opt = adam(G.parameters(), 0.01), adam(D.parameters(), 1e-3)
    rng = seeded(3)
    mle_epoch(G, g_opt, oracle.sample(640, seed=4), rng=rng)
    discriminator_round(D, d_opt, oracle.sample(512, seed=5), G.sample(512, rng=rng), epochs=2, rng=rng)
    seqgan_generator_step(G, D, g_opt, batch_size=32, n_rollouts=4, rng=rng)
    return {**{f"G.{k}": v.cpu() for k, v in G.state_dict().items()}, **{f"D.{k}": v.cpu() for k, v in D.state_dict().items()}}


def test_seeded_training_steps_are_deterministic_on_cuda() -> None:
    a, b = _train_a_little(0), _train_a_little(0)
    for name in a:
        assert torch.equal(a[name], b[name]), name
    c = _train_a_little(1)  # another global seed (D's init, dropout masks): another D
    assert not all(torch.equal(a[k], c[k]) for k in a if k.startswith("D."))


def test_oracle_samples_are_the_same_on_cpu_and_cuda() -> None:
    cpu = Oracle(seed=3, vocab_size=5000)
    gpu = Oracle(seed=3, vocab_size=5000, device=CUDA)
    on_gpu = gpu.sample(2000, seed=4)
    assert on_gpu.device.type == "cuda"
    assert torch.equal(on_gpu.cpu(), cpu.sample(2000, seed=4))


def test_cuda_models_consume_the_seeded_cpu_streams_like_cpu_models() -> None:
    """The same draws are taken from a stream whatever device the model is on."""
    states = []
    for device in ("cpu", CUDA):
        model = Generator(3000, rng=seeded(0)).to(device)
        rng = seeded(1)
        model.sample(100, rng=rng)
        rollout(model, lambda tokens: tokens[:, -1].float() / 3000, model.sample(8, rng=seeded(2)), 4, rng=rng)
        states.append(rng.get_state())
    assert torch.equal(states[0], states[1])


# ------------------------------------------------------------------ correctness on CUDA

V, T = 3, 4


def all_sequences() -> torch.Tensor:
    return torch.tensor(list(itertools.product(range(V), repeat=T)), dtype=torch.long)


class CudaTable:
    """Duck-typed D on CUDA: a fixed P(real) in (0, 1) for each of the V^T sequences
    (an index by arithmetic: CUDA has no integer matmul)."""

    def __init__(self, table: torch.Tensor) -> None:
        self.table = table.to(CUDA)
        self.powers = (V ** torch.arange(T - 1, -1, -1)).to(CUDA)

    def prob_real(self, tokens: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        return self.table[(tokens.to(CUDA) * self.powers).sum(dim=-1)]


def tiny_problem(seed: int = 0) -> tuple[Generator, CudaTable, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    generator = Generator(V, emb_dim=4, hidden_dim=4, seq_len=T, init_std=1.0)
    table = 0.01 + 0.98 * torch.rand(V**T, generator=seeded(seed + 100))
    with torch.no_grad():
        probs = generator.token_log_probs(all_sequences()).double().sum(dim=1).exp()
    return generator.to(CUDA), CudaTable(table), probs, table.double()


def test_sampling_frequencies_on_cuda() -> None:
    """The blocked inverse-CDF sampler on CUDA follows the softmax: one draw per row over
    2,048 ids is what takes the blocked path (`sampling._blocked`; Generator.sample at
    V = 5,000 does), many draws per row would take the one-level one."""
    logits = torch.randn(1, 2048, generator=seeded(0)) * 2
    probs = torch.softmax(logits.double(), dim=-1).flatten()
    rows = logits.to(CUDA).expand(100_000, -1).contiguous()
    assert sampling._blocked(rows, 1)
    ids = sample_categorical(rows, 1, rng=seeded(1)).cpu().flatten()
    groups = torch.arange(2048) // 64  # 32 groups of ids: enough counts per cell
    group_probs = torch.zeros(32, dtype=torch.float64).index_add_(0, groups, probs)
    freq = torch.bincount(groups[ids], minlength=32).double() / ids.numel()
    std = torch.sqrt(group_probs * (1 - group_probs) / ids.numel())
    assert ((freq - group_probs).abs() <= SIGMAS * std + 1e-9).all()


def test_rollout_rewards_match_exact_q_on_cuda() -> None:
    generator, table, probs, d = tiny_problem()
    sequences = all_sequences()
    n = 3000
    rewards = rollout(generator, table, sequences, n_rollouts=n, rng=seeded(1)).cpu().double()
    assert torch.equal(rewards[:, T - 1], d)
    for t in range(1, T):
        match = (sequences[:, None, :t] == sequences[None, :, :t]).all(dim=-1)  # (rows, all)
        weights = match.double() * probs
        weights = weights / weights.sum(dim=1, keepdim=True)
        q = weights @ d
        var = (weights @ d.square() - q.square()).clamp(min=0.0)
        se = torch.sqrt(var / n)
        assert ((rewards[:, t - 1] - q).abs() <= SIGMAS * se + 1e-6).all(), f"t = {t}"


def test_policy_gradient_estimator_matches_exact_gradient_on_cuda() -> None:
    generator, table, _, d = tiny_problem()
    params = list(generator.parameters())
    sequences = all_sequences().to(CUDA)
    p = generator.token_log_probs(sequences).sum(dim=1).exp()
    exact = torch.cat([g.reshape(-1) for g in torch.autograd.grad((p * table.table).sum(), params)]).double().cpu()
    rng = seeded(2)
    K, B, N = 200, 64, 8
    estimates = []
    for _ in range(K):
        samples = generator.sample(B, rng=rng)
        rewards = rollout(generator, table, samples, N, rng=rng)
        loss = policy_gradient_loss(generator.token_log_probs(samples), rewards, reduction="sum")
        estimates.append(-torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)]) / B)
    batches = torch.stack(estimates).double().cpu()
    mean, se = batches.mean(dim=0), batches.std(dim=0) / K**0.5
    assert ((mean - exact).abs() <= SIGMAS * se + 1e-3).all()
    assert torch.nn.functional.cosine_similarity(mean, exact, dim=0).item() > 0.9


# ------------------------------------------------------------------ D's step as a CUDA graph / compiled

D_SHAPE = (64, 12)  # the batch (64) of every D round below, sequences of length 12


def _d_rounds(mode: str, *, rounds: int = 2, reload_between: bool = True):
    """Rounds of D training on CUDA with dropout, the step run as ``mode``; between the rounds
    the optimiser's state is reloaded from a copy, as a resumed run does (a graph must be
    re-captured then). Returns D, its optimiser, the metrics and the CUDA generator's state."""
    torch.manual_seed(0)
    d = Discriminator(500, 12, emb_dim=16, filter_sizes=(2, 3, 5), num_filters=(20, 20, 20)).to(CUDA)
    optimizer = adam(d.parameters(), 1e-3)
    real = torch.randint(0, 500, (640, 12), generator=seeded(1))
    fake = torch.randint(0, 500, (640, 12), generator=seeded(2)).to(CUDA)
    rng, metrics, steps = seeded(3), [], []
    for r in range(rounds):
        if r and reload_between:
            optimizer.load_state_dict(copy.deepcopy(optimizer.state_dict()))
        metrics.append(discriminator_round(d, optimizer, real, fake, epochs=2, rng=rng, execution=mode))
        steps.append(execution._GRAPHED.get(optimizer, {}).get(D_SHAPE))
    return d, optimizer, metrics, torch.cuda.get_rng_state(), steps


def _assert_close_training(a, b, atol: float) -> None:
    (d1, o1, m1, rng1, _), (d2, o2, m2, rng2, _) = a, b
    assert torch.equal(rng1, rng2), "another number of dropout draws"
    for r1, r2 in zip(m1, m2):
        assert r1["d_loss"] == pytest.approx(r2["d_loss"], abs=atol)
        assert abs(r1["d_accuracy"] - r2["d_accuracy"]) <= 1 / 1280
    for (name, w1), w2 in zip(d1.state_dict().items(), d2.state_dict().values()):
        torch.testing.assert_close(w1, w2, rtol=0.0, atol=atol, msg=name)
    for p1, p2 in zip(d1.parameters(), d2.parameters()):
        for key in o1.state[p1]:
            torch.testing.assert_close(o1.state[p1][key], o2.state[p2][key], rtol=0.0, atol=atol)


def test_cuda_graph_d_rounds_equal_eager_and_recapture_after_a_reload() -> None:
    """The captured step runs eager's kernels: the same dropout masks (the CUDA generator
    advanced alike), losses and weights within float tolerance (expected: equal)."""
    graphed = _d_rounds("cuda_graph")
    steps = graphed[4]
    assert all(step is not None and step.graph is not None for step in steps), "the step was never captured"
    assert steps[0] is not steps[1], "a reloaded optimiser state must be re-captured"
    _assert_close_training(_d_rounds("eager"), graphed, atol=1e-6)
    again = _d_rounds("cuda_graph", reload_between=False)[4]
    assert again[0] is again[1], "the same optimiser state: the same captured step"


def test_cuda_graph_skips_a_non_finite_step_and_raises() -> None:
    d, optimizer, *_ = _d_rounds("cuda_graph", rounds=1)
    with torch.no_grad():
        d.out.bias.fill_(float("nan"))  # in place: the captured step reads it as it is
    weights = {k: v.clone() for k, v in d.state_dict().items()}
    moments = {id(p): {k: v.clone() for k, v in optimizer.state[p].items()} for p in d.parameters()}
    real = torch.randint(0, 500, (640, 12), generator=seeded(4))
    with pytest.raises(TrainingDiverged, match="discriminator loss became nan"):
        discriminator_round(d, optimizer, real, real.to(CUDA), epochs=1, rng=seeded(5), execution="cuda_graph")
    for name, value in d.state_dict().items():
        assert torch.equal(value.nan_to_num(7.0), weights[name].nan_to_num(7.0)), name
    for p in d.parameters():
        for key, value in optimizer.state[p].items():
            assert torch.equal(value, moments[id(p)][key]), key


def test_compiled_d_rounds_match_eager_on_cuda() -> None:
    """torch.compile with inductor's CUDA graphs: dropout by aten's random ops (the same
    masks), the rest within float rounding."""
    if execution.compiler_missing(CUDA):
        pytest.skip(execution.compiler_missing(CUDA))
    _assert_close_training(_d_rounds("eager"), _d_rounds("compiled"), atol=1e-4)


def test_cuda_graph_d_epoch_is_not_slower_than_eager() -> None:
    """Timing sanity at the paper's D and batch (64 x 20): 100 graphed steps take no longer
    than 100 eager ones (the point of the graph is launch overhead; see bench_core.py
    --device cuda for the figures)."""
    real = torch.randint(0, 5000, (3200, 20), generator=seeded(6))
    fake = torch.randint(0, 5000, (3200, 20), generator=seeded(7)).to(CUDA)
    seconds = {}
    for mode in ("eager", "cuda_graph"):
        torch.manual_seed(0)
        d = Discriminator(5000, 20).to(CUDA)
        optimizer = adam(d.parameters(), 1e-4)
        discriminator_round(d, optimizer, real[:640], fake[:640], epochs=1, execution=mode)  # warm-up, capture
        torch.cuda.synchronize()
        start = time.perf_counter()
        discriminator_round(d, optimizer, real, fake, epochs=1, execution=mode)
        torch.cuda.synchronize()
        seconds[mode] = time.perf_counter() - start
    print(f"100 D steps at batch 64: eager {seconds['eager']:.3f} s, cuda_graph {seconds['cuda_graph']:.3f} s "
          f"({seconds['eager'] / seconds['cuda_graph']:.2f}x)")
    assert seconds["cuda_graph"] <= 1.1 * seconds["eager"]
