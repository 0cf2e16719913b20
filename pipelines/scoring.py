"""Generator scores shared by the training stages, `evaluate` and the comparison sweep, and the
calibration row: the data scored exactly the way generators are.

A generator is scored at temperature 1 (`Scorer.final`) and over a temperature sweep
(`Scorer.sweep`, Caccia et al. 2020): samples drawn from softmax(logits / t) give the
quality side (NLL-oracle; BLEU-n) and the tempered model the diversity side (NLL-test;
Self-BLEU-n of the samples), so a method that only sharpens its distribution shows up as
a move along MLE's own curve. Every setting that changes a score is reported next to it
(`Scorer.settings`), and `Scorer.version` hashes those settings with the scoring code: the
registry gate compares only metrics of the same scoring version.

LeakGAN generators get a labelled second figure beside their temperature-1 one
(`Scorer.code_sharpened`): the official code evaluates on softmax(1.5 x logits), which
lowers NLL-oracle (Texygen#19); keys ending ``_sharpened_1.5`` hold it, so that a number
compared with the paper's is not mistaken for the one compared with the other methods.
"""
from __future__ import annotations

import hashlib
import importlib
import json
from functools import cached_property
from pathlib import Path

import torch

from seqgan_core import sequence_nll
from seqgan_core.bleu import BLEU, SelfBLEU
from seqgan_core.corpus import strip_eos
from seqgan_core.leakgan import CODE_SHARPENING

from .config import Params
from .contract import sharpened_metric
from .datasets import Dataset


SHARPENED_SUFFIX = sharpened_metric("", CODE_SHARPENING)
# The code an edit of which changes a score: this module, BLEU / Self-BLEU, NLL (sequence_nll
# and the oracle's nll) and how sentences are cut for BLEU (strip_eos).
SCORING_CODE = (__name__, "seqgan_core.bleu", "seqgan_core.oracle", "seqgan_core.corpus")


def nll_scores(generator: torch.nn.Module, dataset: Dataset, n_samples: int, rng: torch.Generator) -> dict[str, float]:
    """The training curves' scores: NLL-test always; NLL-oracle (per token, over `n_samples`
    generated sequences) when the data come from an oracle. Both in nats per token."""
    scores = {"nll_test": sequence_nll(generator, dataset.test)}
    if dataset.kind.has_oracle:
        scores["nll_oracle"] = dataset.oracle.nll(generator.sample(n_samples, rng=rng))
    return scores


class Scorer:
    """Scores of one experiment's generators, with the BLEU references built once."""

    def __init__(self, dataset: Dataset, params: Params) -> None:
        self.dataset, self.params, self.e = dataset, params, params.evaluate

    @cached_property
    def references(self) -> torch.Tensor:
        """BLEU's reference set (`evaluate.bleu_references`): the test split (Texygen's and
        TextBox's convention) or the training split."""
        return self.dataset.test if self.e.bleu_references == "test" else self.dataset.train

    @cached_property
    def bleu(self) -> BLEU:
        return BLEU(strip_eos(self.references), max_n=max(self.e.bleu_orders))

    def of_samples(self, samples: torch.Tensor) -> dict[str, float]:
        """What the samples say: NLL-oracle (synthetic); BLEU-n against the references and
        Self-BLEU-n (corpora, Texygen's convention, sentences cut at their first <eos>)."""
        if self.dataset.kind.has_oracle:
            return {"nll_oracle": self.dataset.oracle.nll(samples)}
        e = self.e
        hypotheses = strip_eos(samples[: e.bleu_hypotheses])
        self_bleu = SelfBLEU(strip_eos(samples), max_n=max(e.bleu_orders), sample_size=min(e.self_bleu_size, len(samples)),
                             seed=self.params.seed)
        scores = {}
        for n in e.bleu_orders:
            scores[f"bleu{n}"] = self.bleu.corpus_mean(hypotheses, n)
            scores[f"self_bleu{n}"] = self_bleu.mean(n)
        return scores

    def at(self, generator: torch.nn.Module, samples: torch.Tensor, temperature: float = 1.0) -> dict[str, float]:
        """The generator tempered to ``temperature`` and its ``samples`` (drawn at it): the
        tempered model's NLL-test and what the samples say."""
        return {"nll_test": sequence_nll(generator, self.dataset.test, temperature=temperature),
                **self.of_samples(samples)}

    def final(self, generator: torch.nn.Module, samples: torch.Tensor) -> dict[str, float]:
        """The scores `evaluate` reports for a generator and its ``samples`` (temperature 1)."""
        return self.at(generator, samples)

    def code_sharpened(self, generator: torch.nn.Module, rng: torch.Generator) -> dict[str, float]:
        """For a LeakGAN generator, `final`'s scores as the official code computes them: of
        ``evaluate.nll_samples`` samples drawn from softmax(1.5 x logits), and NLL-test of that
        sharpened model; keys suffixed ``_sharpened_1.5``. Empty for other generators."""
        if generator.kind != "leakgan":
            return {}
        t = 1.0 / CODE_SHARPENING
        scores = self.at(generator, generator.sample(self.e.nll_samples, rng=rng, temperature=t), t)
        return {sharpened_metric(key, CODE_SHARPENING): value for key, value in scores.items()}

    def sweep(self, generator: torch.nn.Module, rng: torch.Generator) -> list[dict[str, float]]:
        """One row per `evaluate.temperatures`: ``evaluate.sweep_samples`` samples drawn at t
        and the tempered model's NLL-test. No retraining: temperature only rescales logits."""
        return [{"temperature": t, **self.at(generator, generator.sample(self.e.sweep_samples, rng=rng, temperature=t), t)}
                for t in self.e.temperatures]

    def calibration(self) -> dict[str, float | str]:
        """The data scored as generators are: the oracle's own samples (the test split) for
        synthetic data; for a corpus, the other split's sentences as hypotheses against the
        same references (the training split when the references are the test split). What
        a perfect generator would score, and the point every frontier is read against."""
        if self.dataset.kind.has_oracle:
            own = self.dataset.oracle.nll(self.dataset.test)
            return {"nll_oracle": own, "nll_test": own, "source": "the oracle's own samples (the test split)"}
        data = self.dataset.train if self.e.bleu_references == "test" else self.dataset.test
        other = "training" if self.e.bleu_references == "test" else "test"
        return {**self.of_samples(data), "source": f"{len(data)} {other}-split sentences as hypotheses "
                                                    f"(the first {min(self.e.bleu_hypotheses, len(data))} for BLEU)"}

    def settings(self) -> dict:
        e = self.e
        common = {"nll_test_sequences": len(self.dataset.test), "nll_units": "nats per token",
                  "temperatures": e.temperatures, "sweep_samples": e.sweep_samples}
        if self.params.generator.kind == "leakgan":
            common["sharpened"] = (f"*{SHARPENED_SUFFIX}: LeakGAN's official evaluation, samples from softmax("
                                   f"{CODE_SHARPENING:g} x logits) (Texygen#19); a second figure, for the paper's "
                                   "numbers only: the other scores are at temperature 1")
        if self.dataset.kind.has_oracle:
            return {**common, "nll_oracle_samples": e.nll_samples}
        return {**common, "bleu": "Texygen: sentence_bleu vs the whole reference set, uniform cumulative weights, "
                                  "smoothing method1",
                "bleu_orders": e.bleu_orders, "bleu_hypotheses": min(e.bleu_hypotheses, e.nll_samples),
                "bleu_references": f"{e.bleu_references} split ({len(self.references)} sentences)",
                "self_bleu_sample_size": e.self_bleu_size, "tokenization": self.dataset.tokenizer,
                # Lowercasing decides which tokens match, as tokenisation does (REFERENCE.md: report both).
                "lowercase": self.params.corpus.lowercase,
                "padding": "BLEU and Self-BLEU: stripped at the first <eos>",
                # Texygen's convention: the rows are fixed-length, and the <eos> padding after a
                # sentence's end is scored too (easy to predict: it lowers the figure).
                "nll_tokens": "every position of the fixed-length rows, <eos> padding included"}

    def final_settings(self) -> dict:
        """The settings behind `final`'s temperature-1 scores, the ones the registry gate
        compares: `settings` without the temperature sweep's and the labelled LeakGAN figure's."""
        return {k: v for k, v in self.settings().items() if k not in ("temperatures", "sweep_samples", "sharpened")}

    def version(self) -> str:
        """A hash of `final_settings` and the sources of `SCORING_CODE`: two versions' metrics
        are comparable only when scored under the same one. The seed is not part of it (a
        retrain with another seed is compared with the champion)."""
        digest = hashlib.sha256(json.dumps(self.final_settings(), sort_keys=True, default=str).encode())
        for module in SCORING_CODE:
            digest.update(Path(importlib.import_module(module).__file__).read_bytes())
        return digest.hexdigest()[:16]
