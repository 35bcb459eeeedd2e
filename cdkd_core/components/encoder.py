"""Knowledge encoders: turn teacher features into vectors in a common space of size ``dim``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import torch

from cdkd_core.components.base import Component
from cdkd_core.files import atomic_write_bytes, atomic_write_text


class KnowledgeEncoder(Component):
    """Fitted on train-split teacher features of several domains, then applied per domain.

    ``provides`` says what the encoder gives losses: ``"vectors"`` always, ``"graph"`` when
    it also builds a graph over samples or classes. State is a dict of tensors plus a
    JSON-serialisable dict (saved as safetensors + JSON, never pickle).
    """

    provides: ClassVar[frozenset[str]] = frozenset({"vectors"})

    @property
    def dim(self) -> int:
        """Size ``k`` of the knowledge vectors."""
        raise NotImplementedError

    def fit(self, features: dict[str, torch.Tensor], labels: dict[str, torch.Tensor]) -> None:
        """Fit on ``features[domain]`` ``[N, F]`` with ``labels[domain]`` ``[N]``."""
        raise NotImplementedError

    def add_domains(
        self, features: dict[str, torch.Tensor], labels: dict[str, torch.Tensor]
    ) -> None:
        """Called after :meth:`fit` with the labelled train rows of the trained domains it
        was not fitted on (targets); an encoder with a class graph adds their classes as
        nodes. The default does nothing."""

    def transform(self, features: torch.Tensor, domain: str) -> torch.Tensor:
        """Map ``[N, F]`` teacher features of ``domain`` to knowledge vectors ``[N, dim]``."""
        raise NotImplementedError

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Tensors and JSON metadata that restore the fitted encoder."""
        raise NotImplementedError

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Restore what :meth:`state` returned."""
        raise NotImplementedError

    def save(self, directory: Path, stem: str = "encoder") -> None:
        """Write ``<stem>.safetensors`` and ``<stem>.json`` atomically."""
        from safetensors.torch import save

        tensors, meta = self.state()
        tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
        atomic_write_bytes(Path(directory) / f"{stem}.safetensors", save(tensors))
        meta = {"name": self.name, "params": self.config.model_dump(), "state": meta}
        atomic_write_text(Path(directory) / f"{stem}.json", json.dumps(meta, indent=2))

    def load(self, directory: Path, stem: str = "encoder") -> None:
        """Read what :meth:`save` wrote."""
        from safetensors.torch import load_file

        tensors = load_file(str(Path(directory) / f"{stem}.safetensors"))
        meta = json.loads((Path(directory) / f"{stem}.json").read_text())
        self.load_state(tensors, meta["state"])
