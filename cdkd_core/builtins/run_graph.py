"""Reading the class graph a run saved (``knowledge_graph`` or ``graph`` encoder) for
``cdkd graph`` and the report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from cdkd_core.builtins.knowledge_graph import node_key
from cdkd_core.errors import CdkdError


class KnowledgeGraphError(CdkdError):
    """A run directory without a readable class graph."""

    exit_code = 2


@dataclass
class RunGraph:
    """The class graph a run saved: node names, their domains and class labels, the dense
    prototype similarities ``[P, P]`` and the edge mask ``[P, P]``."""

    encoder: str
    nodes: list[str]
    domains: list[str]
    labels: list[str]
    similarity: torch.Tensor
    edges: torch.Tensor
    prototypes: torch.Tensor | None = None

    def cross_domain_edges(self, top: int | None = None) -> list[tuple[int, int, float]]:
        """Edges ``(i, j, weight)``, ``i < j``, joining different domains, strongest first
        (ties by node order), at most ``top``."""
        found = [
            (i, j, float(self.similarity[i, j]))
            for i in range(len(self.nodes))
            for j in range(i + 1, len(self.nodes))
            if bool(self.edges[i, j]) and self.domains[i] != self.domains[j]
        ]
        found.sort(key=lambda e: (-e[2], e[0], e[1]))
        return found if top is None else found[:top]


def read_run_graph(run_dir: Path) -> RunGraph:
    """The class graph saved with the run in ``run_dir`` (``encoder.json`` +
    ``encoder.safetensors`` of a ``knowledge_graph`` or ``graph`` encoder); class labels
    come from ``layout.json`` where it names them. :class:`KnowledgeGraphError` otherwise."""
    from cdkd_core.files import read_run_file

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise KnowledgeGraphError(f"{run_dir}: no such run directory")
    meta_path, tensor_path = run_dir / "encoder.json", run_dir / "encoder.safetensors"
    if not meta_path.is_file() or not tensor_path.is_file():
        raise KnowledgeGraphError(
            f"{run_dir}: no fitted encoder (encoder.json, encoder.safetensors); is it a run "
            "directory that got past encoding?"
        )
    meta = read_run_file(meta_path)
    try:
        name, state = str(meta["name"]), meta["state"]
        if name == "knowledge_graph":
            tensors = read_run_file(tensor_path)
            nodes = [str(n) for n in state["nodes"]]
            similarity = tensors["similarity"].float()
            edges = tensors["edges"].bool()
            prototypes = tensors["prototypes"].float()
        elif name == "graph":
            tensors = read_run_file(tensor_path)
            nodes = [str(n) for n in state["pair_names"]]
            similarity = tensors["class_weights"].float()
            edges = ~torch.eye(len(nodes), dtype=torch.bool)
            prototypes = tensors["prototypes"].float()
        else:
            raise KnowledgeGraphError(
                f"{run_dir}: the run's encoder {name!r} builds no class graph; run with "
                "`encoder: {name: knowledge_graph}` to get one"
            )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise KnowledgeGraphError(f"{run_dir}: unreadable encoder state ({exc})") from exc
    classes: dict[str, list[str]] = {}
    layout_path = run_dir / "layout.json"
    if layout_path.is_file():
        layout = read_run_file(layout_path)
        try:
            classes = {d: list(map(str, v["classes"])) for d, v in layout["domains"].items()}
        except (KeyError, TypeError, AttributeError):
            classes = {}
    domains, labels = [], []
    for node in nodes:
        domain, index = node_key(node)
        names = classes.get(domain, [])
        domains.append(domain)
        labels.append(names[index] if 0 <= index < len(names) else str(index))
    return RunGraph(name, nodes, domains, labels, similarity, edges, prototypes)
