"""Time and memory of one adversarial step of each continuous-relaxation method (RelGAN
with its RMC or the LSTM generator, GSGAN, TextGAN) at the paper's scale.

Run from the repository root: ``python benchmarks/bench_relaxed.py [--quick] [--device cpu|cuda]``

Scale: the synthetic experiment's batch 64, length 20, vocabulary 5,000; RelGAN's
generator 1 slot x 2 heads x 256 (embedding 32) or the 32/32 LSTM, its discriminator 64
representations x heights 2-5 x 300 filters; GSGAN's LSTM discriminator 64/32; TextGAN on
the SeqGAN CNN (1,720 features) with z of 900. ``--quick`` uses batch 16 and vocabulary
1,000 (labelled so) and one timed repeat: a check that the script runs, in well under a
minute on one core.

Each method runs in a child process (one method's allocations never count against
another's): one warm-up generator step and discriminator step (Adam's state is allocated
there), then the median of the timed repeats (``torch.cuda.synchronize()`` around each on
a GPU), then the peak memory of one more generator step and one discriminator step:

* CUDA: ``torch.cuda.max_memory_allocated()`` over the step, minus what was allocated
  before it (models, optimiser state);
* CPU: the rise of the process's peak resident set (Linux VmHWM, reset through
  /proc/self/clear_refs) over its resident set before the step. The child runs with
  ``MALLOC_MMAP_THRESHOLD_=131072``, so glibc maps every large tensor afresh and returns
  it when freed: the resident set then follows the live tensors instead of the
  allocator's cache. tracemalloc cannot see torch's allocations.

For scale, the script prints the size of one (B, T, V) float32 tensor of relaxed rows:
a generator step holds about five of them at its peak (the Gumbel noise, the per-step
softmax outputs autograd keeps, their stack that the discriminator reads, and in
backward their gradients), the discriminator step about three (noise, rows, and the
real batch's one-hots).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seqgan_core import Discriminator, Generator  # noqa: E402
from seqgan_core.methods import Common  # noqa: E402
from seqgan_core.methods.gsgan import GSGAN, GSGANSettings  # noqa: E402
from seqgan_core.methods.relgan import RelGAN, RelGANSettings  # noqa: E402
from seqgan_core.methods.textgan import TextGAN, TextGANSettings  # noqa: E402
from seqgan_core.rmc import RelationalMemoryGenerator  # noqa: E402

METHODS = {  # a name ending in -rmc trains the RMC generator, the others an LSTM
    "relgan-rmc": (RelGAN, RelGANSettings()),
    "relgan-lstm": (RelGAN, RelGANSettings()),
    "gsgan": (GSGAN, GSGANSettings()),
    "textgan": (TextGAN, TextGANSettings()),
}


def _kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_bytes(step, device: torch.device) -> int:
    """Memory one call of ``step`` needs beyond what is allocated before it."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak resident set to the current one
    before = _kib("VmRSS")
    step()
    return (_kib("VmHWM") - before) * 1024


def seconds(step, device: torch.device, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def child(name: str, scale: dict, device: torch.device, repeats: int) -> dict:
    V, T, B = scale["vocab"], scale["seq_len"], scale["batch"]
    cls, settings = METHODS[name]
    rng = torch.Generator().manual_seed(0)
    if name.endswith("-rmc"):
        generator = RelationalMemoryGenerator(V, seq_len=T, rng=rng)
    else:
        generator = Generator(V, 32, 32, T, rng=rng)
    torch.manual_seed(0)
    common = Common(batches=3000, batch_size=B)
    real = torch.randint(0, V, (10_000, T), generator=rng)
    method = cls(generator.to(device), Discriminator(V, T).to(device), real, settings, common, rng)
    g_step, d_step = (lambda: method.generator_step(0)), (lambda: method.discriminator_step(0))
    g_step(), d_step()  # warm-up: Adam's state, allocator, kernels
    return {"method": name, "g_step_s": seconds(g_step, device, repeats), "d_step_s": seconds(d_step, device, repeats),
            "g_step_peak_mb": peak_bytes(g_step, device) / 2**20, "d_step_peak_mb": peak_bytes(d_step, device) / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    scale = (dict(vocab=1000, seq_len=20, batch=16) if args.quick else dict(vocab=5000, seq_len=20, batch=64))
    repeats = 1 if args.quick else 5
    if args.child:
        print(json.dumps(child(args.child, scale, device, repeats)))
        return

    rows_mb = scale["batch"] * scale["seq_len"] * scale["vocab"] * 4 / 2**20
    label = "QUICK (reduced scale, 1 repeat)" if args.quick else "paper scale, median of 5"
    print(f"bench_relaxed: {label}; B {scale['batch']}, T {scale['seq_len']}, V {scale['vocab']}; device {device}; "
          f"torch {torch.__version__}, {args.threads} thread(s); one (B, T, V) float32 tensor = {rows_mb:.1f} MB")
    print(f"{'method':<12} {'G step s':>9} {'D step s':>9} {'G peak MB':>10} {'D peak MB':>10}")
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    for name in METHODS:
        command = [sys.executable, __file__, "--child", name, "--device", args.device, "--threads", str(args.threads)]
        out = subprocess.run(command + (["--quick"] if args.quick else []), env=env, capture_output=True, text=True)
        if out.returncode:
            print(f"{name:<12} failed:\n{out.stderr[-2000:]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{name:<12} {r['g_step_s']:>9.3f} {r['d_step_s']:>9.3f} {r['g_step_peak_mb']:>10.1f} "
              f"{r['d_step_peak_mb']:>10.1f}")


if __name__ == "__main__":
    main()
