"""The stage contract: which files each stage of an experiment reads and writes, and what an
experiment kind means (its data, headline metric, gate rule, MLflow and registry names,
decoder). Stages, flows, tracking and promotion ask here instead of spelling it again.

`dvc.yaml` is the stage graph; `tests/test_contract.py` checks that every stage's `outs`
there are exactly the `Artifacts.outputs` of that stage here.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

if TYPE_CHECKING:
    from seqgan_core.corpus import Vocabulary

    from .config import Params

Experiment = Literal["synthetic", "real"]


@dataclass(frozen=True)
class Artifacts:
    """Every file of one experiment's stages (all DVC outputs, except the checkpoints)."""

    experiment: str

    # ------------------------------------------------------------------ folders
    @property
    def data(self) -> Path:
        return Path("data") / self.experiment

    @property
    def models(self) -> Path:
        return Path("models") / self.experiment

    @property
    def metrics_dir(self) -> Path:
        return Path("metrics") / self.experiment

    @property
    def plots(self) -> Path:
        return Path("plots") / self.experiment

    @property
    def reports(self) -> Path:
        return Path("reports") / self.experiment

    def checkpoint(self, name: str) -> Path:
        """Resumable training state; outside DVC's outputs so that a re-run can resume from it."""
        return Path(".checkpoints") / self.experiment / f"{name}.pt"

    # ------------------------------------------------------------- data stages
    @property
    def train_tokens(self) -> Path:
        return self.data / "train.npy"

    @property
    def test_tokens(self) -> Path:
        return self.data / "test.npy"

    @property
    def dataset_spec(self) -> Path:
        return self.data / "dataset.json"

    @property
    def oracle_model(self) -> Path:
        return self.data / "oracle.pt"

    @property
    def vocab(self) -> Path:
        return self.data / "vocab.json"

    # ---------------------------------------------------------------- training
    @property
    def generator_mle(self) -> Path:
        return self.models / "generator_mle.pt"

    @property
    def discriminator_pre(self) -> Path:
        return self.models / "discriminator_pre.pt"

    @property
    def generator_adv(self) -> Path:
        return self.models / "generator_adv.pt"

    @property
    def discriminator_adv(self) -> Path:
        return self.models / "discriminator_adv.pt"

    def metrics(self, stage: str) -> Path:
        """The stage's metrics file (`dvc metrics show`)."""
        return self.metrics_dir / f"{stage}.json"

    def curve(self, stage: str) -> Path:
        """A training stage's per-epoch or per-batch curve (`dvc plots`)."""
        return self.plots / f"{stage}.csv"

    def curve_png(self, stage: str) -> Path:
        return self.plots / f"{stage}.png"

    # --------------------------------------------------------------- evaluate
    @property
    def nll_curve_png(self) -> Path:
        return self.plots / "nll_curve.png"

    @property
    def frontier(self) -> Path:
        """The temperature sweep of the MLE and adversarial generators (`dvc plots`)."""
        return self.plots / "frontier.csv"

    @property
    def samples_report(self) -> Path:
        return self.reports / "samples.md"

    @property
    def registry_record(self) -> Path:
        """What `evaluate` registered: model name, version, data version."""
        return self.reports / "registry.json"

    def outputs(self, stage: str) -> list[Path]:
        """The stage's outputs as dvc.yaml lists them (outs, metrics and plots)."""
        by_stage = {
            "oracle": [self.data, self.metrics("oracle")],
            "preprocess": [self.data, self.metrics("preprocess")],
            "pretrain_generator": [self.generator_mle, self.curve_png("pretrain_generator"),
                                   self.metrics("pretrain_generator"), self.curve("pretrain_generator")],
            "pretrain_discriminator": [self.discriminator_pre, self.metrics("pretrain_discriminator")],
            "adversarial": [self.generator_adv, self.discriminator_adv, self.curve_png("adversarial"),
                            self.metrics("adversarial"), self.curve("adversarial")],
            "evaluate": [self.samples_report, self.registry_record, self.nll_curve_png, self.metrics("evaluate"),
                         self.frontier],
        }
        return by_stage[stage]

    def producer(self, path: Path) -> tuple[str, Path] | None:
        """The DVC address of the stage of this experiment that writes ``path`` and the output
        dvc.yaml lists for it (``path``, or the folder holding it); None if none of them does."""
        kind = kind_of(self.experiment)
        for stage in (kind.data_stage, *TRAINING_STAGES):
            for output in self.outputs(stage):
                if output == path or output in path.parents:
                    return (stage if stage == kind.data_stage else f"{stage}@{self.experiment}"), output
        return None


# The stages each experiment runs on its data, in order (dvc.yaml's `foreach` stages).
TRAINING_STAGES = ("pretrain_generator", "pretrain_discriminator", "adversarial", "evaluate")


COMPARISON = Path("comparison")


@dataclass(frozen=True)
class SweepCell:
    """Where the comparison sweep (comparison/dvc.yaml) keeps one training seed's chain of
    one experiment: the seed's pretrained models, then one folder per method trained from
    them. The data are the training pipeline's (`Artifacts(experiment).data`): one data
    version for every seed."""

    experiment: str
    seed: int

    @property
    def root(self) -> Path:
        return COMPARISON / "runs" / self.experiment / f"seed{self.seed}"

    @property
    def pretrained(self) -> Path:
        """The seed's pretrained models. Not a method's name: each method has the folder of
        its own name beside this one (the method `pretrained` among them)."""
        return self.root / "pretraining"

    @property
    def generator_mle(self) -> Path:
        return self.pretrained / "generator_mle.pt"

    @property
    def discriminator_pre(self) -> Path:
        return self.pretrained / "discriminator_pre.pt"

    @property
    def pretrain_curve(self) -> Path:
        return self.pretrained / "pretrain_generator.csv"

    def method(self, name: str) -> Path:
        """A method's folder: generator.pt, curve.csv/png, training.json, scores.json."""
        return self.root / name

    def scores(self, method: str) -> Path:
        return self.method(method) / "scores.json"

    def curve(self, method: str) -> Path:
        return self.method(method) / "curve.csv"

    def checkpoint(self, name: str) -> Path:
        return Artifacts(self.experiment).checkpoint(f"sweep-seed{self.seed}-{name}")


@dataclass(frozen=True)
class ComparisonReport:
    """What the comparison's report stages write (comparison/dvc.yaml's outs)."""

    root: Path = COMPARISON

    @property
    def summary_csv(self) -> Path:
        return self.root / "summary.csv"

    @property
    def summary_md(self) -> Path:
        return self.root / "summary.md"

    @property
    def frontier_csv(self) -> Path:
        return self.root / "frontier.csv"

    @property
    def results_md(self) -> Path:
        return self.root / "results.md"

    def calibration(self, experiment: str) -> Path:
        """The data of ``experiment`` scored as generators are."""
        return self.root / "calibration" / f"{experiment}.json"

    @property
    def curves_png(self) -> Path:
        return self.root / "nll_curves.png"

    def frontier_png(self, experiment: str) -> Path:
        return self.root / f"frontier_{experiment}.png"


@dataclass(frozen=True)
class GateRule:
    """What the registry gate compares (see `pipelines.registry.gate.promote`)."""

    metric: str
    higher_is_better: bool
    margin: float
    guard_metric: str = "nll_test"
    guard_tolerance: float = 0.0


class ExperimentKind:
    """What an experiment is: where its data come from and how its generators are judged."""

    name: ClassVar[Experiment]
    data_stage: ClassVar[str]  # the stage that writes data/<name>/
    has_oracle: ClassVar[bool]  # NLL-oracle exists (synthetic data)
    curve_metric: ClassVar[str]  # what the training curves plot

    def headline_metric(self, params: "Params") -> str:
        raise NotImplementedError

    def higher_is_better(self) -> bool:
        raise NotImplementedError

    def frontier_axes(self, params: "Params") -> tuple[str, str]:
        """(diversity, quality) metrics of the temperature sweep's frontier."""
        raise NotImplementedError

    def gate_rule(self, params: "Params") -> GateRule:
        raise NotImplementedError

    def mlflow_experiment(self, params: "Params") -> str:
        raise NotImplementedError

    def model_name(self, params: "Params") -> str:
        """Registry name of the generators this experiment trains."""
        raise NotImplementedError

    def decoder(self, vocab: "Vocabulary | None", tokenizer: str) -> Callable[[Sequence[int]], str]:
        """Readable text of one row of token ids."""
        raise NotImplementedError

    def artifacts(self) -> Artifacts:
        return Artifacts(self.name)


class Synthetic(ExperimentKind):
    """Data sampled from an oracle LSTM; generators are judged by NLL-oracle (lower wins)."""

    name = "synthetic"
    data_stage = "oracle"
    has_oracle = True
    curve_metric = "nll_oracle"

    def headline_metric(self, params: "Params") -> str:
        return "nll_oracle"

    def higher_is_better(self) -> bool:
        return False

    def frontier_axes(self, params: "Params") -> tuple[str, str]:
        return "nll_test", "nll_oracle"

    def gate_rule(self, params: "Params") -> GateRule:
        p = params.promotion
        return GateRule("nll_oracle", False, p.synthetic_margin, "nll_test", p.synthetic_nll_test_tolerance)

    def mlflow_experiment(self, params: "Params") -> str:
        return "seqgan-synthetic"

    def model_name(self, params: "Params") -> str:
        return params.tracking.synthetic_model_name

    def decoder(self, vocab: "Vocabulary | None", tokenizer: str) -> Callable[[Sequence[int]], str]:
        return lambda row: " ".join(map(str, row))  # the oracle's tokens have no text


class Corpus(ExperimentKind):
    """A real text corpus; generators are judged by BLEU-n against its test split (higher wins)."""

    name = "real"
    data_stage = "preprocess"
    has_oracle = False
    curve_metric = "nll_test"

    def headline_metric(self, params: "Params") -> str:
        return f"bleu{params.promotion.real_bleu_order}"

    def higher_is_better(self) -> bool:
        return True

    def frontier_axes(self, params: "Params") -> tuple[str, str]:
        n = params.promotion.real_bleu_order
        return f"self_bleu{n}", f"bleu{n}"

    def gate_rule(self, params: "Params") -> GateRule:
        p = params.promotion
        return GateRule(self.headline_metric(params), True, p.real_margin, "nll_test", p.real_nll_test_tolerance)

    def mlflow_experiment(self, params: "Params") -> str:
        return f"seqgan-real-{params.corpus.name}"

    def model_name(self, params: "Params") -> str:
        return f"{params.tracking.real_model_prefix}-{params.corpus.name}"

    def decoder(self, vocab: "Vocabulary | None", tokenizer: str) -> Callable[[Sequence[int]], str]:
        if vocab is None:
            raise ValueError("a corpus needs its vocabulary to decode")
        joiner = joiner_of(tokenizer)
        return lambda row: joiner.join(vocab.decode(row))


def joiner_of(tokenizer: str) -> str:
    """What goes between a corpus's tokens in text: nothing between characters, a space between words."""
    return "" if tokenizer == "char" else " "


KINDS: dict[str, ExperimentKind] = {kind.name: kind for kind in (Synthetic(), Corpus())}
EXPERIMENTS: tuple[str, ...] = tuple(KINDS)


def kind_of(experiment: str) -> ExperimentKind:
    try:
        return KINDS[experiment]
    except KeyError:
        raise ValueError(f"unknown experiment {experiment!r}; expected one of {EXPERIMENTS}") from None


def producer_of(path: Path) -> tuple[str, Path] | None:
    """The training pipeline's stage that writes ``path``, and the output it is or is in
    (`Artifacts.producer`); None for a file of no experiment's stages (the comparison's)."""
    return next((found for kind in KINDS.values() if (found := kind.artifacts().producer(Path(path)))), None)


def better_direction(metric: str) -> Literal["higher", "lower"]:
    """Which way a score improves: NLLs and Self-BLEU (diversity: lower is more diverse)
    down, BLEU up."""
    return "lower" if metric.startswith(("nll", "self_bleu")) else "higher"


# A metric scored on a sharpened model (LeakGAN's official evaluation) is named
# `<metric>_sharpened_<scale>`, so it is never read as the temperature-1 figure.
SHARPENED_MARK = "_sharpened_"


def sharpened_metric(metric: str, scale: float) -> str:
    return f"{metric}{SHARPENED_MARK}{scale:g}"


# NLL of uniformly random tokens, ln(vocab), registered with every version: a generator whose
# NLL-test is above it has learnt less than nothing (diverged), whatever its NLL-oracle or BLEU say.
UNIFORM_NLL_METRIC = "nll_test_uniform"


def uniform_nll(vocab_size: int) -> float:
    return math.log(vocab_size)
