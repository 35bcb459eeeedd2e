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
    from cdkd_core.components.slot import NetworkSlot


class Architecture(Component):
    """A network part usable in the ``teacher:`` or ``student:`` slot.

    It may provide a stem (for the modalities it lists), a trunk, or both; a config names
    it as a model's ``trunk``, as a stem under ``stems``, or as a ``head``.

    Attributes:
        modalities: Modalities it can be a stem for (empty: no stem).
        default_for: Modalities for which it is the default stem when the config names
            none; an entry ``"<modality>:teacher"`` or ``"<modality>:student"`` applies to
            one side only.
        provides_trunk: Whether it can serve as the shared trunk.

    Examples:
        >>> from torch import nn
        >>> from cdkd_core.plugin_api import Architecture, check_architecture
        >>> class Trunk(nn.Sequential):
        ...     in_features = out_features = 16
        >>> class TinyNet(Architecture):
        ...     "A linear stem for tables and a one-layer trunk."
        ...     name = "tiny"
        ...     modalities = ("tabular",)
        ...     provides_trunk = True
        ...     def build_stem(self, input_shape, out_features):
        ...         return nn.Linear(input_shape[0], out_features)
        ...     def build_trunk(self):
        ...         return Trunk(nn.Linear(16, 16), nn.ReLU())
        >>> check_architecture(TinyNet())  # raises AssertionError if a contract breaks
    """

    #: Modalities this architecture can be a stem for (empty: no stem).
    modalities: ClassVar[tuple[str, ...]] = ()
    #: Modalities for which it is the default stem when the config names none; an entry
    #: ``"<modality>:teacher"`` or ``"<modality>:student"`` applies to one side only (e.g. a
    #: stem over cached embeddings for the teacher, over token ids for the student).
    default_for: ClassVar[tuple[str, ...]] = ()
    #: Whether it can serve as the shared trunk.
    provides_trunk: ClassVar[bool] = False

    def build_stem(self, input_shape: tuple[int, ...], out_features: int) -> nn.Module:
        """A module mapping inputs of ``input_shape`` (without batch) to ``[N, out_features]``.

        Args:
            input_shape: One example's shape, e.g. ``(13,)`` for a table of 13 columns.
            out_features: The trunk's ``in_features``.

        Returns:
            The stem module.

        Raises:
            NotImplementedError: The architecture provides no stem (the default).
        """
        raise NotImplementedError(f"architecture {self.name!r} provides no stem")

    def build_stem_for(self, slot: NetworkSlot, out_features: int) -> nn.Module:
        """The stem for one input space, given all the core knows of it (``slot``: input
        shape and dtype, modality, ``vocabulary`` of a token view). The default calls
        :meth:`build_stem` with the input shape; a stem that needs more (a token table sized
        to its domains' vocabulary) overrides this instead.

        Args:
            slot: The input space: shape, dtype, modality, task, vocabulary.
            out_features: The trunk's ``in_features``.

        Returns:
            The stem module.

        Raises:
            NotImplementedError: The architecture provides no stem.
        """
        return self.build_stem(slot.input_shape, out_features)

    def build_trunk(self) -> nn.Module:
        """The shared trunk; the module sets ``in_features`` and ``out_features``.

        Returns:
            A module mapping ``[N, in_features]`` to ``[N, out_features]``, with those two
            int attributes.

        Raises:
            NotImplementedError: The architecture provides no trunk (the default).
        """
        raise NotImplementedError(f"architecture {self.name!r} provides no trunk")

    def build_head(self, in_features: int, num_classes: int) -> nn.Module:
        """A task head (used when the config names this architecture as ``head``).

        Args:
            in_features: The trunk's ``out_features``.
            num_classes: The task's number of classes.

        Returns:
            A module mapping ``[N, in_features]`` to logits ``[N, num_classes]`` (default:
            ``nn.Linear``).
        """
        return nn.Linear(in_features, num_classes)


class EstimatorArchitecture(Architecture):
    """A whole teacher that is a classical model (``teacher.model``): a scikit-learn
    classifier fitted on the source domains' train split and selected on their val split.

    The core fits one estimator per (input space, task) of the sources, reads its class
    probabilities as the teacher's soft labels, and gives the encoders the per-example
    vector :meth:`representation` returns. The fitted estimator is kept in skops' secure
    format (no pickle); loading refuses any type outside :attr:`trusted_types`.

    Attributes:
        provides: What its soft labels and representation can feed; losses needing
            anything else (``graph``) are refused by ``cdkd validate``.
        refused_encoders: Encoders that cannot work on its representation, with the
            reason (refused by ``cdkd validate``).
        trusted_types: Fully qualified names of the types a saved estimator may contain
            beyond the ones skops trusts by default.

    Examples:
        >>> import numpy as np
        >>> from cdkd_core.plugin_api import EstimatorArchitecture
        >>> class Logistic(EstimatorArchitecture):
        ...     "Logistic regression as the teacher."
        ...     name = "logistic"
        ...     def build_estimator(self, seed):
        ...         from sklearn.linear_model import LogisticRegression
        ...         return LogisticRegression(max_iter=500, random_state=seed)
        ...     def fit_selected(self, estimator, x, y, val_x, val_y, val_score):
        ...         return estimator.fit(x, y), {}  # no capacity to choose
        ...     def parameter_count(self, estimator):
        ...         return estimator.coef_.size + estimator.intercept_.size
        ...     def representation(self, estimator, x):
        ...         return estimator.predict_proba(x).astype(np.float32)
        >>> arch = Logistic()
        >>> x, y = np.random.default_rng(0).normal(size=(40, 3)), np.arange(40) % 2
        >>> fitted, chosen = arch.fit_selected(arch.build_estimator(0), x, y, [], [], None)
        >>> arch.representation(fitted, x).shape, arch.parameter_count(fitted)
        ((40, 2), 4)
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
        """An unfitted classifier with ``fit`` and ``predict_proba``.

        Args:
            seed: The run's seed (for the estimator's ``random_state``).

        Returns:
            The estimator (a scikit-learn classifier or one with the same methods).

        Raises:
            NotImplementedError: Not overridden.
        """
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
        chosen (logged).

        Args:
            estimator: What :meth:`build_estimator` returned.
            x: ``[N, F]`` train features of the sources of one input space and task.
            y: ``[N]`` their class indices.
            val_x: Each source domain's val features.
            val_y: Each source domain's val labels.
            val_score: Scores a candidate's class probabilities (one array per
                ``val_x``), higher is better.

        Returns:
            The fitted estimator and a JSON-ready dict of what was chosen.

        Raises:
            NotImplementedError: Not overridden.
        """
        raise NotImplementedError(f"architecture {self.name!r} builds no estimator")

    def parameter_count(self, estimator: Any) -> int:
        """How many values the fitted estimator stores (``params.teacher`` of the summary;
        its saved size in bytes is reported beside it).

        Args:
            estimator: The fitted estimator.

        Returns:
            The count (default: 0, unknown).
        """
        return 0

    def representation(self, estimator: Any, x: np.ndarray) -> np.ndarray:
        """float32 ``[N, D]``: what the encoders read for ``x`` (``D`` fixed per estimator).

        Args:
            estimator: The fitted estimator.
            x: ``[N, F]`` features.

        Returns:
            The ``[N, D]`` float32 representation.

        Raises:
            NotImplementedError: Not overridden.
        """
        raise NotImplementedError
