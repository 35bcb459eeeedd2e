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

    Attributes:
        provides: What it gives losses: ``{"vectors"}``, or ``{"vectors", "graph"}``.

    Examples:
        >>> import torch
        >>> from cdkd_core.plugin_api import KnowledgeEncoder, check_encoder
        >>> class Centred(KnowledgeEncoder):
        ...     "Teacher features minus their train mean."
        ...     name = "centred"
        ...     @property
        ...     def dim(self):
        ...         return len(self.mean)
        ...     def fit(self, features, labels):
        ...         self.mean = torch.cat(list(features.values())).float().mean(0)
        ...     def transform(self, features, domain):
        ...         return features.float() - self.mean
        ...     def state(self):
        ...         return {"mean": self.mean}, {}
        ...     def load_state(self, tensors, meta):
        ...         self.mean = tensors["mean"]
        >>> features = {"a": torch.randn(20, 6), "b": torch.randn(10, 6)}
        >>> labels = {"a": torch.arange(20) % 2, "b": torch.arange(10) % 2}
        >>> vectors = check_encoder(Centred(), features, labels)
        >>> {domain: tuple(v.shape) for domain, v in vectors.items()}
        {'a': (20, 6), 'b': (10, 6)}
    """

    provides: ClassVar[frozenset[str]] = frozenset({"vectors"})

    @property
    def dim(self) -> int:
        """Size ``k`` of the knowledge vectors."""
        raise NotImplementedError

    def fit(self, features: dict[str, torch.Tensor], labels: dict[str, torch.Tensor]) -> None:
        """Fit on ``features[domain]`` ``[N, F]`` with ``labels[domain]`` ``[N]``.

        Args:
            features: Domain name -> the teacher's features of its train split
                (labelled rows of every source domain), ``[N, F]``.
            labels: Domain name -> their class indices ``[N]`` (within the domain's task).

        Raises:
            NotImplementedError: Not overridden.
        """
        raise NotImplementedError

    def add_domains(
        self, features: dict[str, torch.Tensor], labels: dict[str, torch.Tensor]
    ) -> None:
        """Called after :meth:`fit` with the labelled train rows of the trained domains it
        was not fitted on (targets); an encoder with a class graph adds their classes as
        nodes. The default does nothing.

        Args:
            features: Domain name -> teacher features ``[N, F]`` of its labelled train rows.
            labels: Domain name -> their class indices ``[N]``.
        """

    def transform(self, features: torch.Tensor, domain: str) -> torch.Tensor:
        """Map ``[N, F]`` teacher features of ``domain`` to knowledge vectors ``[N, dim]``.

        Args:
            features: ``[N, F]`` teacher features.
            domain: The domain they come from (fitted on, added, or new).

        Returns:
            A floating, finite ``[N, dim]`` tensor.

        Raises:
            NotImplementedError: Not overridden.
        """
        raise NotImplementedError

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Tensors and JSON metadata that restore the fitted encoder.

        Returns:
            ``(tensors, metadata)``: name -> ``torch.Tensor`` (no numpy arrays, no pickled
            objects) and a dict JSON can hold.

        Raises:
            NotImplementedError: Not overridden.
        """
        raise NotImplementedError

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Restore what :meth:`state` returned.

        Args:
            tensors: The tensors of :meth:`state`.
            meta: Its metadata (as read back from JSON).

        Raises:
            NotImplementedError: Not overridden.
        """
        raise NotImplementedError

    def save(self, directory: Path, stem: str = "encoder") -> None:
        """Write ``<stem>.safetensors`` and ``<stem>.json`` atomically.

        Args:
            directory: An existing directory.
            stem: The files' name without suffix.
        """
        from safetensors.torch import save

        tensors, meta = self.state()
        tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
        atomic_write_bytes(Path(directory) / f"{stem}.safetensors", save(tensors))
        meta = {"name": self.name, "params": self.config.model_dump(), "state": meta}
        atomic_write_text(Path(directory) / f"{stem}.json", json.dumps(meta, indent=2))

    def load(self, directory: Path, stem: str = "encoder") -> None:
        """Read what :meth:`save` wrote.

        Args:
            directory: The directory :meth:`save` wrote into.
            stem: The files' name without suffix.

        Raises:
            RunFileError: A file is missing or unreadable (the message names it).
        """
        from cdkd_core.errors import RunFileError
        from cdkd_core.files import read_run_file

        tensors = read_run_file(Path(directory) / f"{stem}.safetensors")
        meta = read_run_file(Path(directory) / f"{stem}.json")
        if "state" not in meta:
            raise RunFileError(f"{Path(directory) / f'{stem}.json'}: no 'state' (not an encoder's)")
        self.load_state(tensors, meta["state"])
