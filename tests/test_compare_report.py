"""The report's description of what ran: the profile, or the nearest one and what differs."""
from __future__ import annotations

from pathlib import Path

import yaml

from conftest import REPO_ROOT
from pipelines.stages.compare_report import PUBLISHED, profile_name

PROFILES = REPO_ROOT / "profiles"


def write_params(tmp_path: Path, edit) -> Path:
    raw = yaml.safe_load((PROFILES / "small.yaml").read_text())
    edit(raw)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_a_profile_with_only_its_sweep_or_speed_keys_changed_is_still_that_profile(tmp_path: Path) -> None:
    def edit(raw: dict) -> None:
        raw["comparison"]["methods"] = ["mle", "rankgan"]
        raw["threads"] = 1
        raw["execution"] = "eager"

    assert profile_name(write_params(tmp_path, edit), PROFILES) == "small profile"


def test_other_changes_are_named_against_the_nearest_profile(tmp_path: Path) -> None:
    def edit(raw: dict) -> None:
        raw["generator"]["kind"] = "leakgan"
        raw["adversarial"]["method"] = "leakgan"
        raw["generator"]["rmc"]["head_size"] = 64

    assert (profile_name(write_params(tmp_path, edit), PROFILES)
            == "small profile with adversarial.method, generator.kind, generator.rmc.head_size changed")


def test_published_figures_name_only_known_methods_and_metrics() -> None:
    from pipelines.config import METHODS

    assert set(PUBLISHED) <= set(METHODS)
    assert {k for figures in PUBLISHED.values() for k in figures} <= {"nll_oracle", "bleu2"}


def test_every_metric_a_cell_reports_has_a_label() -> None:
    """LeakGAN's cells add the code's sharpened figures (`pipelines.scoring.SHARPENED_SUFFIX`)."""
    from pipelines.scoring import SHARPENED_SUFFIX
    from pipelines.stages.compare_report import label

    assert label("nll_oracle") == "NLL-oracle" and label("self_bleu3") == "Self-BLEU-3"
    assert label(f"nll_oracle{SHARPENED_SUFFIX}") == "NLL-oracle (code's 1.5 sharpening)"
    assert label(f"bleu2{SHARPENED_SUFFIX}") == "BLEU-2 (code's 1.5 sharpening)"


def test_numbers_are_compared_as_dvc_reads_them(tmp_path: Path) -> None:
    """YAML 1.1 (yaml.safe_load) reads `1e-2` as the text '1e-2', so a profile written
    with 0.01 looked changed."""
    text = (PROFILES / "small.yaml").read_text()
    assert "  lr: 0.01\n" in text
    path = tmp_path / "params.yaml"
    path.write_text(text.replace("  lr: 0.01\n", "  lr: 1e-2\n"))
    assert profile_name(path, PROFILES) == "small profile"
