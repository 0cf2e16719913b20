"""The packaged generator: an MLflow pyfunc model that samples text, and its consumers
(`load_generator_model`, `generate` for `seqgan generate`, `mlflow models serve`).

The model needs only mlflow, torch, pandas and ``seqgan_core``, which travels with it
(``code_paths``): loading it does not need this repository.

A request is checked whole before any sampling: every row's ``n`` is a whole number in
[1, MAX_SAMPLES], their sum is at most MAX_SAMPLES, ``temperature`` is finite and at least
``seqgan_core.sampling.MIN_TEMPERATURE`` (1e-3), ``seed`` a whole number in [0, SEED_LIMIT),
``prefix`` tokens of the vocabulary (not the specials <eos> and <unk>); and sampling stops
with an error after MAX_SECONDS, so a request whose client has gone cannot keep a worker
busy. A refused request raises `MlflowException(INVALID_PARAMETER_VALUE)`: the scoring
server answers HTTP 400 with the cause as its message and no stack trace (any other
exception becomes "unexpected error" with the server's stack trace in the body).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow.models import ModelSignature
    from mlflow.models.model import ModelInfo

MAX_SAMPLES = 100_000  # per request (all rows together): ~14 s at the paper's vocabulary on 2 cores
MAX_SECONDS = 60.0  # sampling time per request
SAMPLE_CHUNK = 10_000  # sequences per sampling call; the deadline is checked between calls
# Seeds are in [0, SEED_LIMIT): torch.Generator.manual_seed fails on 2**64 and above, and an
# int64 column (pandas, JSON readers) holds any seed below 2**63.
SEED_LIMIT = 2**63


def _build_generator_model_class() -> type:
    """Define `GeneratorModel` (a subclass of ``mlflow.pyfunc.PythonModel``).

    Defined inside a function for two reasons: ``import pipelines.registry`` must not import
    mlflow, and a class whose qualified name contains ``<locals>`` is pickled *by value* by
    cloudpickle, so the logged model does not refer to this module (``pipelines`` need not
    be importable where it is loaded). For the same reason the methods use only their own
    imports (torch, pandas, mlflow, seqgan_core from the model's ``code`` folder), never
    helpers of this module.
    """
    import mlflow.pyfunc

    class GeneratorModel(mlflow.pyfunc.PythonModel):
        """A generator behind the pyfunc interface.

        Artifacts: ``generator`` (a `seqgan_core.generators` checkpoint), ``meta`` (JSON:
        tokenizer, joiner, experiment_kind) and, for corpora, ``vocab`` (the `Vocabulary`
        JSON). Input: a DataFrame with ``n`` and optional ``temperature`` (1.0), ``seed`` (0)
        and ``prefix`` ("") per row; output: one row per generated sequence with
        ``sequence`` (space-separated ids) and ``text`` (decoded text for a corpus, the ids
        for the synthetic experiment).
        """

        # The input is checked against the signature (a DataFrame schema), not type hints:
        # this stops PythonModel.__init_subclass__ from warning "Add type hints to predict"
        # each time the class is made (here and whenever a model is unpickled).
        _skip_type_hint_validation = True

        def load_context(self, context):
            import json

            import torch
            from seqgan_core.corpus import Vocabulary
            from seqgan_core.generators import from_checkpoint

            self.model = from_checkpoint(
                torch.load(context.artifacts["generator"], map_location="cpu", weights_only=True)).eval()
            meta_path = context.artifacts.get("meta")
            self.meta = json.loads(open(meta_path, encoding="utf-8").read()) if meta_path else {}
            vocab_path = context.artifacts.get("vocab")
            self.vocab = Vocabulary.load(vocab_path) if vocab_path else None
            if self.vocab is not None and len(self.vocab) != self.model.vocab_size:
                raise ValueError(
                    f"vocabulary has {len(self.vocab)} tokens but the generator's vocab_size is "
                    f"{self.model.vocab_size}: the checkpoint and vocabulary do not belong together"
                )

        @staticmethod
        def _refuse(message):
            from mlflow.exceptions import MlflowException
            from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

            return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)

        def _whole(self, row, column, default, low, high=None):
            """A cell that must hold a whole number in [low, high) (no upper bound when
            ``high`` is None; absent/NaN: ``default``)."""
            import math
            import numbers

            value = row.get(column)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                return default
            bounds = f">= {low}" if high is None else f"in [{low}, {high})"
            refused = self._refuse(f"{column} must be a whole number {bounds}, got {value!r}")
            if isinstance(value, numbers.Integral):  # exactly: through a float a large seed would be rounded
                number = int(value)
            else:
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    raise refused from None
                if not (math.isfinite(number) and number.is_integer()):
                    raise refused
                number = int(number)
            if not (number >= low and (high is None or number < high)):
                raise refused
            return number

        def _temperature(self, row):
            import math
            import numbers

            from seqgan_core.sampling import check_temperature

            value = row.get("temperature")
            if value is None or (isinstance(value, float) and math.isnan(value)):
                return 1.0
            if not isinstance(value, numbers.Real):
                raise self._refuse(f"temperature must be a number, got {value!r}")
            try:
                check_temperature(float(value))  # the samplers' rule, with its floor
            except ValueError as exc:
                raise self._refuse(str(exc)) from None
            return float(value)

        def _prefix_ids(self, prefix):
            """Prefix ids from a prefix cell: None/NaN/"" = no prefix."""
            if prefix is None or (isinstance(prefix, float) and prefix != prefix) or str(prefix).strip() == "":
                return None
            prefix = str(prefix)
            ids = self._synthetic_prefix_ids(prefix) if self.vocab is None else self._corpus_prefix_ids(prefix)
            if len(ids) > self.model.seq_len:
                raise self._refuse(f"prefix has {len(ids)} tokens; sequences have {self.model.seq_len}")
            return ids

        def _synthetic_prefix_ids(self, prefix):
            # ASCII digits only: int() also reads "1_0" as 10 and "٣" (Arabic-Indic) as 3.
            tokens = prefix.split()
            if not all(token.isascii() and token.isdigit() for token in tokens):
                raise self._refuse(f"prefix {prefix!r}: the synthetic generator takes space-separated token ids "
                                   "(digits 0-9), e.g. '5 12 3'")
            ids = [int(token) for token in tokens]
            bad = [i for i in ids if not i < self.model.vocab_size]
            if bad:
                raise self._refuse(f"prefix ids {bad} are outside the vocabulary [0, {self.model.vocab_size})")
            return ids

        def _corpus_prefix_ids(self, prefix):
            # A prefix is text to continue: a token outside the vocabulary would be sampled
            # from as <unk>, and the specials are no text (<eos> would end the sequence
            # inside the prefix), so a literal "<eos>" or "<unk>" is refused like any other
            # unknown token.
            from seqgan_core.corpus import SPECIALS, tokenize

            tokens = tokenize(prefix, self.meta.get("tokenizer", "char"))
            unknown = [t for t in dict.fromkeys(tokens) if t not in self.vocab or t in SPECIALS]
            if unknown:
                shown = ", ".join(map(repr, unknown[:5])) + (", ..." if len(unknown) > 5 else "")
                raise self._refuse(f"prefix {prefix!r} has tokens outside the model's vocabulary: {shown}; "
                                   "write the prefix with tokens of the training corpus")
            return self.vocab.encode(tokens)

        def _requests(self, frame):
            """Every row checked, before anything is sampled: (n, temperature, seed, prefix) each."""
            if "n" not in frame.columns:
                raise self._refuse("input needs a column 'n' (sequences to generate per row)")
            rows = [(self._whole(row, "n", None, 1), self._temperature(row),
                     self._whole(row, "seed", 0, 0, self.seed_limit),
                     self._prefix_ids(row.get("prefix"))) for row in frame.to_dict("records")]
            if any(n is None for n, *_ in rows):
                raise self._refuse("every row needs n, the number of sequences to generate")
            total = sum(n for n, *_ in rows)
            if total > self.max_samples:
                raise self._refuse(f"n must be in [1, {self.max_samples}] for the whole request (all rows "
                                   f"together), got {total}; split it into several requests")
            return rows

        def predict(self, context, model_input, params=None):
            import time

            import pandas as pd
            import torch

            frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
            deadline = time.monotonic() + self.max_seconds
            decode = ((lambda seq: self.meta.get("joiner", " ").join(self.vocab.decode(seq)))
                      if self.vocab is not None else (lambda seq: " ".join(map(str, seq))))
            sequences = []
            for n, temperature, seed, prefix in self._requests(frame):
                rng = torch.Generator().manual_seed(seed)
                fixed = None if prefix is None else torch.tensor(prefix, dtype=torch.long)
                for start in range(0, n, self.chunk):
                    if time.monotonic() > deadline:
                        raise self._refuse(f"the request ran past {self.max_seconds:g} s and was stopped; "
                                           "ask for fewer sequences per request")
                    with torch.no_grad():
                        ids = self.model.sample(min(self.chunk, n - start), rng=rng, temperature=temperature,
                                                prefix=fixed)
                    sequences += ids.tolist()
            return pd.DataFrame({"sequence": [" ".join(map(str, seq)) for seq in sequences],
                                 "text": [decode(seq) for seq in sequences]})

    GeneratorModel.max_samples, GeneratorModel.max_seconds, GeneratorModel.chunk = MAX_SAMPLES, MAX_SECONDS, SAMPLE_CHUNK
    GeneratorModel.seed_limit = SEED_LIMIT
    return GeneratorModel


_generator_model_class: type | None = None


def generator_model_class() -> type:
    """The `GeneratorModel` class (built once; importing it imports mlflow)."""
    global _generator_model_class
    if _generator_model_class is None:
        _generator_model_class = _build_generator_model_class()
    return _generator_model_class


def model_signature() -> "ModelSignature":
    """Input: n (a whole number), optional temperature, seed (a whole number), prefix
    (string). Output: sequence, text (strings)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema
    from mlflow.types.schema import AnyType

    # n and seed are of any type for MLflow's schema check, which would turn n = 2.7 into 2
    # as a "long" (and refuse 2 as a "double"); the model refuses anything but whole numbers.
    return ModelSignature(
        inputs=Schema([
            ColSpec(AnyType(), "n"),
            ColSpec("double", "temperature", required=False),
            ColSpec(AnyType(), "seed", required=False),
            ColSpec("string", "prefix", required=False),
        ]),
        outputs=Schema([ColSpec("string", "sequence"), ColSpec("string", "text")]),
    )


def load_generator_model(uri: str) -> Any:
    """The pyfunc model at ``uri`` (e.g. ``models:/seqgan-generator@champion``)."""
    import mlflow.pyfunc

    from ..tracking import client

    client()  # resolve the tracking/registry URI as the rest of the pipeline does
    return mlflow.pyfunc.load_model(uri)


def model_info(uri: str) -> "ModelInfo":
    """What MLflow knows of the model at ``uri`` (its MLmodel file, not its weights): raises
    MLflow's error for an unknown name, version or alias, as loading it would."""
    from mlflow.models import get_model_info

    from ..tracking import client

    client()  # resolve the tracking/registry URI as the rest of the pipeline does
    return get_model_info(uri)


def generate(model: Any, n: int, temperature: float = 1.0, seed: int = 0, prefix: str | None = None) -> list[str]:
    """``n`` generated texts from a loaded model (`load_generator_model`), for ``seqgan generate``."""
    import pandas as pd

    row: dict[str, list] = {"n": [int(n)], "temperature": [float(temperature)], "seed": [int(seed)]}
    if prefix:
        row["prefix"] = [str(prefix)]
    return [str(text) for text in model.predict(pd.DataFrame(row))["text"]]
