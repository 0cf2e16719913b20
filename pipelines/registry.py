"""The model registry: package a trained generator as an MLflow pyfunc model, register it,
and decide which version serves as ``champion``.

Flow: the evaluate stage calls `register_generator` (logs the pyfunc model under its run,
creates a new version of the registered model, tags it with its metrics, its
``data_version`` and ``experiment_kind``, and points alias ``challenger`` at it); the gate
(`promote`) then compares the candidate with the current ``champion`` and moves
``champion`` only when the candidate is better by more than a margin on the same data.
`rollback` points ``champion`` back at a named version. Consumers load
``models:/NAME@champion`` (`load_generator_model`, `generate`, `seqgan generate`,
`mlflow models serve -m models:/NAME@champion --env-manager local`).

The packaged model (`GeneratorModel`) needs only mlflow, torch, pandas and ``seqgan_core``,
which travels with the model (``code_paths``): loading it does not need this repository.

Concurrency: `promote` and `rollback` serialise on an OS file lock (``fcntl.flock``) and
re-read the champion inside it, so two gates racing leave the better candidate as
champion. By default the lock file lies next to the SQLite database
(``<db>.registry.lock``); ``SEQGAN_REGISTRY_LOCK`` (or the ``lock_path`` argument) names
another one. A file lock serialises processes on one machine (or on a file system with
working ``flock``): with a remote tracking server and gates on several machines it does
not, and the gate needs a lock all of them share (a database advisory lock, a lock
service, or a single gate worker).

mlflow, torch and seqgan_core are imported inside the functions, so importing this module
(the CLI does) costs nothing.
"""
from __future__ import annotations

import fcntl
import math
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.models import ModelSignature

CHAMPION = "champion"
CHALLENGER = "challenger"
MODEL_ARTIFACT = "generator"  # name of the logged model (under the run's outputs)
METRIC_TAG_PREFIX = "metric."  # metrics are version tags "metric.<name>" = repr(float)
DATA_VERSION_TAG = "data_version"
EXPERIMENT_KIND_TAG = "experiment_kind"
# NLL of uniformly random tokens, ln(vocab): a generator whose NLL-test is above it has
# learnt less than nothing (diverged), whatever its NLL-oracle or BLEU say.
UNIFORM_NLL_METRIC = "nll_test_uniform"
LOCK_ENV = "SEQGAN_REGISTRY_LOCK"
MAX_SAMPLES_PER_ROW = 100_000  # a guard for the serving endpoint: n is per input row

# Decision tags that exist only when the gate used a guard metric (written or removed).
_GUARD_TAGS = ("gate.guard_metric", "gate.guard_tolerance", "gate.candidate_guard", "gate.champion_guard")


# ============================================================================ pyfunc model
def _build_generator_model_class() -> type:
    """Define `GeneratorModel` (a subclass of ``mlflow.pyfunc.PythonModel``).

    Defined inside a function for two reasons: ``import pipelines.registry`` must not import
    mlflow, and a class whose qualified name contains ``<locals>`` is pickled *by value* by
    cloudpickle, so the logged model does not refer to this module (``pipelines`` need not
    be importable where it is loaded). For the same reason the methods use only their own
    imports (torch, pandas, seqgan_core from the model's ``code`` folder), never helpers of
    this module.
    """
    import mlflow.pyfunc

    class GeneratorModel(mlflow.pyfunc.PythonModel):
        """A SeqGAN generator behind the pyfunc interface.

        Artifacts: ``generator`` (torch checkpoint ``{"config", "state_dict"}``), ``meta``
        (JSON: tokenizer, joiner, experiment_kind) and, for corpora, ``vocab`` (the
        `Vocabulary` JSON). Input: a DataFrame with ``n`` and optional ``temperature``
        (1.0), ``seed`` (0) and ``prefix`` ("") per row; output: one row per generated
        sequence with ``sequence`` (space-separated ids) and ``text`` (decoded text for a
        corpus, the ids for the synthetic experiment).
        """

        # The input is checked against the signature (a DataFrame schema), not type hints:
        # this stops PythonModel.__init_subclass__ from warning "Add type hints to predict"
        # each time the class is made (here and whenever a model is unpickled).
        _skip_type_hint_validation = True

        def load_context(self, context):
            import json

            import torch
            from seqgan_core import Generator
            from seqgan_core.corpus import Vocabulary

            checkpoint = torch.load(context.artifacts["generator"], map_location="cpu", weights_only=True)
            model = Generator(**checkpoint["config"])
            model.load_state_dict(checkpoint["state_dict"])
            self.model = model.eval()
            meta_path = context.artifacts.get("meta")
            self.meta = json.loads(open(meta_path, encoding="utf-8").read()) if meta_path else {}
            vocab_path = context.artifacts.get("vocab")
            self.vocab = Vocabulary.load(vocab_path) if vocab_path else None
            if self.vocab is not None and len(self.vocab) != self.model.vocab_size:
                raise ValueError(
                    f"vocabulary has {len(self.vocab)} tokens but the generator's vocab_size is "
                    f"{self.model.vocab_size}: the checkpoint and vocabulary do not belong together"
                )

        def _prefix_ids(self, prefix):
            """Prefix ids from a prefix cell: None/NaN/"" = no prefix."""
            if prefix is None or (isinstance(prefix, float) and prefix != prefix) or str(prefix).strip() == "":
                return None
            prefix = str(prefix)
            if self.vocab is None:
                try:
                    ids = [int(token) for token in prefix.split()]
                except ValueError:
                    raise ValueError(
                        f"prefix {prefix!r}: the synthetic generator takes space-separated token ids"
                    ) from None
                bad = [i for i in ids if not 0 <= i < self.model.vocab_size]
                if bad:
                    raise ValueError(f"prefix ids {bad} are outside the vocabulary [0, {self.model.vocab_size})")
            else:
                from seqgan_core.corpus import tokenize

                ids = self.vocab.encode(tokenize(prefix, self.meta.get("tokenizer", "char")))
            if len(ids) > self.model.seq_len:
                raise ValueError(f"prefix has {len(ids)} tokens; sequences have {self.model.seq_len}")
            return ids

        def predict(self, context, model_input, params=None):
            import pandas as pd
            import torch

            frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
            if "n" not in frame.columns:
                raise ValueError("input needs a column 'n' (sequences to generate per row)")
            joiner = self.meta.get("joiner", " ")
            sequences, texts = [], []
            for row in frame.to_dict("records"):
                n = int(row["n"])
                if not 1 <= n <= self.max_samples:
                    raise ValueError(f"n must be in [1, {self.max_samples}], got {n}")
                temperature = row.get("temperature")
                temperature = 1.0 if temperature is None or temperature != temperature else float(temperature)
                if not (temperature > 0 and temperature != float("inf")):
                    raise ValueError(f"temperature must be a finite number > 0, got {temperature}")
                seed = row.get("seed")
                seed = 0 if seed is None or seed != seed else int(seed)
                prefix = self._prefix_ids(row.get("prefix"))
                rng = torch.Generator().manual_seed(seed)
                with torch.no_grad():
                    ids = self.model.sample(
                        n, rng=rng, temperature=temperature,
                        prefix=None if prefix is None else torch.tensor(prefix, dtype=torch.long),
                    ).tolist()
                for seq in ids:
                    sequences.append(" ".join(map(str, seq)))
                    texts.append(joiner.join(self.vocab.decode(seq)) if self.vocab is not None else sequences[-1])
            return pd.DataFrame({"sequence": sequences, "text": texts})

    GeneratorModel.max_samples = MAX_SAMPLES_PER_ROW
    return GeneratorModel


_generator_model_class: type | None = None


def generator_model_class() -> type:
    """The `GeneratorModel` class (built once; importing it imports mlflow)."""
    global _generator_model_class
    if _generator_model_class is None:
        _generator_model_class = _build_generator_model_class()
    return _generator_model_class


def model_signature() -> "ModelSignature":
    """Input: n (long), optional temperature (double), seed (long), prefix (string).
    Output: sequence, text (strings)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    return ModelSignature(
        inputs=Schema([
            ColSpec("long", "n"),
            ColSpec("double", "temperature", required=False),
            ColSpec("long", "seed", required=False),
            ColSpec("string", "prefix", required=False),
        ]),
        outputs=Schema([ColSpec("string", "sequence"), ColSpec("string", "text")]),
    )


def _pip_requirements() -> list[str]:
    """Pinned to what is installed (no inference subprocess). torch's local version tag
    (``+cpu``) is dropped: the CPU build needs the PyTorch index, a pip option, not a pin."""
    from importlib.metadata import version

    reqs = []
    for package in ("mlflow", "torch", "numpy", "pandas", "cloudpickle"):
        reqs.append(f"{package}=={version(package).split('+')[0]}")
    return reqs


# ============================================================================ registration
def _client() -> "MlflowClient":
    from .tracking import client

    return client()  # sets mlflow's tracking URI from MLFLOW_TRACKING_URI / the repo default


def _format_value(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def _parse_value(text: str | None) -> float | None:
    if text is None or text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return None


def register_generator(
    *,
    run_id: str,
    model_name: str,
    checkpoint: Path,
    vocab: Path | None,
    tokenizer: str,
    metrics: Mapping[str, float],
    data_version: str,
    experiment_kind: str,
) -> str:
    """Log the generator as a pyfunc model under ``run_id``, register it as a new version of
    ``model_name`` (created if missing) and point alias ``challenger`` at it.

    ``tokenizer`` is "char" or "whitespace" for a corpus (decoded text is joined with "" or
    " ") and ignored without ``vocab``. The version's tags: ``metric.<name>`` for each
    metric (``repr(float)``; "nan" marks a failed evaluation, which the gate never promotes),
    ``data_version``, ``experiment_kind``, ``tokenizer``. Returns the version number.
    The run is not resumed or ended (its status is left to the stage that owns it).
    """
    import json

    import mlflow
    import mlflow.pyfunc
    from mlflow.models import Model

    import seqgan_core  # imported here so that logging's serving-input check reuses it (see below)

    checkpoint, vocab = Path(checkpoint), (Path(vocab) if vocab is not None else None)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"generator checkpoint {checkpoint} does not exist")
    if vocab is not None and not vocab.is_file():
        raise FileNotFoundError(f"vocabulary {vocab} does not exist")
    if vocab is not None and tokenizer not in ("char", "whitespace"):
        raise ValueError(f"tokenizer must be 'char' or 'whitespace' for a corpus, got {tokenizer!r}")
    mlflow_client = _client()
    run = mlflow_client.get_run(run_id)  # fails early and clearly on a wrong run id

    meta = {
        "experiment_kind": experiment_kind,
        "tokenizer": tokenizer if vocab is not None else "ids",
        "joiner": ("" if tokenizer == "char" else " ") if vocab is not None else " ",
        "data_version": data_version,
    }
    with tempfile.TemporaryDirectory(prefix="seqgan-register-") as tmp:
        meta_path = Path(tmp) / "meta.json"
        meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        artifacts = {"generator": str(checkpoint), "meta": str(meta_path)}
        if vocab is not None:
            artifacts["vocab"] = str(vocab)
        import pandas as pd

        # `Model.log` rather than `mlflow.pyfunc.log_model`: it takes run_id, so the run is
        # neither resumed nor ended (`start_run(run_id=...)` would mark it FINISHED).
        # The LoggedModel is created here, in the run's experiment: left to `Model.log`
        # without an active run, it lands in the *default* experiment (id 0), whose artifact
        # root is ./mlruns under the current directory.
        logged = mlflow_client.create_logged_model(
            experiment_id=run.info.experiment_id, name=MODEL_ARTIFACT, source_run_id=run_id,
            model_type="seqgan-generator",
            tags={DATA_VERSION_TAG: data_version, EXPERIMENT_KIND_TAG: experiment_kind},
        )
        # The input example is validated by loading the model in this process, which puts
        # the copied code folder (in a temp folder, deleted afterwards) first on sys.path:
        # seqgan_core is already imported above, so this process keeps the repository's copy,
        # and sys.path is restored afterwards.
        saved_path = list(sys.path)
        try:
            info = Model.log(
                artifact_path=None,
                name=MODEL_ARTIFACT,
                flavor=mlflow.pyfunc,
                run_id=run_id,
                model_id=logged.model_id,
                python_model=generator_model_class()(),
                artifacts=artifacts,
                code_paths=[str(Path(seqgan_core.__file__).parent)],
                pip_requirements=_pip_requirements(),
                signature=model_signature(),
                input_example=pd.DataFrame({"n": [2], "temperature": [1.0], "seed": [0], "prefix": [""]}),
                metadata={"experiment_kind": experiment_kind, "data_version": data_version},
            )
        finally:
            sys.path[:] = saved_path

    tags = {f"{METRIC_TAG_PREFIX}{k}": _format_value(v) for k, v in metrics.items()}
    tags.update({DATA_VERSION_TAG: data_version, EXPERIMENT_KIND_TAG: experiment_kind, "tokenizer": meta["tokenizer"]})
    version = mlflow.register_model(info.model_uri, model_name, tags=tags)
    mlflow_client.set_registered_model_alias(model_name, CHALLENGER, version.version)
    return str(version.version)


# ============================================================================ the gate
@dataclass(frozen=True)
class Decision:
    """One gate decision. ``recorded`` is True when it was read back from the version's
    tags (a re-run: nothing was written)."""

    promoted: bool
    reason: str
    version: str
    champion_before: str | None
    champion_after: str | None
    metric: str
    higher_is_better: bool
    margin: float
    candidate_value: float | None
    champion_value: float | None
    guard_metric: str | None = None
    guard_tolerance: float = 0.0
    candidate_guard: float | None = None
    champion_guard: float | None = None
    data_version: str | None = None
    time: str = ""
    flow_run: str | None = None
    recorded: bool = False


def _lock_path(explicit: Path | str | None) -> Path:
    if explicit is not None:
        return Path(explicit)
    if env := os.environ.get(LOCK_ENV):
        return Path(env)
    import mlflow

    uri = mlflow.get_registry_uri()
    if uri.startswith("sqlite:///"):
        db = uri[len("sqlite:///"):].split("?", 1)[0]
        if db and db != ":memory:":
            return Path(db).with_name(Path(db).name + ".registry.lock")
    # Not a local SQLite store: this lock serialises gates on this machine only.
    import hashlib

    digest = hashlib.sha256(uri.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"seqgan-registry-{digest}.lock"



@contextmanager
def registry_lock(lock_path: Path | str | None = None) -> Iterator[Path]:
    """Exclusive lock for champion changes: ``flock`` on a lock file (processes; each call
    opens its own file description, so threads exclude each other too)."""
    path = _lock_path(lock_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield path
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _champion(mlflow_client: "MlflowClient", model_name: str) -> "ModelVersion | None":
    from mlflow.exceptions import MlflowException

    try:
        return mlflow_client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def _metric(version: "ModelVersion | None", name: str | None) -> float | None:
    """A version's metric from its tags ("metric.<name>", or "<name>" as set by hand)."""
    if version is None or name is None:
        return None
    key = name if name.startswith(METRIC_TAG_PREFIX) else f"{METRIC_TAG_PREFIX}{name}"
    value = version.tags.get(key, version.tags.get(name))
    return _parse_value(value)


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _fmt(value: float | None) -> str:
    return "missing" if value is None else f"{value:.6g}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _decide(
    candidate: "ModelVersion",
    champion: "ModelVersion | None",
    metric: str,
    higher_is_better: bool,
    margin: float,
    guard_metric: str | None,
    guard_tolerance: float,
    guard_higher_is_better: bool,
) -> tuple[bool, str]:
    """The rules, as a pure function of the two versions' tags."""
    cand = _metric(candidate, metric)
    if not _finite(cand):
        return False, f"candidate v{candidate.version} has no finite {metric} ({_fmt(cand)}): a failed evaluation is never promoted"
    if guard_metric is not None and not _finite(_metric(candidate, guard_metric)):
        return False, f"candidate v{candidate.version} has no finite guard metric {guard_metric} ({_fmt(_metric(candidate, guard_metric))})"
    nll_test, uniform = _metric(candidate, "nll_test"), _metric(candidate, UNIFORM_NLL_METRIC)
    if _finite(uniform) and _finite(nll_test) and nll_test > uniform:
        return False, (
            f"candidate v{candidate.version} has NLL-test {_fmt(nll_test)}, worse than uniform tokens "
            f"({_fmt(uniform)} = ln vocab): a diverged or collapsed generator is never promoted, not even as the first"
        )
    if champion is None:
        return True, "no champion yet: the first evaluated model becomes champion"
    cand_data, champ_data = candidate.tags.get(DATA_VERSION_TAG), champion.tags.get(DATA_VERSION_TAG)
    if not cand_data or cand_data != champ_data:
        return False, (
            f"data_version differs (candidate {cand_data or 'missing'}, champion v{champion.version} "
            f"{champ_data or 'missing'}): metrics are not comparable; promote by hand with rollback() if intended"
        )
    champ = _metric(champion, metric)
    direction = "higher" if higher_is_better else "lower"
    if not _finite(champ):
        verdict, why = True, f"champion v{champion.version} has no finite {metric} ({_fmt(champ)})"
    else:
        gain = cand - champ if higher_is_better else champ - cand
        verdict = gain > margin
        why = (
            f"{metric} {_fmt(cand)} vs champion v{champion.version} {_fmt(champ)} ({direction} is better): "
            f"improvement {gain:.6g} {'>' if verdict else '<='} margin {margin:g}"
        )
    if not verdict or guard_metric is None:
        return verdict, why
    cand_guard, champ_guard = _metric(candidate, guard_metric), _metric(champion, guard_metric)
    if not _finite(champ_guard):
        return True, f"{why}; guard {guard_metric} not applied: champion has no finite value ({_fmt(champ_guard)})"
    worse = cand_guard - champ_guard if not guard_higher_is_better else champ_guard - cand_guard
    if worse > guard_tolerance:
        return False, (
            f"{why}, but guard {guard_metric} {_fmt(cand_guard)} vs champion {_fmt(champ_guard)} "
            f"is worse by {worse:.6g} > tolerance {guard_tolerance:g}"
        )
    return True, f"{why}; guard {guard_metric} {_fmt(cand_guard)} vs {_fmt(champ_guard)} within tolerance {guard_tolerance:g}"


def _recorded_decision(version: "ModelVersion", champion_after: str | None) -> Decision | None:
    tags = version.tags
    if "gate.outcome" not in tags:
        return None
    return Decision(
        promoted=tags["gate.outcome"] == "promoted",
        reason=tags.get("gate.reason", ""),
        version=str(version.version),
        champion_before=tags.get("gate.champion_version") or None,
        champion_after=champion_after,
        metric=tags.get("gate.metric", ""),
        higher_is_better=tags.get("gate.higher_is_better") == "true",
        margin=_parse_value(tags.get("gate.margin")) or 0.0,
        candidate_value=_parse_value(tags.get("gate.candidate_value")),
        champion_value=_parse_value(tags.get("gate.champion_value")),
        guard_metric=tags.get("gate.guard_metric") or None,
        guard_tolerance=_parse_value(tags.get("gate.guard_tolerance")) or 0.0,
        candidate_guard=_parse_value(tags.get("gate.candidate_guard")),
        champion_guard=_parse_value(tags.get("gate.champion_guard")),
        data_version=tags.get(DATA_VERSION_TAG),
        time=tags.get("gate.time", ""),
        flow_run=tags.get("gate.flow_run") or None,
        recorded=True,
    )


def _append_description(mlflow_client: "MlflowClient", model_name: str, version: "ModelVersion", line: str) -> None:
    text = (version.description or "").rstrip("\n")
    mlflow_client.update_model_version(model_name, version.version, description=f"{text}\n{line}".lstrip("\n"))


def promote(
    model_name: str,
    version: str,
    *,
    metric: str,
    higher_is_better: bool,
    margin: float,
    guard_metric: str | None = None,
    guard_tolerance: float = 0.0,
    guard_higher_is_better: bool = False,
    flow_run: str | None = None,
    lock_path: Path | str | None = None,
) -> Decision:
    """The promotion gate: alias ``challenger`` on ``version``, and ``champion`` if it wins.

    It wins when there is no champion yet, or when it beats the champion on ``metric`` by
    more than ``margin`` (higher or lower is better per ``higher_is_better``), both carry the
    same ``data_version`` tag, and ``guard_metric`` (lower is better unless
    ``guard_higher_is_better``) is not worse than the champion's by more than
    ``guard_tolerance``. A missing or non-finite candidate metric is never promoted.

    The decision is written as ``gate.*`` tags on the candidate and appended to its
    description. A re-run with the same settings against the same champion (or on the
    champion itself) returns the recorded decision and writes nothing. Everything from
    reading the champion to moving it happens under `registry_lock`.
    """
    version = str(version)
    margin, guard_tolerance = float(margin), float(guard_tolerance)
    mlflow_client = _client()
    with registry_lock(lock_path):
        candidate = mlflow_client.get_model_version(model_name, version)
        champion = _champion(mlflow_client, model_name)
        champion_version = str(champion.version) if champion is not None else None

        if champion_version == version:
            recorded = _recorded_decision(candidate, champion_version)
            if recorded is not None and recorded.promoted:
                return recorded
            return Decision(
                promoted=True, reason=f"v{version} is already champion", version=version,
                champion_before=version, champion_after=version, metric=metric,
                higher_is_better=higher_is_better, margin=margin,
                candidate_value=_metric(candidate, metric), champion_value=_metric(candidate, metric),
                guard_metric=guard_metric, guard_tolerance=guard_tolerance,
                candidate_guard=_metric(candidate, guard_metric), champion_guard=_metric(candidate, guard_metric),
                data_version=candidate.tags.get(DATA_VERSION_TAG), flow_run=flow_run, recorded=True,
            )

        # The idempotency key: a recorded decision is reused when all of these match.
        key = {
            "gate.metric": metric,
            "gate.higher_is_better": "true" if higher_is_better else "false",
            "gate.margin": repr(margin),
            "gate.guard_metric": guard_metric or "",
            "gate.guard_tolerance": repr(guard_tolerance) if guard_metric else "",
            "gate.champion_version": champion_version or "",
        }
        recorded = _recorded_decision(candidate, champion_version)
        if recorded is not None and all(candidate.tags.get(k, "") == v for k, v in key.items()):
            # Promoted but the alias never moved (a crash between the writes): finish the job.
            if recorded.promoted:
                mlflow_client.set_registered_model_alias(model_name, CHAMPION, version)
                return replace(recorded, champion_after=version)
            return recorded

        promoted, reason = _decide(
            candidate, champion, metric, higher_is_better, margin,
            guard_metric, guard_tolerance, guard_higher_is_better,
        )
        decision = Decision(
            promoted=promoted, reason=reason, version=version,
            champion_before=champion_version,
            champion_after=version if promoted else champion_version,
            metric=metric, higher_is_better=higher_is_better, margin=margin,
            candidate_value=_metric(candidate, metric), champion_value=_metric(champion, metric),
            guard_metric=guard_metric, guard_tolerance=guard_tolerance,
            candidate_guard=_metric(candidate, guard_metric), champion_guard=_metric(champion, guard_metric),
            data_version=candidate.tags.get(DATA_VERSION_TAG), time=_now(), flow_run=flow_run,
        )
        tags = {
            **key,
            "gate.outcome": "promoted" if promoted else "rejected",
            "gate.reason": reason[:5000],
            "gate.candidate_value": _format_value(decision.candidate_value),
            "gate.champion_value": _format_value(decision.champion_value),
            "gate.candidate_guard": _format_value(decision.candidate_guard),
            "gate.champion_guard": _format_value(decision.champion_guard),
            "gate.time": decision.time,
            "gate.flow_run": flow_run or "",
        }
        mlflow_client.set_registered_model_alias(model_name, CHALLENGER, version)
        for k, v in tags.items():  # one call each (~50 ms): MLflow has no batch for version tags
            if k in _GUARD_TAGS and not guard_metric:
                if candidate.tags.get(k):  # left by an earlier decision that used a guard
                    mlflow_client.delete_model_version_tag(model_name, version, k)
            else:
                mlflow_client.set_model_version_tag(model_name, version, k, v)
        _append_description(
            mlflow_client, model_name, candidate,
            f"[{decision.time}] gate: {tags['gate.outcome']} (champion before: "
            f"{'v' + champion_version if champion_version else 'none'}; flow run {flow_run or '-'}): {reason}",
        )
        if promoted:  # last, so a crash before it leaves a record that a re-run completes
            mlflow_client.set_registered_model_alias(model_name, CHAMPION, version)
        return decision


def rollback(model_name: str, version: str, *, reason: str = "", lock_path: Path | str | None = None) -> None:
    """Point ``champion`` at ``version`` (normally an earlier one) and record it on both the
    new champion (``rollback.*`` tags, description) and the one it replaces. Bypasses the
    gate's rules on purpose: it is also how a model trained on a new ``data_version`` is put
    in service. A no-op when ``version`` is already champion."""
    version = str(version)
    mlflow_client = _client()
    with registry_lock(lock_path):
        target = mlflow_client.get_model_version(model_name, version)  # fails if it does not exist
        previous = _champion(mlflow_client, model_name)
        previous_version = str(previous.version) if previous is not None else None
        if previous_version == version:
            return
        when = _now()
        note = reason or "manual rollback"
        for k, v in {
            "rollback.time": when, "rollback.reason": note[:5000], "rollback.replaced": previous_version or "",
        }.items():
            mlflow_client.set_model_version_tag(model_name, version, k, v)
        _append_description(
            mlflow_client, model_name, target,
            f"[{when}] rollback: made champion, replacing {'v' + previous_version if previous_version else 'none'}: {note}",
        )
        if previous is not None:
            for k, v in {"rollback.replaced_by": version, "rollback.replaced_time": when,
                         "rollback.replaced_reason": note[:5000]}.items():
                mlflow_client.set_model_version_tag(model_name, previous_version, k, v)
            _append_description(
                mlflow_client, model_name, previous,
                f"[{when}] rollback: champion moved from this version to v{version}: {note}",
            )
        mlflow_client.set_registered_model_alias(model_name, CHAMPION, version)


# ============================================================================ consumers
def load_generator_model(uri: str) -> Any:
    """The pyfunc model at ``uri`` (e.g. ``models:/seqgan-generator@champion``)."""
    import mlflow.pyfunc

    _client()  # resolve the tracking/registry URI as the rest of the pipeline does
    return mlflow.pyfunc.load_model(uri)


def generate(uri: str, n: int, temperature: float = 1.0, seed: int = 0, prefix: str | None = None) -> list[str]:
    """``n`` generated texts from the model at ``uri`` (for ``seqgan generate``)."""
    import pandas as pd

    row: dict[str, list] = {"n": [int(n)], "temperature": [float(temperature)], "seed": [int(seed)]}
    if prefix:
        row["prefix"] = [str(prefix)]
    out = load_generator_model(uri).predict(pd.DataFrame(row))
    return [str(text) for text in out["text"]]
