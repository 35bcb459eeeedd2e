"""What a network needs of one domain: :class:`NetworkSlot`, the plugin-facing description
an architecture builds a stem or a head for."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class NetworkSlot:
    """What a network needs of one domain: its input space and shape, modality and task.

    A run directory keeps these (``layout.json``) so a network can be rebuilt from its
    weights without loading any data (``cdkd export``).

    Args:
        name: The domain's name.
        space: Its input space (domains sharing one share a stem).
        modality: ``"tabular"``, ``"image"``, ``"text"``, ``"series"``, ...
        task: Its task (domains sharing one share a head).
        num_classes: The task's number of classes.
        input_shape: One example's shape in this view (without batch).
        input_dtype: The view's dtype without ``torch.`` (``"float32"``, ``"int64"``).
        vocabulary: The token vocabulary of an integer view
            (``DomainData.student_vocabulary``; student slots only).

    Examples:
        >>> from cdkd_core.plugin_api import NetworkSlot
        >>> slot = NetworkSlot(name="toy.parity", space="toy.parity", modality="tabular",
        ...                    task="toy.parity", num_classes=2, input_shape=(13,),
        ...                    input_dtype="float32")
        >>> slot.to_dict()["input_shape"], NetworkSlot.from_dict(slot.to_dict()) == slot
        ([13], True)
    """

    name: str
    space: str
    modality: str
    task: str
    num_classes: int
    input_shape: tuple[int, ...]
    input_dtype: str
    #: the token vocabulary of an integer view (``DomainData.student_vocabulary``; the
    #: teacher's view of text is a vector, so only student slots carry one)
    vocabulary: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form.

        Returns:
            The fields as a dict, ``input_shape`` as a list.
        """
        return {**asdict(self), "input_shape": list(self.input_shape)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetworkSlot:
        """Inverse of :meth:`to_dict`.

        Args:
            data: What :meth:`to_dict` returned (e.g. read back from ``layout.json``).

        Returns:
            The slot.
        """
        return cls(**{**data, "input_shape": tuple(data["input_shape"])})
