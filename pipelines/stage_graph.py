"""The stage graph, read from dvc.yaml through DVC itself (never restated here).

The Prefect flows and the CLI use this to run or list stages in dependency order,
with DVC's expansion of `foreach` (e.g. `adversarial@synthetic`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StageNode:
    name: str  # DVC's address, e.g. "pretrain_generator@real"
    upstream: tuple[str, ...]  # stages whose outputs this one reads

    @property
    def experiment(self) -> str | None:
        return self.name.split("@", 1)[1] if "@" in self.name else None


def load_stage_graph(root: str | Path = ".") -> list[StageNode]:
    """All pipeline stages in a topological order (each after everything it depends on)."""
    import networkx as nx
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        graph = repo.index.graph  # edges point from a stage to the stages it depends on
        order = list(reversed(list(nx.topological_sort(graph))))
        return [
            StageNode(stage.addressing, tuple(sorted(dep.addressing for dep in graph.successors(stage))))
            for stage in order
            if stage.cmd  # skip .dvc-file data sources
        ]


def stages_for(experiment: str, root: str | Path = ".") -> list[StageNode]:
    """The stages one experiment needs, in order: its own and everything upstream of them."""
    nodes = load_stage_graph(root)
    wanted = {n.name for n in nodes if n.experiment == experiment}
    for node in reversed(nodes):
        if node.name in wanted:
            wanted.update(node.upstream)
    return [n for n in nodes if n.name in wanted]
