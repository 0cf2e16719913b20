"""The model registry on a real SQLite MLflow store (no mocks): packaging and registering a
generator, loading it back as a pyfunc model, the promotion gate's rules, its idempotence,
racing gates (threads and processes) and rollback; and the `seqgan` commands that read the
registry, refusing what they cannot do with a message instead of a traceback.

One store per module (creating one runs migrations: 4-9 s). Two versions are logged for
real (a corpus model with a vocabulary and a synthetic one); the gate tests make further
versions that reuse the first one's files, since the gate reads only tags and aliases.
Each gate test uses its own registered model name, so champions never leak between tests.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch

from conftest import REPO_ROOT, seqgan_command

from pipelines import registry
from seqgan_core import Generator
from seqgan_core.corpus import Vocabulary

pd = pytest.importorskip("pandas")
mlflow = pytest.importorskip("mlflow")

REPO = Path(__file__).resolve().parents[1]
CONFIG = {"vocab_size": 20, "emb_dim": 8, "hidden_dim": 8, "seq_len": 6, "start_token": 0}
TOKENS = ["<eos>", "<unk>", *"abcdefghijklmnopqr"]  # 20 tokens: ids 2.. are the letters
SCORING_SETTINGS = {"bleu_references": "test split (100 sentences)", "bleu_orders": [2, 3]}
QUIET_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


# ------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A SQLite tracking store with one run and two registered generator versions."""
    root = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {**QUIET_ENV, "MLFLOW_TRACKING_URI": uri}.items():
            mp.setenv(key, value)
        mp.delenv(registry.LOCK_ENV, raising=False)
        mp.delenv(registry.LOCK_DSN_ENV, raising=False)
        mp.delenv("MLFLOW_REGISTRY_URI", raising=False)
        client = registry.client()
        experiment = client.create_experiment("registry-test", artifact_location=(root / "artifacts").as_uri())
        run_id = client.create_run(experiment).info.run_id

        path_before = set(sys.path)  # earlier tests may have loaded models in this process
        torch.manual_seed(0)
        checkpoint = root / "generator.pt"
        torch.save({"config": CONFIG, "state_dict": Generator(**CONFIG).state_dict()}, checkpoint)
        vocab_path = root / "vocab.json"
        Vocabulary(TOKENS).save(vocab_path)

        scoring = {"scoring_version": "s1", "scoring_settings": SCORING_SETTINGS}
        corpus_version = registry.register_generator(
            run_id=run_id, model_name="gen-corpus", checkpoint=checkpoint, vocab=vocab_path,
            tokenizer="char", metrics={"nll_test": 2.5, "bleu2": 0.4}, data_version="corpus-v1",
            experiment_kind="real", baseline={"nll_test": 2.4, "bleu2": 0.35}, **scoring,
        )
        synthetic_version = registry.register_generator(
            run_id=run_id, model_name="gen-synthetic", checkpoint=checkpoint, vocab=None,
            tokenizer="char", metrics={"nll_oracle": 9.1, "nll_test": float("nan")},
            data_version="oracle-v1", experiment_kind="synthetic", baseline={"nll_test": 2.4}, **scoring,
        )
        leftover_code_paths = [
            p for p in sys.path if p not in path_before and p.rstrip(os.sep).endswith(f"{os.sep}code")
        ]
        yield {
            "leftover_code_paths": leftover_code_paths,
            "root": root, "uri": uri, "client": client, "run_id": run_id,
            "corpus": corpus_version, "synthetic": synthetic_version,
            "source": client.get_model_version("gen-corpus", corpus_version).source,
            "checkpoint_sha256": hashlib.sha256(checkpoint.read_bytes()).hexdigest(),
        }


@pytest.fixture(scope="module")
def corpus_model(store):
    return mlflow.pyfunc.load_model("models:/gen-corpus@challenger")


@pytest.fixture(scope="module")
def synthetic_model(store):
    return mlflow.pyfunc.load_model("models:/gen-synthetic@challenger")


def make_version(store, name: str, data_version: str = "d1", *, tags: dict[str, str] | None = None,
                 **metrics: float) -> str:
    """A registered version that reuses the real model's files, tagged like
    `register_generator` tags its versions (the gate reads nothing else besides the files'
    hash, which it checks only when ``checkpoint_sha256`` is among ``tags``)."""
    client = store["client"]
    try:
        client.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(name)
    tags = {"scoring_version": "s1", **(tags or {})}
    tags.update({f"metric.{k}": repr(float(v)) for k, v in metrics.items()})
    tags.update({"data_version": data_version, "experiment_kind": "real"})
    return str(client.create_model_version(name, store["source"], run_id=store["run_id"], tags=tags).version)


def champion(store, name: str) -> str | None:
    try:
        return str(store["client"].get_model_version_by_alias(name, "champion").version)
    except mlflow.exceptions.MlflowException:
        return None


def version_state(store, name: str) -> dict:
    """Everything the gate may write: every version's tags and description, and the aliases."""
    client = store["client"]
    versions = client.search_model_versions(f"name = '{name}'")
    return {
        "versions": {v.version: (dict(v.tags), v.description) for v in versions},
        "aliases": dict(client.get_registered_model(name).aliases),
    }


NLL = {"metric": "nll", "higher_is_better": False, "margin": 0.05}


def frame(**columns) -> "pd.DataFrame":
    return pd.DataFrame({k: v if isinstance(v, list) else [v] for k, v in columns.items()})


def ids_of(out: "pd.DataFrame") -> list[list[int]]:
    return [[int(i) for i in s.split()] for s in out["sequence"]]


# ------------------------------------------------------------------- import cost
def test_import_does_not_import_mlflow_or_torch():
    code = "import sys, pipelines.registry as r; print(sorted({'mlflow', 'torch'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------- registration
def test_register_sets_challenger_tags_metrics_and_leaves_run_alone(store):
    client = store["client"]
    version = client.get_model_version_by_alias("gen-corpus", "challenger")
    assert str(version.version) == store["corpus"]
    assert version.tags["metric.nll_test"] == "2.5"
    assert version.tags["metric.bleu2"] == "0.4"
    assert version.tags["data_version"] == "corpus-v1"
    assert version.tags["experiment_kind"] == "real"
    assert version.tags["baseline.nll_test"] == "2.4" and version.tags["scoring_version"] == "s1"
    assert json.loads(version.tags["scoring_settings"]) == SCORING_SETTINGS
    assert version.tags["checkpoint_sha256"] == store["checkpoint_sha256"]
    assert version.run_id == store["run_id"]
    # The model's files live in the run's experiment, not the default one (./mlruns).
    logged = client.get_logged_model(version.source.removeprefix("models:/"))
    assert logged.experiment_id == client.get_run(store["run_id"]).info.experiment_id
    assert logged.artifact_location.startswith((store["root"] / "artifacts").as_uri())
    assert logged.status.to_proto() == mlflow.entities.LoggedModelStatus.READY.to_proto()
    synthetic = client.get_model_version_by_alias("gen-synthetic", "challenger")
    assert synthetic.tags["metric.nll_test"] == "nan"
    assert synthetic.tags["experiment_kind"] == "synthetic"
    # Registration neither ends the stage's run nor crowns anything.
    assert client.get_run(store["run_id"]).info.status == "RUNNING"
    assert champion(store, "gen-corpus") is None
    # Logging validates the input example by loading the model from a temp folder; the
    # temp code folder it put on sys.path is gone again.
    assert store["leftover_code_paths"] == []


def test_signature_documents_optional_columns(corpus_model):
    inputs = {c.name: c for c in corpus_model.metadata.get_input_schema().inputs}
    assert set(inputs) == {"n", "temperature", "seed", "prefix"}
    assert inputs["n"].required and not any(inputs[k].required for k in ("temperature", "seed", "prefix"))
    outputs = [c.name for c in corpus_model.metadata.get_output_schema().inputs]
    assert outputs == ["sequence", "text"]


def test_requirements_are_pinned_without_inference(store):
    local = mlflow.artifacts.download_artifacts(f"models:/gen-corpus/{store['corpus']}")
    reqs = (Path(local) / "requirements.txt").read_text().split()
    names = {r.split("==")[0] for r in reqs}
    assert {"mlflow", "torch", "pandas"} <= names
    assert all("==" in r and "+" not in r for r in reqs), reqs
    assert (Path(local) / "code" / "seqgan_core" / "lstm.py").is_file()


# ------------------------------------------------------------------- the pyfunc model
def test_corpus_model_generates_n_rows_in_range_with_decoded_text(corpus_model):
    out = corpus_model.predict(frame(n=7))
    assert list(out.columns) == ["sequence", "text"] and len(out) == 7
    vocab = Vocabulary(TOKENS)
    for row, text in zip(ids_of(out), out["text"]):
        assert len(row) == CONFIG["seq_len"]
        assert all(0 <= i < CONFIG["vocab_size"] for i in row)
        assert text == "".join(vocab.decode(row))  # char tokeniser: joined with ""


def test_synthetic_model_text_is_the_ids(synthetic_model):
    out = synthetic_model.predict(frame(n=3, seed=4))
    assert len(out) == 3
    assert list(out["text"]) == list(out["sequence"])


def test_seed_determinism(corpus_model):
    a = corpus_model.predict(frame(n=20, seed=3, temperature=1.0))
    b = corpus_model.predict(frame(n=20, seed=3, temperature=1.0))
    c = corpus_model.predict(frame(n=20, seed=4, temperature=1.0))
    assert a.equals(b)
    assert not a.equals(c)
    # The defaults are seed 0, temperature 1.0.
    assert corpus_model.predict(frame(n=5)).equals(corpus_model.predict(frame(n=5, seed=0, temperature=1.0)))


def test_prefix_is_respected(corpus_model, synthetic_model):
    out = corpus_model.predict(frame(n=6, prefix="cab", seed=1))
    a, b, c = TOKENS.index("a"), TOKENS.index("b"), TOKENS.index("c")
    assert all(row[:3] == [c, a, b] for row in ids_of(out))
    assert all(text.startswith("cab") for text in out["text"])
    out = synthetic_model.predict(frame(n=4, prefix="5 17"))
    assert all(row[:2] == [5, 17] for row in ids_of(out))
    with pytest.raises(Exception, match="outside the vocabulary"):
        synthetic_model.predict(frame(n=1, prefix="5 99"))


def test_several_rows_and_missing_optional_cells(corpus_model):
    out = corpus_model.predict(pd.DataFrame({"n": [2, 3], "temperature": [0.5, 2.0], "prefix": ["d", None]}))
    assert len(out) == 5
    assert all(t.startswith("d") for t in out["text"][:2])


def test_generate_helper_loads_by_alias(store):
    model = registry.load_generator_model("models:/gen-corpus@challenger")
    texts = registry.generate(model, n=4, temperature=1.0, seed=0, prefix="ab")
    assert len(texts) == 4 and all(t.startswith("ab") for t in texts)


@pytest.mark.parametrize("rows, cause", [
    ({"n": [2.7]}, "n must be a whole number >= 1, got 2.7"),
    ({"n": [-1]}, "n must be a whole number >= 1, got -1"),
    ({"n": [1], "seed": [1.5]}, "seed must be a whole number in [0, 9223372036854775808), got 1.5"),
    ({"n": [1], "seed": [2**64]}, "seed must be a whole number in [0, 9223372036854775808), got 18446744073709551616"),
    ({"n": [1], "seed": [1e30]}, "seed must be a whole number in [0, 9223372036854775808), got 1e+30"),
    ({"n": [1], "temperature": [0.0]}, "temperature must be a finite number >= 0.001, got 0.0"),
    ({"n": [1], "temperature": [1e-40]}, "got 1e-40 (use 0.001 for near-greedy sampling)"),
    ({"n": [1], "temperature": [1e-300]}, "got 1e-300 (use 0.001 for near-greedy sampling)"),
    ({"n": [60_000, 50_000]}, "n must be in [1, 100000] for the whole request (all rows together), got 110000"),
])
def test_a_refused_request_names_its_cause_as_a_parameter_error(synthetic_model, rows, cause):
    """The scoring server turns exactly this exception into HTTP 400 with the message and no
    stack trace; before, the cause was only in the server's stack trace (and 2.7 became 2)."""
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException) as refused:
        synthetic_model.unwrap_python_model().predict(None, pd.DataFrame(rows))
    assert refused.value.error_code == "INVALID_PARAMETER_VALUE" and cause in refused.value.message


def test_the_largest_seed_is_taken_exactly(synthetic_model):
    """Whole numbers are not read through a float, which would round 2**63 - 1 up to 2**63."""
    largest = synthetic_model.predict(frame(n=3, seed=2**63 - 1))
    assert not largest.equals(synthetic_model.predict(frame(n=3, seed=2**63 - 2)))


@pytest.mark.parametrize("model, prefix, cause", [
    ("corpus_model", "xyz", "has tokens outside the model's vocabulary: 'x', 'y', 'z'; write the prefix with tokens"),
    ("corpus_model", "ab\U0001f642", "outside the model's vocabulary: '\U0001f642'"),
    ("corpus_model", "a\x00", "outside the model's vocabulary: '\\x00'"),
    ("corpus_model", "<eos>", "outside the model's vocabulary: '<', 's', '>'"),
    ("synthetic_model", "1_0", "takes space-separated token ids (digits 0-9)"),
    ("synthetic_model", "5 \u0663", "takes space-separated token ids (digits 0-9)"),
    ("synthetic_model", "-1", "takes space-separated token ids (digits 0-9)"),
])
def test_a_prefix_outside_the_vocabulary_is_refused(request, model, prefix, cause):
    """Before, unknown text became <unk> tokens and "1_0" / Arabic-Indic digits were read as ids."""
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException) as refused:
        request.getfixturevalue(model).predict(frame(n=2, prefix=prefix))
    assert refused.value.error_code == "INVALID_PARAMETER_VALUE" and cause in refused.value.message


@pytest.mark.parametrize("special", ["<eos>", "<unk>"])
def test_a_special_token_is_no_prefix_text(corpus_model, monkeypatch, special):
    """With a whitespace tokenizer "<eos>" is one token that the vocabulary holds; as a prefix
    it would end the sequence before the generated part, and "<unk>" stands for no text."""
    from mlflow.exceptions import MlflowException

    model = corpus_model.unwrap_python_model()
    monkeypatch.setitem(model.meta, "tokenizer", "whitespace")
    with pytest.raises(MlflowException, match=f"outside the model's vocabulary: '{special}'"):
        model.predict(None, frame(n=1, prefix=f"a {special} b"))


def test_a_request_that_runs_too_long_is_stopped(synthetic_model, monkeypatch):
    from mlflow.exceptions import MlflowException

    model = synthetic_model.unwrap_python_model()
    monkeypatch.setattr(model, "max_seconds", 0.0)
    with pytest.raises(MlflowException, match="ran past 0 s and was stopped"):
        model.predict(None, pd.DataFrame({"n": [5]}))


def test_model_loads_without_the_repository(store, tmp_path):
    """In a fresh process where `pipelines` cannot be imported, outside the repo: the model
    unpickles (its class was pickled by value) and uses the seqgan_core copy it carries."""
    code = textwrap.dedent("""
        import sys
        sys.modules["pipelines"] = None  # any import of pipelines now fails
        import mlflow.pyfunc, pandas as pd
        model = mlflow.pyfunc.load_model("models:/gen-corpus@challenger")
        out = model.predict(pd.DataFrame({"n": [3], "prefix": ["ab"]}))
        import seqgan_core
        print(len(out), out["text"][0][:2], seqgan_core.__file__)
    """)
    env = {**os.environ, **QUIET_ENV, "MLFLOW_TRACKING_URI": store["uri"]}
    env.pop("PYTHONPATH", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    n, prefix, core = out.stdout.split()[-3:]
    assert (n, prefix) == ("3", "ab")
    assert not core.startswith(str(REPO)), core
    assert f"{os.sep}code{os.sep}seqgan_core{os.sep}" in core


# ------------------------------------------------------------------- the gate
def test_first_model_becomes_champion(store):
    v1 = make_version(store, "g-first", nll=3.0)
    decision = registry.promote("g-first", v1, **NLL, flow_run="flow-1")
    assert decision.promoted and decision.champion_before is None and decision.champion_after == v1
    assert champion(store, "g-first") == v1
    tags = store["client"].get_model_version("g-first", v1).tags
    assert tags["gate.outcome"] == "promoted" and tags["gate.flow_run"] == "flow-1"
    assert tags["gate.metric"] == "nll" and tags["gate.candidate_value"] == "3.0"
    assert tags["gate.champion_version"] == "" and tags["gate.time"].endswith("Z")


def test_better_promoted_worse_and_within_margin_not(store):
    name = "g-compare"
    v1 = make_version(store, name, nll=3.0)
    registry.promote(name, v1, **NLL)
    v2 = make_version(store, name, nll=2.5)  # better by 0.5 > 0.05
    d2 = registry.promote(name, v2, **NLL)
    assert d2.promoted and d2.champion_before == v1 and champion(store, name) == v2
    assert (d2.candidate_value, d2.champion_value) == (2.5, 3.0)

    v3 = make_version(store, name, nll=2.8)  # worse
    d3 = registry.promote(name, v3, **NLL)
    assert not d3.promoted and champion(store, name) == v2 and "<= margin" in d3.reason
    v4 = make_version(store, name, nll=2.47)  # better, but by 0.03 < margin 0.05
    d4 = registry.promote(name, v4, **NLL)
    assert not d4.promoted and champion(store, name) == v2
    client = store["client"]
    assert str(client.get_model_version_by_alias(name, "challenger").version) == v4
    tags = client.get_model_version(name, v4).tags
    assert tags["gate.outcome"] == "rejected" and tags["gate.champion_version"] == v2
    assert tags["gate.champion_value"] == "2.5" and tags["gate.margin"] == "0.05"
    assert "gate: rejected" in client.get_model_version(name, v4).description


def test_higher_is_better_metric(store):
    name = "g-bleu"
    gate = {"metric": "bleu2", "higher_is_better": True, "margin": 0.01}
    v1 = make_version(store, name, bleu2=0.30)
    registry.promote(name, v1, **gate)
    assert not registry.promote(name, make_version(store, name, bleu2=0.25), **gate).promoted
    v3 = make_version(store, name, bleu2=0.35)
    assert registry.promote(name, v3, **gate).promoted and champion(store, name) == v3


def test_different_data_version_not_promoted(store):
    name = "g-data"
    registry.promote(name, v1 := make_version(store, name, data_version="d1", nll=3.0), **NLL)
    v2 = make_version(store, name, data_version="d2", nll=1.0)
    decision = registry.promote(name, v2, **NLL)
    assert not decision.promoted and "data_version" in decision.reason
    assert champion(store, name) == v1


@pytest.mark.parametrize("value", [float("nan"), float("inf"), None])
def test_non_finite_or_missing_metric_never_promoted(store, value):
    name = f"g-bad-{value}"
    metrics = {"other": 1.0} if value is None else {"nll": value}
    v1 = make_version(store, name, **metrics)
    decision = registry.promote(name, v1, **NLL)  # not even as the first model
    assert not decision.promoted and "never promoted" in decision.reason
    assert champion(store, name) is None
    if value is None:
        return
    registry.promote(name, v2 := make_version(store, name, nll=3.0), **NLL)
    assert not registry.promote(name, make_version(store, name, nll=value), **NLL).promoted
    assert champion(store, name) == v2


def test_rerun_changes_nothing(store):
    name = "g-rerun"
    v1 = make_version(store, name, nll=3.0)
    registry.promote(name, v1, **NLL)
    v2 = make_version(store, name, nll=2.99)  # rejected: within the margin
    first = registry.promote(name, v2, **NLL, flow_run="a")
    before = version_state(store, name)
    again = registry.promote(name, v2, **NLL, flow_run="b")
    again_champion = registry.promote(name, v1, **NLL)
    assert version_state(store, name) == before
    assert again.recorded and not again.promoted and again.reason == first.reason
    assert again.champion_before == v1 and again.flow_run == "a"
    assert again_champion.promoted and again_champion.recorded
    # A different gate setting is a new decision, appended to the record.
    loose = registry.promote(name, v2, metric="nll", higher_is_better=False, margin=0.0)
    assert loose.promoted and not loose.recorded and champion(store, name) == v2
    description = store["client"].get_model_version(name, v2).description
    assert description.count("gate:") == 2


def test_guard_metric_blocks(store):
    name = "g-guard"
    gate = {"metric": "bleu2", "higher_is_better": True, "margin": 0.0,
            "guard_metric": "nll_test", "guard_tolerance": 0.1}
    v1 = make_version(store, name, bleu2=0.3, nll_test=2.0)
    registry.promote(name, v1, **gate)
    blocked = registry.promote(name, make_version(store, name, bleu2=0.5, nll_test=2.3), **gate)
    assert not blocked.promoted and "guard nll_test" in blocked.reason
    assert (blocked.candidate_guard, blocked.champion_guard) == (2.3, 2.0)
    no_guard = registry.promote(name, make_version(store, name, bleu2=0.5, nll_test=float("nan")), **gate)
    assert not no_guard.promoted
    ok = registry.promote(name, v4 := make_version(store, name, bleu2=0.5, nll_test=2.05), **gate)
    assert ok.promoted and champion(store, name) == v4
    # Against the new champion, a gate without the guard is a new decision: the stale guard
    # tags go, and re-running it is a no-op again.
    assert registry.promote(name, blocked.version, **gate).champion_before == v4
    plain = {"metric": "bleu2", "higher_is_better": True, "margin": 0.0}
    registry.promote(name, blocked.version, **plain)
    tags = store["client"].get_model_version(name, blocked.version).tags
    assert not any(k.startswith("gate.") and "guard" in k for k in tags), tags
    assert registry.promote(name, blocked.version, **plain).recorded


def test_lock_serialises_gates(store):
    name = "g-lock"
    v1 = make_version(store, name, nll=3.0)
    done = threading.Event()
    with registry.registry_lock():
        thread = threading.Thread(target=lambda: (registry.promote(name, v1, **NLL), done.set()))
        thread.start()
        assert not done.wait(0.8), "promote ran while another holder had the lock"
    thread.join(30)
    assert done.is_set() and champion(store, name) == v1
    assert (store["root"] / "mlflow.db.registry.lock").exists()


def _race_versions(store, name):
    base = make_version(store, name, nll=3.0)
    registry.promote(name, base, **NLL)
    return base, make_version(store, name, nll=2.5), make_version(store, name, nll=2.0)


def _check_race(store, name, base, good, best, decisions):
    assert champion(store, name) == best
    # Serialised: exactly one gate saw the old champion; the other saw the first one's outcome.
    first = [d for d in decisions if d.champion_before == base]
    assert len(first) == 1, decisions
    (second,) = [d for d in decisions if d is not first[0]]
    assert second.champion_before == first[0].champion_after


@pytest.mark.parametrize("round_", range(3))
def test_race_two_threads_leaves_the_better_champion(store, round_):
    name = f"g-race-threads-{round_}"
    base, good, best = _race_versions(store, name)
    start, decisions = threading.Barrier(2), []

    def gate(version):
        start.wait()
        decisions.append(registry.promote(name, version, **NLL))

    threads = [threading.Thread(target=gate, args=(v,)) for v in ((good, best) if round_ % 2 else (best, good))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(decisions) == 2
    _check_race(store, name, base, good, best, decisions)


def test_race_two_processes_leaves_the_better_champion(store, tmp_path):
    name = "g-race-procs"
    base, good, best = _race_versions(store, name)
    go = tmp_path / "go"
    script = textwrap.dedent(f"""
        import json, sys, time, dataclasses
        from pathlib import Path
        from pipelines import registry
        registry.client().get_registered_model({name!r})  # warm up: imports, engine
        Path(sys.argv[2]).touch()
        while not Path({str(go)!r}).exists():
            time.sleep(0.01)
        d = registry.promote({name!r}, sys.argv[1], metric="nll", higher_is_better=False, margin=0.05)
        print(json.dumps(dataclasses.asdict(d)))
    """)
    env = {**os.environ, **QUIET_ENV, "MLFLOW_TRACKING_URI": store["uri"]}
    procs = [
        subprocess.Popen([sys.executable, "-c", script, v, str(tmp_path / f"ready-{v}")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env)
        for v in (good, best)
    ]
    deadline = time.monotonic() + 90
    while not all((tmp_path / f"ready-{v}").exists() for v in (good, best)):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.05)
    go.touch()
    results = [p.communicate(timeout=90) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-3000:] for _, err in results]
    decisions = [registry.Decision(**json.loads(out.strip().splitlines()[-1])) for out, _ in results]
    _check_race(store, name, base, good, best, decisions)


# ------------------------------------------------------------------- rollback
def test_rollback_sets_champion_and_records_it(store):
    name = "g-rollback"
    registry.promote(name, v1 := make_version(store, name, nll=3.0), **NLL)
    registry.promote(name, v2 := make_version(store, name, nll=2.0), **NLL)
    assert champion(store, name) == v2
    registry.rollback(name, v1, reason="v2 writes gibberish")
    assert champion(store, name) == v1
    client = store["client"]
    old, new = client.get_model_version(name, v2), client.get_model_version(name, v1)
    assert new.tags["rollback.replaced"] == v2 and new.tags["rollback.reason"] == "v2 writes gibberish"
    assert old.tags["rollback.replaced_by"] == v1
    assert "rollback" in new.description and "rollback" in old.description
    with pytest.raises(mlflow.exceptions.MlflowException):
        registry.rollback(name, "999")
    assert champion(store, name) == v1


def test_a_rollback_survives_a_rerun_of_the_gate(store):
    """Before: the re-run took "champion == the champion it beat" for a crash between the
    writes and moved the alias back to v2, writing nothing (the weekly retrain re-gates the
    version in registry.json whenever DVC skips every stage)."""
    name = "g-rollback-rerun"
    registry.promote(name, v1 := make_version(store, name, nll=3.0), **NLL)
    registry.promote(name, v2 := make_version(store, name, nll=2.0), **NLL)
    registry.rollback(name, v1, reason="v2 writes gibberish")
    before = version_state(store, name)
    for gate in (NLL, {**NLL, "margin": 0.0}):  # nor does a gate with other settings re-promote it
        again = registry.promote(name, v2, **gate)
        assert not again.promoted and again.recorded and again.champion_after == v1
        assert "taken out of service by a rollback" in again.reason and "v2 writes gibberish" in again.reason
        assert f"seqgan rollback --model {name} --version {v2}" in again.reason
    assert champion(store, name) == v1 and version_state(store, name) == before
    on_champion = registry.promote(name, v1, **NLL)
    assert on_champion.summary().startswith(f"v{v1} is already champion (made champion by rollback at ")
    # Only an explicit rollback puts v2 back; then v1 is the one out of service.
    registry.rollback(name, v2, reason="v2 fixed by a tokenizer update")
    assert champion(store, name) == v2
    assert not any(k.startswith("rollback.replaced_") for k in store["client"].get_model_version(name, v2).tags)
    assert not registry.promote(name, v1, **NLL).promoted and champion(store, name) == v2


def test_an_interrupted_promotion_is_finished_by_a_rerun(store):
    """The crash the re-run path exists for: the decision was recorded, the alias never moved."""
    name = "g-interrupted"
    registry.promote(name, v1 := make_version(store, name, nll=3.0), **NLL)
    registry.promote(name, v2 := make_version(store, name, nll=2.0), **NLL)
    store["client"].set_registered_model_alias(name, "champion", v1)  # as if the last write never happened
    finished = registry.promote(name, v2, **NLL)
    assert finished.promoted and finished.champion_after == v2 and champion(store, name) == v2


def test_metrics_scored_under_other_settings_are_not_compared(store):
    """Before: only data_version was checked, so a champion re-scored against the training
    split (BLEU higher for the same checkpoint) "beat itself"."""
    name = "g-scoring"
    bleu = {"metric": "bleu2", "higher_is_better": True, "margin": 0.005}
    test_refs = {"scoring_version": "s1", "scoring_settings": json.dumps(SCORING_SETTINGS)}
    registry.promote(name, v1 := make_version(store, name, bleu2=0.30, tags=test_refs), **bleu)
    train_refs = {"scoring_version": "s2", "scoring_settings": json.dumps(
        {**SCORING_SETTINGS, "bleu_references": "train split (900 sentences)"})}
    decision = registry.promote(name, make_version(store, name, bleu2=0.45, tags=train_refs), **bleu)
    assert not decision.promoted and champion(store, name) == v1
    assert "scoring_version differs (candidate s2, champion v1 s1" in decision.reason
    assert "bleu_references: 'train split (900 sentences)' vs 'test split (100 sentences)'" in decision.reason
    assert "re-evaluate the champion's checkpoint" in decision.reason
    new_code = {"scoring_version": "s3", "scoring_settings": json.dumps(SCORING_SETTINGS)}
    assert "the scoring code differs" in registry.promote(name, make_version(store, name, bleu2=0.45, tags=new_code),
                                                          **bleu).reason


def test_a_champion_without_a_scoring_version_is_not_compared(store):
    """A champion registered before the tag existed: nothing says how its metrics were scored."""
    name = "g-scoring-legacy"
    registry.promote(name, v1 := make_version(store, name, nll=3.0, tags={"scoring_version": ""}), **NLL)
    decision = registry.promote(name, make_version(store, name, nll=2.0), **NLL)
    assert not decision.promoted and champion(store, name) == v1
    assert "champion v1 missing" in decision.reason and "registered before its scoring settings" in decision.reason


def test_scoring_version_follows_settings_and_code_not_the_seed(monkeypatch):
    from types import SimpleNamespace

    from pipelines.config import load_params
    from pipelines.contract import kind_of
    from pipelines.scoring import Scorer

    params = load_params(REPO_ROOT / "params.yaml")
    data = SimpleNamespace(kind=kind_of("real"), test=torch.zeros(100, 4), train=torch.zeros(900, 4), tokenizer="char")

    def version(**evaluate) -> str:
        changed = params.model_copy(update={"evaluate": params.evaluate.model_copy(update=evaluate)})
        return Scorer(data, changed).version()

    base = version()
    assert version(bleu_references="train") != base
    assert version(temperatures=[0.5, 2.0]) == base  # the sweep is not what the gate compares
    assert Scorer(data, params.model_copy(update={"seed": params.seed + 1})).version() == base
    import seqgan_core.bleu

    monkeypatch.setattr(seqgan_core.bleu, "__file__", __file__)  # other BLEU code
    assert version() != base


def test_the_first_champion_is_held_to_the_mle_baseline(store):
    """Before: with no champion only NLL-test < ln V was checked, so a generator sharpened to
    temperature 0.62 (NLL-test 3.90 vs MLE's 3.59) became champion and blocked every
    honest successor."""
    import dataclasses

    from pipelines.config import load_params
    from pipelines.contract import kind_of

    rule = dataclasses.asdict(kind_of("real").gate_rule(load_params(REPO_ROOT / "params.yaml")))
    name = "g-baseline"
    sharpened = make_version(store, name, bleu2=0.60, nll_test=3.90, tags={"baseline.nll_test": "3.59"})
    decision = registry.promote(name, sharpened, **rule)
    assert not decision.promoted and champion(store, name) is None
    assert "guard nll_test 3.9 vs the MLE baseline 3.59 is worse by" in decision.reason
    honest = make_version(store, name, bleu2=0.40, nll_test=3.62, tags={"baseline.nll_test": "3.59"})
    assert registry.promote(name, honest, **rule).promoted and champion(store, name) == honest


def test_rerun_on_the_champion_says_nothing_changed(store, monkeypatch, capsys):
    """Before: `seqgan promote` on the champion printed its first decision's reason, "no
    champion yet: ...", as if it had just been made."""
    from pipelines.cli import main

    monkeypatch.chdir(REPO_ROOT)  # the gate rule comes from params.yaml
    name = "g-cli"
    v1 = make_version(store, name, bleu2=0.3, nll_test=3.0)
    main(["promote", "--model", name, "--version", v1])
    first = capsys.readouterr().out.strip()
    assert first.startswith("no champion yet")
    main(["promote", "--model", name, "--version", v1])
    time = store["client"].get_model_version(name, v1).tags["gate.time"]
    assert capsys.readouterr().out.strip() == f"v{v1} is already champion (decision recorded {time}: {first})"


def test_a_version_whose_files_are_not_the_scored_checkpoint_is_not_promoted(store):
    name = "g-checkpoint"
    scored_elsewhere = make_version(store, name, nll=2.0, tags={"checkpoint_sha256": "0" * 64})
    decision = registry.promote(name, scored_elsewhere, **NLL)
    assert not decision.promoted and champion(store, name) is None
    assert "is not the checkpoint its metrics were scored from (sha256 000000000000)" in decision.reason
    same = make_version(store, name, nll=2.0, tags={"checkpoint_sha256": store["checkpoint_sha256"]})
    assert registry.promote(name, same, **NLL).promoted


def test_a_finished_pipeline_run_is_not_reused(store):
    """Before: a stage re-run under the same key (uncommitted code, `dvc repro -f`) joined the
    FINISHED parent, so two registered models shared one run."""
    from pipelines import tracking

    client = store["client"]
    experiment = client.get_run(store["run_id"]).info.experiment_id
    first = tracking._parent_run(client, experiment, "key-rerun", {})
    assert tracking._parent_run(client, experiment, "key-rerun", {}) == first  # stages of one pipeline run share it
    client.set_terminated(first, "FINISHED")  # evaluate ended the pipeline run
    second = tracking._parent_run(client, experiment, "key-rerun", {})
    assert second != first and client.get_run(second).info.status == "RUNNING"


def test_a_failed_stage_ends_its_pipeline_run_and_the_resumed_run_reopens_it(store, monkeypatch, tmp_path):
    """Before, the parent stayed RUNNING after a failure; once the user fixed params.yaml (a
    new key, a new parent) nothing ever ended it."""
    from pipelines import tracking
    from pipelines.config import load_params
    from pipelines.runtime import StageContext

    monkeypatch.setenv("SEQGAN_PIPELINE_RUN", "key-failed")
    monkeypatch.setenv("SEQGAN_ARTIFACT_ROOT", str(tmp_path))
    ctx = StageContext("pretrain_generator", "synthetic", load_params(REPO / "params.yaml"), torch.device("cpu"))
    with pytest.raises(RuntimeError), tracking.stage_run(ctx) as failed:
        raise RuntimeError("boom")
    parent = store["client"].get_run(failed.parent_run_id)
    assert parent.info.status == "FAILED"
    assert parent.data.tags["seqgan.error"] == "stage pretrain_generator@synthetic: RuntimeError: boom"
    with tracking.stage_run(ctx) as resumed:  # the same key: the pipeline run goes on
        assert store["client"].get_run(resumed.parent_run_id).info.status == "RUNNING"
    assert resumed.parent_run_id == failed.parent_run_id


def test_a_collapsed_synthetic_generator_is_not_promoted(store):
    """The issue's diverged run (adversarial.lr 1e8): samples loop one token, NLL-oracle
    *drops* (3.54 against a normal 4.30) while NLL-test explodes (4.15e9). The synthetic
    rule holds NLL-test within its tolerance, and an NLL-test above uniform's ln(V) is
    refused even with no champion to compare with."""
    import dataclasses

    from pipelines.config import load_params
    from pipelines.contract import kind_of

    rule = dataclasses.asdict(kind_of("synthetic").gate_rule(load_params(REPO_ROOT / "params.yaml")))
    assert rule["guard_metric"] == "nll_test"
    name = "g-collapse"
    uniform = {"nll_test_uniform": math.log(2000)}
    first = registry.promote(name, make_version(store, name, nll_oracle=3.54, nll_test=4.15e9, **uniform), **rule)
    assert not first.promoted and "worse than uniform tokens" in first.reason
    normal = make_version(store, name, nll_oracle=4.30, nll_test=4.40, **uniform)
    assert registry.promote(name, normal, **rule).promoted
    sharper = registry.promote(name, make_version(store, name, nll_oracle=3.9, nll_test=5.0, **uniform), **rule)
    assert not sharper.promoted and "guard nll_test" in sharper.reason
    assert champion(store, name) == normal


# ------------------------------------------------------------------- the CLI
def seqgan(*args: str, cwd: Path = REPO, tracking_uri: str | None = None) -> subprocess.CompletedProcess:
    """The `seqgan` entry point on this store (or on ``tracking_uri``; "" leaves it unset)."""
    env = {**os.environ, **QUIET_ENV, "PYTHONPATH": str(REPO)}
    env.pop("MLFLOW_TRACKING_URI", None)
    if tracking_uri != "":
        env["MLFLOW_TRACKING_URI"] = tracking_uri
    return subprocess.run([*seqgan_command(), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def assert_refused(result: subprocess.CompletedProcess, *causes: str) -> None:
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert all(cause in result.stderr for cause in causes), result.stderr[-3000:]


@pytest.mark.parametrize("args, cause", [
    (("promote", "--model", "gen-corpus", "--version", "9"), "Model Version (name=gen-corpus, version=9) not found"),
    (("promote", "--model", "nosuch", "--version", "1"), "name=nosuch"),
    (("rollback", "--model", "gen-corpus", "--version", "7"), "Model Version (name=gen-corpus, version=7) not found"),
    (("serve", "--model", "models:/nosuch@champion"), "cannot load models:/nosuch@champion"),
])
def test_an_unknown_model_or_version_is_named_without_a_traceback(store, args, cause):
    """Before, promote and rollback ended in MLflow's traceback, and serve started the server,
    which printed it."""
    assert_refused(seqgan(*args, tracking_uri=store["uri"]), cause, "mlflow ui")


@pytest.mark.parametrize("args", [
    ("promote", "--model", "gen-corpus", "--version", "1"),
    ("generate", "--model", "models:/gen-corpus@challenger", "-n", "2"),
])
def test_a_file_that_is_no_mlflow_store_is_named_without_a_traceback(tmp_path, args):
    broken = tmp_path / "x.db"
    broken.write_bytes(os.urandom(4096))
    uri = f"sqlite:///{broken}"
    assert_refused(seqgan(*args, tracking_uri=uri), f"the MLflow store {uri} cannot be read",
                   "set MLFLOW_TRACKING_URI")


@pytest.mark.parametrize("args", [
    ("generate", "--model", "models:/seqgan-generator@champion", "-n", "2"),
    ("serve", "--model", "models:/seqgan-generator@champion"),
    ("promote", "--model", "seqgan-generator", "--version", "1"),
    ("rollback", "--model", "seqgan-generator", "--version", "1"),
])
def test_a_command_outside_the_repository_names_the_missing_store(tmp_path, args):
    """Before, it created an empty ./mlflow.db here and reported the model missing."""
    (tmp_path / "params.yaml").write_bytes((REPO / "params.yaml").read_bytes())  # promote reads it
    result = seqgan(*args, cwd=tmp_path, tracking_uri="")
    assert_refused(result, f"no MLflow store at {tmp_path / 'mlflow.db'}; run from the repository root or set "
                           "MLFLOW_TRACKING_URI")
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.parametrize("args, cause", [
    (("generate", "--seed", "99999999999999999999"), "'99999999999999999999' is not a whole number in [0, 9223372036854775808)"),
    (("generate", "--seed", "-1"), "'-1' is not a whole number in [0, 9223372036854775808)"),
    (("generate", "--temperature", "1e-40"), "'1e-40': temperature must be a finite number >= 0.001"),
    (("promote", "--version", "1", "--margin", "-0.5"), "'-0.5' is not a finite number >= 0"),
    (("promote", "--version", "1", "--margin", "nan"), "'nan' is not a finite number >= 0"),
])
def test_an_out_of_range_option_is_refused_before_the_store_is_read(tmp_path, args, cause):
    """A seed of 2**64 or more ended in torch's "Overflow when unpacking long long"; a negative
    or NaN margin let a worse version become champion."""
    command, *options = args
    model = "models:/gen-corpus@challenger" if command == "generate" else "gen-corpus"
    assert_refused(seqgan(command, "--model", model, *options, cwd=tmp_path, tracking_uri=""), cause)


@pytest.mark.parametrize("experiment", [None, "imagenet"])
def test_a_version_the_gate_has_no_rule_for_is_named_without_a_traceback(store, experiment, capsys):
    """A version registered by hand (no ``experiment_kind`` tag) ended in a bare ValueError's
    traceback; an unknown kind in one from `contract.kind_of`."""
    from pipelines import cli

    name = f"untagged-{experiment}"
    version = make_version(store, name, nll=1.0)
    if experiment is None:
        store["client"].delete_model_version_tag(name, version, "experiment_kind")
    else:
        store["client"].set_model_version_tag(name, version, "experiment_kind", experiment)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["promote", "--model", name, "--version", version])
    assert exit_.value.code == 1
    error = capsys.readouterr().err
    assert error.startswith(f"error: {name} v{version} has ") and "'experiment_kind' tag" in error, error
    assert "seqgan rollback" in error and champion(store, name) is None
