"""Architectures: the stems, trunks and heads a teacher or student is assembled from.

A *stem* maps one domain's inputs (a table row, an image, an embedding, a window of a
series) to the trunk's width; the *trunk* is shared by all domains; a *head* per task maps
trunk features to logits. An architecture may provide a stem (for the modalities it lists
in ``modalities``), a trunk, or both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from torch import nn

from cdkd_core.components.base import Component

if TYPE_CHECKING:
    from cdkd_core.nets.assembly import NetworkSlot


class Architecture(Component):
    """A network part usable in the ``teacher:`` or ``student:`` slot."""

    #: Modalities this architecture can be a stem for (empty: no stem).
    modalities: ClassVar[tuple[str, ...]] = ()
    #: Modalities for which it is the default stem when the config names none; an entry
    #: ``"<modality>:teacher"`` or ``"<modality>:student"`` applies to one side only (e.g. a
    #: stem over cached embeddings for the teacher, over token ids for the student).
    default_for: ClassVar[tuple[str, ...]] = ()
    #: Whether it can serve as the shared trunk.
    provides_trunk: ClassVar[bool] = False

    def build_stem(self, input_shape: tuple[int, ...], out_features: int) -> nn.Module:
        """A module mapping inputs of ``input_shape`` (without batch) to ``[N, out_features]``."""
        raise NotImplementedError(f"architecture {self.name!r} provides no stem")

    def build_stem_for(self, slot: NetworkSlot, out_features: int) -> nn.Module:
        """The stem for one input space, given all the core knows of it (``slot``: input
        shape and dtype, modality, ``vocabulary`` of a token view). The default calls
        :meth:`build_stem` with the input shape; a stem that needs more (a token table sized
        to its domains' vocabulary) overrides this instead."""
        return self.build_stem(slot.input_shape, out_features)

    def build_trunk(self) -> nn.Module:
        """The shared trunk; the module sets ``in_features`` and ``out_features``."""
        raise NotImplementedError(f"architecture {self.name!r} provides no trunk")

    def build_head(self, in_features: int, num_classes: int) -> nn.Module:
        """A task head (used when the config names this architecture as ``head``)."""
        return nn.Linear(in_features, num_classes)


class EstimatorArchitecture(Architecture):
    """A whole teacher that is a classical model (``teacher.model``): a scikit-learn
    classifier fitted on the source domains' train split and selected on their val split.

    The core fits one estimator per (input space, task) of the sources, reads its class
    probabilities as the teacher's soft labels, and gives the encoders the per-example
    vector :meth:`representation` returns. The fitted estimator is kept in skops' secure
    format (no pickle); loading refuses any type outside :attr:`trusted_types`.
    """

    #: what its soft labels and representation can feed: losses needing anything else
    #: (``graph``) and the encoders named in :attr:`refused_encoders` are refused by
    #: ``cdkd validate``
    provides: ClassVar[frozenset[str]] = frozenset({"labels", "teacher_logits", "vectors"})
    #: encoders that cannot work on its representation, with the reason
    refused_encoders: ClassVar[dict[str, str]] = {}
    #: fully qualified names of the types a saved estimator may contain beyond the ones
    #: skops trusts by default
    trusted_types: ClassVar[tuple[str, ...]] = ()

    def build_estimator(self, seed: int) -> Any:
        """An unfitted classifier with ``fit`` and ``predict_proba``."""
        raise NotImplementedError(f"architecture {self.name!r} builds no estimator")

    def fit_selected(
        self,
        estimator: Any,
        x: np.ndarray,
        y: np.ndarray,
        val_x: list[np.ndarray],
        val_y: list[np.ndarray],
        val_score: Callable[[list[np.ndarray]], float],
    ) -> tuple[Any, dict[str, Any]]:
        """Fit ``estimator`` on ``x``/``y`` and choose its capacity on the val split
        (``val_x``/``val_y``, one array per domain): ``val_score`` is the mean headline
        metric of class probabilities predicted for each array of ``val_x`` (higher is
        better), what a network teacher is selected on. The fitted estimator and what was
        chosen (logged)."""
        raise NotImplementedError(f"architecture {self.name!r} builds no estimator")

    def parameter_count(self, estimator: Any) -> int:
        """How many values the fitted estimator stores (``params.teacher`` of the summary;
        its saved size in bytes is reported beside it)."""
        return 0

    def representation(self, estimator: Any, x: np.ndarray) -> np.ndarray:
        """float32 ``[N, D]``: what the encoders read for ``x`` (``D`` fixed per estimator)."""
        raise NotImplementedError
