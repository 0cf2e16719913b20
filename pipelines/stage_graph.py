"""The stage graph, read from the dvc.yaml files through DVC itself (never restated here).

The Prefect flows and the CLI use this to run or list stages in dependency order,
with DVC's expansion of `foreach`/`matrix` (e.g. `adversarial@synthetic`). Two pipeline
files share one graph: `dvc.yaml` (training) and `comparison/dvc.yaml` (the method
comparison, which reads the training pipeline's pretrained models).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PIPELINE_FILES = {"training": "dvc.yaml", "comparison": "comparison/dvc.yaml"}


class NotRepositoryRoot(ValueError):
    """The graph was asked for from a folder that is not the repository's root."""


@dataclass(frozen=True)
class StageNode:
    name: str  # DVC's address: "pretrain_generator@real", "comparison/dvc.yaml:train@real-mle-0"
    upstream: tuple[str, ...]  # stages whose outputs this one reads
    pipeline: str = "training"

    @property
    def experiment(self) -> str | None:
        """The training experiment a foreach stage belongs to (None for shared stages)."""
        if self.pipeline != "training" or "@" not in self.name:
            return None
        return self.name.split("@", 1)[1]


def load_stage_graph(root: str | Path = ".", pipeline: str = "training") -> list[StageNode]:
    """The stages of one pipeline file and everything upstream of them, in a topological
    order (each after everything it depends on)."""
    import networkx as nx
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    files = {name: (Path(root) / path).resolve() for name, path in PIPELINE_FILES.items()}
    if pipeline not in files:
        raise ValueError(f"unknown pipeline {pipeline!r}; expected one of {sorted(files)}")
    try:
        repo = Repo(str(root))
    except NotDvcRepoError:
        raise NotRepositoryRoot(f"{Path(root).resolve()} is not inside a DVC repository: run from the "
                                "repository root (where dvc.yaml is)") from None
    # DVC finds the root above a subfolder, but the pipeline files (and the commands that run
    # them, `dvc repro comparison/dvc.yaml`) are named from the root: from a subfolder no stage
    # matched and the graph came back empty.
    if Path(repo.root_dir).resolve() != Path(root).resolve():
        repo.close()
        raise NotRepositoryRoot(f"{Path(root).resolve()} is a subfolder of the repository: run from the "
                                f"repository root ({Path(repo.root_dir).resolve()})")
    with repo:
        graph = repo.index.graph  # edges point from a stage to the stages it depends on
        order = list(reversed(list(nx.topological_sort(graph))))
        nodes = [
            StageNode(
                stage.addressing,
                tuple(sorted(dep.addressing for dep in graph.successors(stage))),
                next((name for name, path in files.items() if Path(stage.dvcfile.path).resolve() == path), "other"),
            )
            for stage in order
            if stage.cmd  # skip .dvc-file data sources
        ]
    return _with_upstream(nodes, {n.name for n in nodes if n.pipeline == pipeline})


def stages_for(experiment: str, root: str | Path = ".") -> list[StageNode]:
    """The training stages one experiment needs, in order: its own and everything upstream."""
    nodes = load_stage_graph(root)
    return _with_upstream(nodes, {n.name for n in nodes if n.experiment == experiment})


def _with_upstream(nodes: list[StageNode], wanted: set[str]) -> list[StageNode]:
    wanted = set(wanted)
    for node in reversed(nodes):
        if node.name in wanted:
            wanted.update(node.upstream)
    return [n for n in nodes if n.name in wanted]
