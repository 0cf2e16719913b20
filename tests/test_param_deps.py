"""Which params each training stage depends on: a change to a setting the stage never reads
must not re-run it. `adversarial@*` listed the whole `methods` section, so editing another
method's settings (say `methods.rankgan.gamma` while `adversarial.method` is seqgan) re-ran
adversarial training and evaluation, and registered a new model version for nothing."""
from __future__ import annotations

import yaml

from conftest import REPO_ROOT


def _param_keys(stage_name: str) -> set[str]:
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    with Repo(str(REPO_ROOT)) as repo:
        stage = next(s for s in repo.index.stages if s.addressing == stage_name)
        return {key for dep in stage.deps if isinstance(dep, ParamsDependency) for key in dep.params}


def test_adversarial_depends_on_its_own_methods_settings_only() -> None:
    method = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())["adversarial"]["method"]
    for experiment in ("synthetic", "real"):
        keys = _param_keys(f"adversarial@{experiment}")
        assert {k for k in keys if k == "methods" or k.startswith("methods.")} == {f"methods.{method}"}
