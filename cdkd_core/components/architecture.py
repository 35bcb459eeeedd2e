"""Architectures: the stems, trunks and heads a teacher or student is assembled from.

A *stem* maps one domain's inputs (a table row, an image, an embedding, a window of a
series) to the trunk's width; the *trunk* is shared by all domains; a *head* per task maps
trunk features to logits. An architecture may provide a stem (for the modalities it lists
in ``modalities``), a trunk, or both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

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
