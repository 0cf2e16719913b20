"""How a discriminator training step runs: the named option ``execution``.

A D step at the paper's batch of 64 (forward, loss, backward, clip, Adam) is a few hundred
small operations. On a GPU each kernel launch costs more than its work, so an eager D
epoch is bound by launch overhead, not FLOPs, and D epochs are 95% of the paper's
schedule (3,150 of them). The modes:

* ``eager``: every operation launched from Python (`train._apply`). The reference.
* ``cuda_graph``: the whole step (forward, loss, backward, global-norm clip, fused Adam)
  captured once as one CUDA graph over static input buffers and replayed for every batch
  (every batch has one shape: the last partial batch is dropped). The graph runs eager's
  own kernels, so its results are eager's, dropout included: the masks come from the
  same CUDA generator at the same offsets (a replay advances the generator as the eager
  step would), so seeded runs and resumed runs match eager ones. The first
  ``WARMUP_STEPS`` steps of a captured step run uncaptured (real steps: they also create
  Adam's state and initialise the libraries); a step is re-captured when the tensors or
  hyperparameters it baked in change (`_fingerprint`).
* ``compiled``: `torch.compile` (inductor) of forward + loss; AOTAutograd compiles its
  backward too; clip and the fused Adam stay eager. On CUDA with inductor's CUDA graphs
  (what ``mode="reduce-overhead"`` turns on), on the CPU as C++ kernels (needs a C++
  compiler). Dropout keeps aten's random ops (``fallback_random``), so it draws the same
  masks from the same global generator as eager (inductor's own RNG would draw others);
  the other results differ from eager's by float rounding (fused kernels sum in another
  order).
* ``auto``: ``cuda_graph`` on CUDA, ``eager`` elsewhere. On the CPU compiling costs about a
  minute per process (every stage is one; ~15 s from a warm inductor cache) for a gain
  that is small and unsettled: the paper's D step was 19% slower compiled at 2 threads
  (benchmarks/README.md) and 10-22% faster at 1 thread under load. If the capture fails,
  auto's step runs eagerly from then on, with a note.

Where the device cannot run the mode asked for (``cuda_graph`` off CUDA; ``compiled``
without its compiler), the steps run eagerly and a one-line `EagerFallback` warning says so.

Finiteness in a graph: an eager step reads the loss, and then the gradient norm, before
the optimiser moves (two host syncs). A graph cannot branch on the host, so it hands the
fused Adam a ``found_inf`` flag, as torch.amp's GradScaler does: a non-finite loss or
norm makes the kernel skip the update on the device. The host then reads the loss, the
norm and the accuracy once, after the replay, and raises `TrainingDiverged` as eager
would, with the model and Adam's state still the last good ones.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import warnings
import weakref
from collections.abc import Callable
from typing import Literal

import torch

from .discriminator import Discriminator
from .train import _apply, backward_and_clip, check_finite

Execution = Literal["auto", "eager", "cuda_graph", "compiled"]
EXECUTIONS: tuple[str, ...] = ("auto", "eager", "cuda_graph", "compiled")
WARMUP_STEPS = 3  # uncaptured steps before a capture (PyTorch's CUDA-graph examples use 3)
_WHAT = "discriminator loss"

Update = Callable[[torch.Tensor, torch.Tensor], tuple[float, int]]  # (tokens, labels) -> (loss, correct)


class EagerFallback(UserWarning):
    """The execution asked for cannot run here; the D steps run eagerly."""


def _note(message: str) -> None:
    warnings.warn(message, EagerFallback, stacklevel=3)


def compiler_missing(device: torch.device) -> str | None:
    """Why `torch.compile` cannot build kernels for ``device`` here, or None when it can:
    inductor writes C++ for the CPU (a C++ compiler: $CXX, g++, c++ or clang++) and Triton
    for CUDA."""
    if device.type == "cuda":
        return None if importlib.util.find_spec("triton") else "Triton is not installed"
    if device.type == "cpu":
        names = [os.environ["CXX"]] if os.environ.get("CXX") else ["g++", "c++", "clang++"]
        return None if any(shutil.which(n) for n in names) else f"no C++ compiler ({', '.join(names)}) on PATH"
    return f"inductor is not wired here for {device.type}"


def resolve(execution: str, device: torch.device) -> str:
    """The mode D's steps on ``device`` run in: auto's choice, or eager (with a note) where
    the device cannot run the mode asked for."""
    if execution not in EXECUTIONS:
        raise ValueError(f"execution = {execution!r} is not allowed: choose one of {', '.join(EXECUTIONS)}")
    if execution == "auto":
        return "cuda_graph" if device.type == "cuda" else "eager"
    if execution == "cuda_graph" and device.type != "cuda":
        _note(f"execution cuda_graph needs a CUDA device and D is on {device}: its steps run eagerly")
        return "eager"
    if execution == "compiled":
        missing = compiler_missing(device)
        if missing:
            _note(f"execution compiled: torch.compile cannot build kernels here ({missing}): D's steps run eagerly")
            return "eager"
    return execution


def discriminator_update(discriminator: Discriminator, optimizer: torch.optim.Optimizer,
                         batch_shape: tuple[int, int], execution: str = "eager") -> Update:
    """D's training step for `train.balanced_round`: ``update(tokens, labels)`` makes one
    optimiser step on a batch of ``batch_shape`` and returns its loss and how many of the
    batch D classified correctly."""
    device = discriminator.out.weight.device
    mode = resolve(execution, device)
    if mode == "compiled":
        return _eager_update(discriminator, optimizer, _compiled_loss(device.type))
    if mode == "cuda_graph" and not all(group.get("fused") for group in optimizer.param_groups):
        # The graph hands Adam a found_inf flag, which only the fused kernel takes.
        _note("execution cuda_graph captures a fused Adam's step (seqgan_core.train.adam); this optimiser is "
              f"{type(optimizer).__name__} without fused=True: D's steps run eagerly")
        mode = "eager"
    if mode == "cuda_graph":
        step = _graphed_step(discriminator, optimizer, batch_shape, fall_back=execution == "auto")
        if not step.failed:
            return step
    return _eager_update(discriminator, optimizer)


# ------------------------------------------------------------------ eager and compiled
def loss_and_logits(discriminator: Discriminator, tokens: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """D's training loss on a batch, and its logits."""
    logits = discriminator(tokens)
    return discriminator.loss_from_logits(logits, labels), logits


def _eager_update(discriminator: Discriminator, optimizer: torch.optim.Optimizer,
                  loss_fn: Callable = loss_and_logits) -> Update:
    params = list(discriminator.parameters())

    def update(x: torch.Tensor, y: torch.Tensor) -> tuple[float, int]:
        loss, logits = loss_fn(discriminator, x, y)
        value = _apply(optimizer, loss, params, 0.0, _WHAT)
        return value, (logits.argmax(1) == y).sum().item()

    return update


_COMPILED: dict[str, Callable] = {}


def _compiled_loss(device_type: str) -> Callable:
    """`loss_and_logits` compiled for one device type (one compile per D shape; dynamo's
    guards pick it again for every D of that shape)."""
    if device_type not in _COMPILED:
        options = {"fallback_random": True}  # dropout: eager's random ops, eager's masks
        if device_type == "cuda":
            options["triton.cudagraphs"] = True  # what mode="reduce-overhead" sets
        _COMPILED[device_type] = torch.compile(loss_and_logits, dynamic=False, options=options)
    return _COMPILED[device_type]


# ------------------------------------------------------------------ CUDA graph
# The captured step of each optimiser (weak keys: it goes with its optimiser), by batch shape.
_GRAPHED: "weakref.WeakKeyDictionary[torch.optim.Optimizer, dict[tuple[int, int], GraphedStep]]" = (
    weakref.WeakKeyDictionary())


def _graphed_step(discriminator: Discriminator, optimizer: torch.optim.Optimizer,
                  batch_shape: tuple[int, int], *, fall_back: bool) -> "GraphedStep":
    steps = _GRAPHED.setdefault(optimizer, {})
    step = steps.get(batch_shape)
    if step is None or step.discriminator is not discriminator or step.stale():
        step = steps[batch_shape] = GraphedStep(discriminator, optimizer, batch_shape)
    step.fall_back = fall_back  # as this round asks
    return step


def _fingerprint(discriminator: Discriminator, optimizer: torch.optim.Optimizer) -> tuple:
    """What a captured step baked in: the address of every tensor it reads or writes
    (parameters, Adam's moments and step counts) and the numbers it holds as constants."""
    addresses = []
    for p in discriminator.parameters():
        addresses.append(p.data_ptr())
        addresses.extend(v.data_ptr() for v in optimizer.state.get(p, {}).values() if isinstance(v, torch.Tensor))
    constants = [repr({k: v for k, v in g.items() if k not in ("params", "capturable")}) for g in optimizer.param_groups]
    return (tuple(addresses), tuple(constants), discriminator.training, discriminator.dropout.p, discriminator.l2_reg)


class GraphedStep:
    """One D training step as a body with no host sync over static buffers: replayed as a
    CUDA graph once captured; ``capture=False`` runs the same body uncaptured at every step
    (what the CPU tests check; no faster than eager)."""

    def __init__(self, discriminator: Discriminator, optimizer: torch.optim.Optimizer,
                 batch_shape: tuple[int, int], *, capture: bool = True, fall_back: bool = False) -> None:
        device = discriminator.out.weight.device
        self.discriminator, self._optimizer = discriminator, weakref.ref(optimizer)
        self.params = list(discriminator.parameters())
        self.tokens = torch.zeros(batch_shape, dtype=torch.long, device=device)
        self.labels = torch.zeros(batch_shape[0], dtype=torch.long, device=device)
        self.found_inf = torch.zeros((), device=device)  # Adam skips its update while this is 1
        self.capture, self.fall_back, self.failed = capture, fall_back, False
        self.warmups_left = WARMUP_STEPS if capture else 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.stats: torch.Tensor | None = None  # loss, gradient norm, correct
        self.fingerprint: tuple | None = None
        self.grads: list[torch.Tensor] = []

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self._optimizer()

    def stale(self) -> bool:
        return self.graph is not None and self.fingerprint != _fingerprint(self.discriminator, self.optimizer)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, int]:
        if self.failed:
            return _eager_update(self.discriminator, self.optimizer)(x, y)
        self.tokens.copy_(x)
        self.labels.copy_(y)
        if self.graph is None and self.warmups_left == 0 and self.capture:
            if not self._capture():
                return _eager_update(self.discriminator, self.optimizer)(x, y)
        if self.graph is not None:
            self.graph.replay()
        elif self.capture:
            self.warmups_left -= 1
            self.stats = self._on_side_stream()
        else:
            self.stats = self._body()
        loss, norm, correct = self.stats.tolist()  # the step's one host sync
        check_finite(_WHAT, loss)
        check_finite(f"{_WHAT} gradient norm", norm)
        return loss, round(correct)

    def _body(self) -> torch.Tensor:
        """Forward, loss, backward, clip and Adam on the static buffers; (loss, norm, correct)."""
        optimizer = self.optimizer
        loss, logits = loss_and_logits(self.discriminator, self.tokens, self.labels)
        norm = backward_and_clip(optimizer, loss, self.params, 0.0)
        self.found_inf.copy_(torch.logical_not(torch.isfinite(loss) & torch.isfinite(norm)))
        optimizer.found_inf = self.found_inf  # read by the fused Adam (torch.optim.Adam.step)
        try:
            optimizer.step()
        finally:
            del optimizer.found_inf
        correct = (logits.argmax(1) == self.labels).sum()
        return torch.stack([loss.detach(), norm.detach(), correct.to(loss.dtype)])

    def _on_side_stream(self) -> torch.Tensor:
        """The body, uncaptured, on a side stream, as CUDA graphs' warm-up must run."""
        current = torch.cuda.current_stream(self.tokens.device)
        side = torch.cuda.Stream(self.tokens.device)
        side.wait_stream(current)
        with torch.cuda.stream(side):
            stats = self._body()
        current.wait_stream(side)
        return stats

    def _capture(self) -> bool:
        """Capture the body; False if the capture failed and auto falls back to eager."""
        optimizer = self.optimizer
        flags = [group["capturable"] for group in optimizer.param_groups]
        graph = torch.cuda.CUDAGraph()
        try:
            # Gradients are set to None so that backward allocates them in the graph's pool.
            optimizer.zero_grad(set_to_none=True)
            for group in optimizer.param_groups:
                group["capturable"] = True  # Adam refuses capture otherwise; the fused kernel is the same
            # The capture stream is made on the current device: make it D's (cuda:N).
            with torch.cuda.device(self.tokens.device), torch.cuda.graph(graph):
                stats = self._body()
        except Exception as exc:
            if not self.fall_back:
                raise RuntimeError(f"capturing D's training step as a CUDA graph failed ({exc}); "
                                   "set `execution: eager` (or auto, which falls back)") from exc
            _note(f"execution auto: capturing D's training step as a CUDA graph failed ({exc}): "
                  "its steps run eagerly")
            optimizer.zero_grad(set_to_none=True)
            self.failed = True
            return False
        finally:
            for group, flag in zip(optimizer.param_groups, flags):
                group["capturable"] = flag  # as saved: a checkpoint must load on the CPU too
        self.graph, self.stats = graph, stats
        # The graph reads and writes these buffers whatever p.grad later points to.
        self.grads = [p.grad for p in self.params]
        self.fingerprint = _fingerprint(self.discriminator, optimizer)
        return True
