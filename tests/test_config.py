"""params.yaml schema: every profile is valid, errors name the key, the value and the rule."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipelines.config import ParamsError, load_params, parse_params

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("profile", sorted(p.name for p in (ROOT / "profiles").glob("*.yaml")))
def test_every_profile_is_valid(profile: str) -> None:
    load_params(ROOT / "profiles" / profile)


def test_params_yaml_is_the_small_profile() -> None:
    assert (ROOT / "params.yaml").read_text() == (ROOT / "profiles/small.yaml").read_text()


def test_paper_profile_has_the_papers_settings() -> None:
    p = load_params(ROOT / "profiles/paper.yaml")
    assert (p.oracle.vocab_size, p.oracle.seq_len, p.oracle.num_train) == (5000, 20, 10000)
    assert p.pretrain_generator.epochs == 120 and p.pretrain_generator.lr == 0.01
    assert sum(p.discriminator.num_filters) == 1720 and p.discriminator.dropout == 0.25
    assert (p.adversarial.batches, p.adversarial.d_steps, p.adversarial.d_epochs) == (200, 5, 3)
    assert p.methods.seqgan.rollout.n_rollouts == 16
    relgan = p.methods.relgan  # RelGAN's synthetic setting at length 20 (its generator: generator.kind rmc)
    assert (relgan.beta_max, relgan.schedule, relgan.loss, relgan.lr, relgan.d_filters) == (1.0, "exp", "rsgan", 1e-4, 300)
    assert (p.generator.rmc.mem_slots, p.generator.rmc.num_heads, p.generator.rmc.head_size) == (1, 2, 256)


def small() -> dict:
    return yaml.safe_load((ROOT / "profiles/small.yaml").read_text())


@pytest.mark.parametrize(
    "section, key, value, expected",
    [
        ("adversarial", "batches", 0, "adversarial.batches: value 0 is not allowed"),
        ("pretrain_generator", "lr", "fast", "pretrain_generator.lr: value 'fast' is not allowed"),
        ("corpus", "tokenizer", "bpe", "corpus.tokenizer: value 'bpe' is not allowed"),
        ("adversarial", "d_optimizer", "reset", "'continue' or 'fresh'"),
        ("discriminator", "dropout", 1.0, "discriminator.dropout: value 1.0 is not allowed"),
        ("adversarial", "typo_key", 1, "adversarial.typo_key: unknown key"),
        ("adversarial", "method", "gan", "adversarial.method: value 'gan' is not allowed: Input should be "
                                         "'random', 'pretrained', 'mle', 'scheduled_sampling'"),
        ("comparison", "methods", ["mle", "gan"], "comparison.methods.1: value 'gan' is not allowed"),
        # MLflow refuses these names only at registration, after evaluate has scored
        ("tracking", "synthetic_model_name", "bad/name:x", "tracking.synthetic_model_name: value 'bad/name:x'"),
        ("tracking", "real_model_prefix", "seqgan:real", "tracking.real_model_prefix: value 'seqgan:real'"),
    ],
)
def test_bad_values_are_named(section: str, key: str, value: object, expected: str) -> None:
    raw = small()
    raw[section][key] = value
    with pytest.raises(ParamsError) as info:
        parse_params(raw)
    assert expected in str(info.value)


@pytest.mark.parametrize("path", ["../shared/oracle/seqgan_target_lstm.npz", "/tmp/oracle.npz",
                                  "data/oracle/../elsewhere.npz", "data/oracle.npz", "models/oracle.npz",
                                  "data/oracle"])
def test_oracle_weights_outside_the_tracked_folder_are_refused(path: str) -> None:
    raw = small()
    raw["oracle"]["weights_file"] = path
    message = str(pytest.raises(ParamsError, parse_params, raw).value)
    assert f"oracle.weights_file: value {path!r} is not allowed: Value error, it is outside data/oracle/" in message
    assert "cp ../shared/oracle/seqgan_target_lstm.npz data/oracle/" in message


def test_oracle_weights_in_the_tracked_folder_are_accepted() -> None:
    raw = small()
    raw["oracle"]["weights_file"] = "data/oracle/seqgan_target_lstm.npz"
    assert parse_params(raw).oracle.weights_file == "data/oracle/seqgan_target_lstm.npz"


def test_missing_key_and_cross_field_rules() -> None:
    raw = small()
    del raw["seed"]
    raw["discriminator"]["filter_sizes"] = [1, 2, 30]
    raw["discriminator"]["num_filters"] = [4, 4, 4]
    message = str(pytest.raises(ParamsError, parse_params, raw).value)
    assert "seed: missing" in message
    raw = small()
    raw["discriminator"]["num_filters"] = [4]
    assert "one count per width" in str(pytest.raises(ParamsError, parse_params, raw).value)


def test_a_rule_across_sections_names_its_keys_without_repeating_the_file() -> None:
    raw = small()
    raw["generator"]["kind"] = "leakgan"  # the method stays seqgan, which trains lstm generators
    message = str(pytest.raises(ParamsError, parse_params, raw).value)
    assert "(top level): adversarial.method: seqgan trains lstm generators but generator.kind is leakgan" in message
    assert "'oracle'" not in message and len(message) < 300


def test_method_settings_rules() -> None:
    raw = small()
    raw["methods"]["maligan_full"]["completions"] = raw["adversarial"]["batch_size"] + 1
    assert ("methods.maligan_full.completions = 65 exceeds adversarial.batch_size = 64"
            in str(pytest.raises(ParamsError, parse_params, raw).value))
    raw = small()
    raw["methods"]["scheduled_sampling"]["start"] = 1.5
    assert "methods.scheduled_sampling.start: value 1.5" in str(pytest.raises(ParamsError, parse_params, raw).value)
    raw = small()
    raw["comparison"]["methods"] = ["mle", "seqgan", "mle"]
    assert "comparison.methods lists a value twice" in str(pytest.raises(ParamsError, parse_params, raw).value)


def test_the_sweep_defaults_and_the_switch_to_every_method(tmp_path: Path) -> None:
    """The default sweep is the issue's (3 seeds x mle, seqgan, maligan_full); `seqgan sweep
    --methods all --seeds 5` (and the cluster's sweep, by the same function) widens
    params.yaml's comparison section and nothing else."""
    from pipelines.config import METHODS
    from pipelines.sweep import parse_methods, widen, widen_from_args

    c = load_params(ROOT / "params.yaml").comparison
    assert (c.methods, c.seeds) == (["mle", "seqgan", "maligan_full"], [0, 1, 2])
    assert len(load_params(ROOT / "params.yaml").evaluate.temperatures) >= 9
    path = tmp_path / "params.yaml"
    path.write_text((ROOT / "params.yaml").read_text())
    widen_from_args("all", "5", path)
    c = load_params(path).comparison
    assert (c.methods, c.seeds) == ([m for m in METHODS if m != "leakgan"], [0, 1, 2, 3, 4])  # those that train lstm
    assert parse_methods("all", "leakgan") == ["random", "pretrained", "mle", "leakgan"]
    before, after = (ROOT / "params.yaml").read_text().splitlines(), path.read_text().splitlines()
    assert [i for i, (a, b) in enumerate(zip(before, after)) if a != b] == [
        before.index("  methods: [mle, seqgan, maligan_full]"), before.index("  seeds: [0, 1, 2]")]
    with pytest.raises(ParamsError, match="comparison.methods"):
        widen(["gan"], None, path)


@pytest.mark.parametrize("temperatures, cause", [([0.5, 1.5], "must include 1.0"), ([1.0, 0.5], "increasing"),
                                                 ([0.0, 1.0], "temperature must be a finite number >= 0.001"),
                                                 ([1e-4, 1.0], "use 0.001 for near-greedy sampling")])
def test_temperatures_are_checked(temperatures: list[float], cause: str) -> None:
    raw = small()
    raw["evaluate"]["temperatures"] = temperatures
    assert cause in str(pytest.raises(ParamsError, parse_params, raw).value)


def test_the_method_must_train_the_generator_kind() -> None:
    raw = small()
    raw["generator"]["kind"] = "rmc"
    message = str(pytest.raises(ParamsError, parse_params, raw).value)
    assert "adversarial.method: seqgan trains lstm generators but generator.kind is rmc" in message
    raw["adversarial"]["method"] = "relgan"
    message = str(pytest.raises(ParamsError, parse_params, raw).value)
    assert "comparison.methods: mle trains lstm or rmc" not in message and "comparison.methods: seqgan" in message
    raw["comparison"]["methods"] = ["mle", "relgan"]
    assert parse_params(raw).generator.kind == "rmc"


def test_leakgan_trains_its_own_generator_kind_and_only_mle_and_random_share_it() -> None:
    raw = small()
    raw["adversarial"]["method"] = "leakgan"
    message = str(pytest.raises(ParamsError, parse_params, raw).value)
    assert "adversarial.method: leakgan trains leakgan generators but generator.kind is lstm" in message
    raw["generator"]["kind"] = "leakgan"
    message = str(pytest.raises(ParamsError, parse_params, raw).value)
    assert "comparison.methods: seqgan trains lstm generators but generator.kind is leakgan" in message
    assert "comparison.methods: mle" not in message
    raw["comparison"]["methods"] = ["random", "mle", "leakgan"]
    assert parse_params(raw).generator.leakgan.goal_window == "sliding"
    raw["generator"]["leakgan"]["step_size"] = 21
    message = str(pytest.raises(ParamsError, parse_params, raw).value)
    assert "generator.leakgan.step_size = 21 exceeds oracle.seq_len = 20" in message


def test_missing_file_says_how_to_restore(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="seqgan profile small"):
        load_params(tmp_path / "params.yaml")


def small_text_with(tmp_path: Path, old: str, new: str) -> Path:
    """profiles/small.yaml with the first occurrence of `old` replaced by `new`, written to tmp_path."""
    text = (ROOT / "profiles/small.yaml").read_text()
    assert old in text
    path = tmp_path / "params.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize("section, key", [("adversarial", "lr"), ("pretrain_generator", "grad_clip"),
                                          ("discriminator", "dropout"), ("promotion", "synthetic_margin")])
@pytest.mark.parametrize("value", [float("inf"), float("nan"), float("-inf")])
def test_non_finite_floats_are_refused_naming_the_key(section: str, key: str, value: float) -> None:
    # Before: inf passed every lower bound (`lr: .inf` was "ok"); nan and -inf failed with
    # "should be greater than 0", which hides what is wrong.
    raw = small()
    raw[section][key] = value
    message = str(pytest.raises(ParamsError, parse_params, raw).value)
    assert f"{section}.{key}: value {value!r} is not allowed: Input should be a finite number" in message


def test_non_finite_float_fails_params_check(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from pipelines.cli import main

    path = small_text_with(tmp_path, "  lr: 0.01\n  grad_clip: 5.0\n  max_abs", "  lr: .inf\n  grad_clip: 5.0\n  max_abs")
    with pytest.raises(SystemExit):
        main(["params", "check", "--file", str(path)])
    assert "adversarial.lr: value inf is not allowed: Input should be a finite number" in capsys.readouterr().err


@pytest.mark.parametrize("key, context, line, repeat", [
    ("adversarial.lr", "\nadversarial:", "  lr: 0.01\n", "  lr: 1.0e+8\n"),
    ("seed", "# Every key is required; `seqgan params check` validates this file.\n", "seed: 0\n", "seed: 1\n"),
    ("methods.maligan_full.baseline", "  maligan_full:", "    baseline: mean_weight", "\n    baseline: none"),
])
def test_duplicate_keys_are_refused_naming_key_and_lines(tmp_path: Path, key: str, context: str, line: str,
                                                         repeat: str) -> None:
    # The first `line` after `context` gets `repeat` (the same key) right after it, on the next line.
    text = (ROOT / "profiles/small.yaml").read_text()
    at = text.index(line, text.index(context))
    path = tmp_path / "params.yaml"
    path.write_text(text[: at + len(line)] + repeat + text[at + len(line):])
    message = str(pytest.raises(ParamsError, load_params, path).value)  # before: loaded, the last value winning
    first = text[:at].count("\n") + 1
    assert f"{path}: key {key} appears twice (lines {first} and {first + 1})" in message
    assert "delete one of them" in message


def test_same_key_in_different_sections_is_fine() -> None:
    # `lr` appears in three sections and `baseline` in two: only a repeat within one mapping is refused.
    assert load_params(ROOT / "profiles/small.yaml").adversarial.lr == 0.01


def test_profile_with_a_duplicate_key_changes_nothing(tmp_path: Path) -> None:
    from pipelines.config import apply_profile

    profiles = tmp_path / "profiles"
    profiles.mkdir()
    text = (ROOT / "profiles/small.yaml").read_text()
    (profiles / "twice.yaml").write_text(text.replace("seed: 0\n", "seed: 0\nseed: 7\n", 1))
    target = tmp_path / "params.yaml"
    target.write_text("untouched\n")
    with pytest.raises(ParamsError, match=r"twice.yaml with seed 3: key seed appears twice \(lines"):
        apply_profile("twice", seed=3, profiles=profiles, target=target)
    assert target.read_text() == "untouched\n"


def test_invalid_yaml_is_named(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("seed: [0\n")
    with pytest.raises(ParamsError, match=f"{path} is not valid YAML"):
        load_params(path)


def test_an_exponent_without_a_point_is_a_number_as_dvc_reads_it(tmp_path: Path) -> None:
    # YAML 1.1 (PyYAML) reads `1e-2` as text, YAML 1.2 (DVC's ruamel) as 0.01: it was refused
    # as "not a valid number" while DVC's own view of the file was fine.
    path = small_text_with(tmp_path, "  lr: 0.01\n", "  lr: 1e-2\n")
    assert load_params(path).pretrain_generator.lr == 0.01
    path = small_text_with(tmp_path, "seed: 0\n", "seed: 1e3\n")
    assert "seed: value 1000.0" in str(pytest.raises(ParamsError, load_params, path).value)  # a float, not an int


def test_a_folder_or_a_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="is a folder; give the params file"):
        load_params(tmp_path)
    path = tmp_path / "params.yaml"
    path.write_bytes(b"seed: \xe9\n")
    with pytest.raises(ParamsError, match=r"is not UTF-8 text \(byte 6\): save it as UTF-8"):
        load_params(path)


@pytest.mark.parametrize("section, key, value, expected", [
    ("methods.relgan", "d_emb_dim", 10, "methods.relgan: d_emb_dim = 10 must be a multiple of num_rep = 16"),
    ("pretrain_generator", "batch_size", 6000, "pretrain_generator.batch_size = 6000 exceeds the 5000 synthetic"),
    ("pretrain_discriminator", "batch_size", 20000, "pretrain_discriminator.batch_size = 20000 exceeds a D round's "
                                                    "5000 sequences"),
    ("adversarial", "d_negatives", 20, "pretrain_discriminator.batch_size = 64 exceeds a D round's 40 sequences"),
    ("promotion", "real_bleu_order", 1, "promotion.real_bleu_order = 1 is not among evaluate.bleu_orders"),
])
def test_limits_across_keys_are_refused_by_params_check(section: str, key: str, value: int, expected: str) -> None:
    """Each passed `params check` and then stopped a stage with a traceback (or, for the
    gate's order, rejected every candidate as a failed evaluation)."""
    raw = small()
    node = raw
    for part in section.split("."):
        node = node[part]
    node[key] = value
    assert expected in str(pytest.raises(ParamsError, parse_params, raw).value)


def test_best_valid_counts_the_held_out_share_against_the_batch() -> None:
    raw = small()
    raw["pretrain_generator"].update(keep="best_valid", valid_fraction=0.5, batch_size=3000)
    assert "exceeds the 2500 synthetic training sequences" in str(pytest.raises(ParamsError, parse_params, raw).value)


def test_the_sweep_refuses_a_list_it_cannot_rewrite(tmp_path: Path) -> None:
    """A block-style `methods:` list was left as it was, without a word, and the sweep ran
    the old grid."""
    from pipelines.sweep import widen

    path = small_text_with(tmp_path, "  methods: [mle, seqgan, maligan_full]", "  methods:\n    - mle\n    - seqgan")
    before = path.read_text()
    with pytest.raises(ParamsError, match=r"could not set comparison.methods .* `  methods: \[mle, rankgan\]`"):
        widen(["mle", "rankgan"], None, path)
    assert path.read_text() == before
