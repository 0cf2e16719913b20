"""The promotion gate: which registered version serves as ``champion``.

`promote` compares a candidate with the current champion and moves ``champion`` only when
the candidate is better by more than a margin on the same data version and scoring version
(settings and code that scored the metrics), without its guard metric (NLL-test) getting
worse than a tolerance, and when its registered checkpoint is the one its metrics were
scored from. With no champion yet, the guard is held against the MLE baseline of the same
evaluation instead; a candidate whose NLL-test is worse than uniform tokens is never
promoted. `rollback` points ``champion`` at a named version by hand; the version it replaces
stays out of service (the gate never re-promotes it) until a rollback names it again.
Every decision is recorded on the candidate (``gate.*`` tags, `Decision.to_tags`, and a
line of its description); a re-run with the same settings against the same champion reads
it back (`Decision.from_tags`) and writes nothing. Champion changes happen under
`lock.registry_lock`, which re-reads the champion inside it, so racing gates leave the
better candidate as champion.
"""
from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from ..contract import EXPERIMENTS, UNIFORM_NLL_METRIC
from .lock import registry_lock
from .registration import file_sha256
from .tags import (CHALLENGER, CHAMPION, CHECKPOINT_SHA_TAG, DATA_VERSION_TAG, EXPERIMENT_KIND_TAG,
                   SCORING_SETTINGS_TAG, SCORING_VERSION_TAG, baseline_of, client, format_value, metric_of,
                   parse_value)

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

GATE_TAG_PREFIX = "gate."
# Set by `rollback` on the version it takes out of service, and removed when a rollback puts
# that version back: while present, the gate does not re-promote the version.
REPLACED_BY_TAG, REPLACED_TIME_TAG, REPLACED_REASON_TAG = (
    "rollback.replaced_by", "rollback.replaced_time", "rollback.replaced_reason")
ROLLBACK_TIME_TAG, ROLLBACK_REASON_TAG = "rollback.time", "rollback.reason"
# The settings a recorded decision was made with: it is reused only when all of them match.
_SETTINGS = ("metric", "higher_is_better", "margin", "guard_metric", "guard_tolerance", "champion_before")


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

    def to_tags(self) -> dict[str, str]:
        """The ``gate.*`` version tags that record this decision (no guard tags without a guard)."""
        tags = {
            "outcome": "promoted" if self.promoted else "rejected",
            "reason": self.reason[:5000],
            "metric": self.metric,
            "higher_is_better": "true" if self.higher_is_better else "false",
            "margin": repr(float(self.margin)),
            "champion_version": self.champion_before or "",
            "candidate_value": format_value(self.candidate_value),
            "champion_value": format_value(self.champion_value),
            "time": self.time,
            "flow_run": self.flow_run or "",
        }
        if self.guard_metric:
            tags.update({"guard_metric": self.guard_metric, "guard_tolerance": repr(float(self.guard_tolerance)),
                         "candidate_guard": format_value(self.candidate_guard),
                         "champion_guard": format_value(self.champion_guard)})
        return {GATE_TAG_PREFIX + k: v for k, v in tags.items()}

    @classmethod
    def from_tags(cls, version: "ModelVersion", champion_after: str | None) -> "Decision | None":
        """The decision recorded on ``version``, or None when the gate never ran on it."""
        tags = {k[len(GATE_TAG_PREFIX):]: v for k, v in version.tags.items() if k.startswith(GATE_TAG_PREFIX)}
        if "outcome" not in tags:
            return None
        return cls(
            promoted=tags["outcome"] == "promoted", reason=tags.get("reason", ""), version=str(version.version),
            champion_before=tags.get("champion_version") or None, champion_after=champion_after,
            metric=tags.get("metric", ""), higher_is_better=tags.get("higher_is_better") == "true",
            margin=parse_value(tags.get("margin")) or 0.0,
            candidate_value=parse_value(tags.get("candidate_value")),
            champion_value=parse_value(tags.get("champion_value")),
            guard_metric=tags.get("guard_metric") or None,
            guard_tolerance=parse_value(tags.get("guard_tolerance")) or 0.0,
            candidate_guard=parse_value(tags.get("candidate_guard")),
            champion_guard=parse_value(tags.get("champion_guard")),
            data_version=version.tags.get(DATA_VERSION_TAG), time=tags.get("time", ""),
            flow_run=tags.get("flow_run") or None, recorded=True,
        )

    def made_with_same_settings(self, other: "Decision") -> bool:
        return all(getattr(self, name) == getattr(other, name) for name in _SETTINGS)

    def summary(self) -> str:
        """What to tell a person: the reason, and on a re-run that finds the version already
        champion, that nothing changed (the recorded reason alone would read as news)."""
        if self.recorded and self.champion_after == self.version and self.champion_before != self.version:
            return f"v{self.version} is already champion (decision recorded {self.time}: {self.reason})"
        return self.reason


def _champion(mlflow_client: "MlflowClient", model_name: str) -> "ModelVersion | None":
    from mlflow.exceptions import MlflowException

    try:
        return mlflow_client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


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
    cand = metric_of(candidate, metric)
    if not _finite(cand):
        return False, f"candidate v{candidate.version} has no finite {metric} ({_fmt(cand)}): a failed evaluation is never promoted"
    if guard_metric is not None and not _finite(metric_of(candidate, guard_metric)):
        return False, f"candidate v{candidate.version} has no finite guard metric {guard_metric} ({_fmt(metric_of(candidate, guard_metric))})"
    nll_test, uniform = metric_of(candidate, "nll_test"), metric_of(candidate, UNIFORM_NLL_METRIC)
    if _finite(uniform) and _finite(nll_test) and nll_test > uniform:
        return False, (
            f"candidate v{candidate.version} has NLL-test {_fmt(nll_test)}, worse than uniform tokens "
            f"({_fmt(uniform)} = ln vocab): a diverged or collapsed generator is never promoted, not even as the first"
        )
    if champion is None:
        return _first_champion(candidate, guard_metric, guard_tolerance, guard_higher_is_better)
    if why_not := _not_comparable(candidate, champion):
        return False, why_not
    champ = metric_of(champion, metric)
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
    champ_guard = metric_of(champion, guard_metric)
    if not _finite(champ_guard):
        return True, f"{why}; guard {guard_metric} not applied: champion has no finite value ({_fmt(champ_guard)})"
    within, guard = _guard(guard_metric, metric_of(candidate, guard_metric), champ_guard, "champion",
                           guard_tolerance, guard_higher_is_better)
    return (True, f"{why}; {guard}") if within else (False, f"{why}, but {guard}")


def _guard(guard_metric: str, candidate: float, reference: float, reference_name: str, tolerance: float,
           higher_is_better: bool) -> tuple[bool, str]:
    """Whether the candidate's guard metric is within ``tolerance`` of the reference's, and the comparison in words."""
    worse = reference - candidate if higher_is_better else candidate - reference
    comparison = f"guard {guard_metric} {_fmt(candidate)} vs {reference_name} {_fmt(reference)}"
    if worse > tolerance:
        return False, f"{comparison} is worse by {worse:.6g} > tolerance {tolerance:g}"
    return True, f"{comparison} within tolerance {tolerance:g}"


def _first_champion(candidate: "ModelVersion", guard_metric: str | None, guard_tolerance: float,
                    guard_higher_is_better: bool) -> tuple[bool, str]:
    """With no champion, the guard holds against the MLE generator scored in the same
    evaluation: a generator that only sharpened (or collapsed) its distribution would
    otherwise become champion and then block every honest successor."""
    first = "no champion yet: the first evaluated model becomes champion"
    if guard_metric is None:
        return True, first
    baseline = baseline_of(candidate, guard_metric)
    if not _finite(baseline):
        return True, f"{first}; guard {guard_metric} not applied: no finite MLE baseline recorded ({_fmt(baseline)})"
    within, guard = _guard(guard_metric, metric_of(candidate, guard_metric), baseline, "the MLE baseline",
                           guard_tolerance, guard_higher_is_better)
    if within:
        return True, f"{first}; {guard}"
    return False, f"no champion yet, but {guard}: a sharpened or collapsed generator is not made the first champion"


def _not_comparable(candidate: "ModelVersion", champion: "ModelVersion") -> str | None:
    """Why the two versions' metrics cannot be compared (other data, or scored under other
    settings or code), or None. A version registered before its scoring version was
    recorded is never comparable: nothing says how its metrics were scored."""
    cand_data, champ_data = candidate.tags.get(DATA_VERSION_TAG), champion.tags.get(DATA_VERSION_TAG)
    if not cand_data or cand_data != champ_data:
        return (f"data_version differs (candidate {cand_data or 'missing'}, champion v{champion.version} "
                f"{champ_data or 'missing'}): metrics are not comparable; promote by hand with rollback() if intended")
    cand_scoring, champ_scoring = candidate.tags.get(SCORING_VERSION_TAG), champion.tags.get(SCORING_VERSION_TAG)
    if not cand_scoring or cand_scoring != champ_scoring:
        return (f"scoring_version differs (candidate {cand_scoring or 'missing'}, champion v{champion.version} "
                f"{champ_scoring or 'missing'}; {_scoring_difference(candidate, champion)}): metrics scored under "
                "other settings or code are not comparable; re-evaluate the champion's checkpoint under the "
                "candidate's settings (`dvc repro evaluate@<experiment>` with it in place registers it again) and "
                "make that version champion with `seqgan rollback`, or put the candidate in service with "
                "`seqgan rollback`")
    return None


def _scoring_difference(candidate: "ModelVersion", champion: "ModelVersion") -> str:
    """Which scoring settings differ, in words (from the versions' recorded settings)."""
    settings = [json.loads(v.tags.get(SCORING_SETTINGS_TAG) or "null") for v in (candidate, champion)]
    if None in settings:
        which = "candidate" if settings[0] is None else f"champion v{champion.version}"
        return f"the {which} was registered before its scoring settings were recorded"
    cand, champ = settings
    differ = [f"{key}: {cand.get(key, 'missing')!r} vs {champ.get(key, 'missing')!r}"
              for key in sorted(set(cand) | set(champ)) if cand.get(key) != champ.get(key)]
    return "settings differ, " + "; ".join(differ) if differ else "same settings: the scoring code differs"


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

    It wins when there is no champion yet and ``guard_metric`` is not worse than its MLE
    baseline's by more than ``guard_tolerance``, or when it beats the champion on ``metric``
    by more than ``margin`` (higher or lower is better per ``higher_is_better``), both carry
    the same ``data_version`` and ``scoring_version`` tags, and ``guard_metric`` (lower is
    better unless ``guard_higher_is_better``) is not worse than the champion's by more than
    ``guard_tolerance``; and its registered generator is the checkpoint it was scored from.
    A missing or non-finite candidate metric is never promoted, nor a version a rollback
    took out of service.
    """
    version = str(version)
    mlflow_client = client()
    with registry_lock(lock_path):
        candidate = mlflow_client.get_model_version(model_name, version)
        champion = _champion(mlflow_client, model_name)
        champion_version = str(champion.version) if champion is not None else None
        recorded = Decision.from_tags(candidate, champion_version)
        asked = Decision(
            promoted=False, reason="", version=version, champion_before=champion_version,
            champion_after=champion_version, metric=metric, higher_is_better=higher_is_better, margin=float(margin),
            candidate_value=metric_of(candidate, metric), champion_value=metric_of(champion, metric),
            guard_metric=guard_metric, guard_tolerance=float(guard_tolerance) if guard_metric else 0.0,
            candidate_guard=metric_of(candidate, guard_metric), champion_guard=metric_of(champion, guard_metric),
            data_version=candidate.tags.get(DATA_VERSION_TAG), time=_now(), flow_run=flow_run,
        )

        if champion_version == version:
            return _already_champion(candidate, recorded, asked)
        if REPLACED_BY_TAG in candidate.tags:
            return replace(asked, promoted=False, reason=_rolled_back(model_name, candidate),
                           time=candidate.tags.get(REPLACED_TIME_TAG, ""), recorded=True)
        if recorded is not None and recorded.made_with_same_settings(asked):
            if not recorded.promoted:
                return recorded
            if _interrupted(recorded, champion):  # promoted, but the alias never moved (a crash between the writes)
                mlflow_client.set_registered_model_alias(model_name, CHAMPION, version)
                return replace(recorded, champion_after=version, recorded=False)
            # else the champion became champion again since (another gate, a rollback): decide anew

        promoted, reason = _decide(candidate, champion, metric, higher_is_better, float(margin),
                                   guard_metric, float(guard_tolerance), guard_higher_is_better)
        if promoted and (mismatch := _checkpoint_mismatch(model_name, candidate)):
            promoted, reason = False, mismatch
        decision = replace(asked, promoted=promoted, reason=reason, champion_after=version if promoted else champion_version)
        tags = decision.to_tags()
        mlflow_client.set_registered_model_alias(model_name, CHALLENGER, version)
        for stale in sorted(k for k in candidate.tags if k.startswith(GATE_TAG_PREFIX) and k not in tags):
            mlflow_client.delete_model_version_tag(model_name, version, stale)  # e.g. guard tags of an earlier decision
        for k, v in tags.items():  # one call each (~50 ms): MLflow has no batch for version tags
            mlflow_client.set_model_version_tag(model_name, version, k, v)
        _append_description(
            mlflow_client, model_name, candidate,
            f"[{decision.time}] gate: {tags['gate.outcome']} (champion before: "
            f"{'v' + champion_version if champion_version else 'none'}; flow run {flow_run or '-'}): {reason}",
        )
        if promoted:  # last, so a crash before it leaves a record that a re-run completes
            mlflow_client.set_registered_model_alias(model_name, CHAMPION, version)
        return decision


def _already_champion(candidate: "ModelVersion", recorded: Decision | None, asked: Decision) -> Decision:
    """A re-run on the champion: its latest record of becoming champion, the gate's or a rollback's."""
    rolled_back_at = candidate.tags.get(ROLLBACK_TIME_TAG, "")
    if recorded is not None and recorded.promoted and recorded.time > rolled_back_at:  # a tie: the rollback came last
        return recorded
    how = (f"made champion by rollback at {rolled_back_at}: {candidate.tags.get(ROLLBACK_REASON_TAG, '')}"
           if rolled_back_at else "made champion outside the gate")
    return replace(asked, promoted=True, reason=f"v{asked.version} is already champion ({how})", time=rolled_back_at,
                   recorded=True)


def _rolled_back(model_name: str, candidate: "ModelVersion") -> str:
    tags, version = candidate.tags, candidate.version
    return (f"v{version} was taken out of service by a rollback at {tags.get(REPLACED_TIME_TAG, '?')} (champion moved "
            f"to v{tags[REPLACED_BY_TAG]}: {tags.get(REPLACED_REASON_TAG, '')}); the gate does not re-promote it. "
            f"To put it back in service: `seqgan rollback --model {model_name} --version {version} --reason ...`")


def _became_champion_at(champion: "ModelVersion") -> str:
    """When the champion last became champion by the gate or a rollback ("" when neither recorded it)."""
    tags = champion.tags
    promoted_at = tags.get(GATE_TAG_PREFIX + "time", "") if tags.get(GATE_TAG_PREFIX + "outcome") == "promoted" else ""
    return max(promoted_at, tags.get(ROLLBACK_TIME_TAG, ""))


def _interrupted(recorded: Decision, champion: "ModelVersion | None") -> bool:
    """Whether a recorded promotion is one whose alias write never happened: the champion it
    was compared with has not become champion again since (a rollback or another gate
    would have moved the alias after the decision)."""
    return champion is None or _became_champion_at(champion) <= recorded.time


def _checkpoint_mismatch(model_name: str, candidate: "ModelVersion") -> str | None:
    """Why the registered generator is not the checkpoint the version's metrics were scored
    from (``checkpoint_sha256``), or None. A version registered before the hash was recorded
    has nothing to check against."""
    import mlflow
    from mlflow.models import Model

    expected = candidate.tags.get(CHECKPOINT_SHA_TAG)
    if not expected:
        return None
    with tempfile.TemporaryDirectory(prefix="seqgan-gate-") as tmp:
        local = mlflow.artifacts.download_artifacts(f"models:/{model_name}/{candidate.version}", dst_path=tmp)
        generator = Model.load(local).flavors["python_function"]["artifacts"]["generator"]["path"]
        actual = file_sha256(Path(local) / generator)
    if actual == expected:
        return None
    return (f"v{candidate.version}'s registered generator (sha256 {actual[:12]}) is not the checkpoint its metrics "
            f"were scored from (sha256 {expected[:12]}): its metrics belong to another model; register it again by "
            "re-running `evaluate` (`dvc repro -f evaluate@<experiment>`)")


def rollback(model_name: str, version: str, *, reason: str = "", lock_path: Path | str | None = None) -> None:
    """Point ``champion`` at ``version`` (normally an earlier one) and record it on both the
    new champion (``rollback.*`` tags, description) and the one it replaces, which the gate
    then never re-promotes (``rollback.replaced_*`` tags) until a rollback names it again.
    Bypasses the gate's rules on purpose: it is also how a model trained on a new
    ``data_version`` or scored under a new ``scoring_version`` is put in service. A no-op
    when ``version`` is already champion."""
    version = str(version)
    mlflow_client = client()
    with registry_lock(lock_path):
        target = mlflow_client.get_model_version(model_name, version)  # fails if it does not exist
        previous = _champion(mlflow_client, model_name)
        previous_version = str(previous.version) if previous is not None else None
        if previous_version == version:
            return
        when = _now()
        note = reason or "manual rollback"
        for k, v in {
            ROLLBACK_TIME_TAG: when, ROLLBACK_REASON_TAG: note[:5000], "rollback.replaced": previous_version or "",
        }.items():
            mlflow_client.set_model_version_tag(model_name, version, k, v)
        # Back in service: no longer out of the gate's reach (its description keeps why it left).
        for k in (REPLACED_BY_TAG, REPLACED_TIME_TAG, REPLACED_REASON_TAG):
            if k in target.tags:
                mlflow_client.delete_model_version_tag(model_name, version, k)
        _append_description(
            mlflow_client, model_name, target,
            f"[{when}] rollback: made champion, replacing {'v' + previous_version if previous_version else 'none'}: {note}",
        )
        if previous is not None:
            for k, v in {REPLACED_BY_TAG: version, REPLACED_TIME_TAG: when, REPLACED_REASON_TAG: note[:5000]}.items():
                mlflow_client.set_model_version_tag(model_name, previous_version, k, v)
            _append_description(
                mlflow_client, model_name, previous,
                f"[{when}] rollback: champion moved from this version to v{version}: {note}",
            )
        mlflow_client.set_registered_model_alias(model_name, CHAMPION, version)


class NotGateable(ValueError):
    """A version the gate has no rule for: the message names the cause and the fix."""


def experiment_of(model_name: str, version: str) -> str:
    """The experiment ("synthetic" / "real") a registered version was trained on (its tag)."""
    experiment = client().get_model_version(model_name, str(version)).tags.get(EXPERIMENT_KIND_TAG)
    if experiment not in EXPERIMENTS:
        found = "has no" if experiment is None else f"has an unknown ({experiment!r})"
        raise NotGateable(f"{model_name} v{version} {found} {EXPERIMENT_KIND_TAG!r} tag, so the gate has no rule "
                          f"for it (expected one of {EXPERIMENTS}): it was not registered by the evaluate stage. "
                          "Promote a version that `dvc repro` registered, or put this one in service by hand "
                          "with `seqgan rollback`")
    return experiment


def promote_version(model_name: str, version: str, *, margin: float | None = None, flow_run: str | None = None) -> Decision:
    """The gate with the rule of the version's experiment kind from params.yaml
    (`pipelines.contract`), optionally with another margin."""
    from ..config import load_params
    from ..contract import kind_of

    rule = kind_of(experiment_of(model_name, version)).gate_rule(load_params())
    if margin is not None:
        rule = replace(rule, margin=margin)
    return promote(model_name, version, **{f.name: getattr(rule, f.name) for f in fields(rule)}, flow_run=flow_run)
