"""The pieces of a SentencePiece model file, read from its documented format.

A ``.model`` file is a serialised ``ModelProto`` (sentencepiece's
``sentencepiece_model.proto``): field 1 repeats ``SentencePiece`` messages, each with
``piece`` (field 1, string), ``score`` (field 2, float) and ``type`` (field 3, enum).
Piece ``j`` of the file is id ``j`` of the model. This reader needs neither the
``sentencepiece`` library nor the internals of the tokenizer that encodes with the model.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cdkd_core.plugin_api import DataError

_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5


@dataclass(frozen=True)
class SentencePieces:
    """The pieces of a model, in id order, and each one's score (0.0 where none is stored:
    sentencepiece stores none for control pieces such as ``<unk>``, ``<s>``, ``</s>``)."""

    pieces: tuple[str, ...]
    scores: tuple[float, ...]


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """``(field, wire type, value start, value end)`` of each field of one message."""
    pos = start
    while pos < end:
        tag, pos = _varint(data, pos)
        field, wire = tag >> 3, tag & 7
        if wire == _VARINT:
            _, after = _varint(data, pos)
        elif wire == _FIXED64:
            after = pos + 8
        elif wire == _BYTES:
            length, pos = _varint(data, pos)
            after = pos + length
        elif wire == _FIXED32:
            after = pos + 4
        else:
            raise ValueError(f"wire type {wire} at byte {pos}")
        if after > end:
            raise ValueError(f"field {field} runs past its message at byte {pos}")
        yield field, wire, pos, after
        pos = after


def read_sentence_pieces(path: Path) -> SentencePieces:
    """The pieces and scores of the SentencePiece model at ``path``.

    Raises:
        DataError: The file cannot be read or is not a SentencePiece model.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read the SentencePiece model ({exc})") from None
    pieces: list[str] = []
    scores: list[float] = []
    try:
        for field, wire, start, end in _fields(data, 0, len(data)):
            if field != 1 or wire != _BYTES:
                continue
            piece: str | None = None
            score = 0.0
            for sub, sub_wire, value, value_end in _fields(data, start, end):
                if sub == 1 and sub_wire == _BYTES:
                    piece = data[value:value_end].decode("utf-8")
                elif sub == 2 and sub_wire == _FIXED32:
                    (score,) = struct.unpack("<f", data[value:value_end])
            if piece is None:
                raise ValueError(f"piece {len(pieces)} has no text")
            pieces.append(piece)
            scores.append(score)
    except (ValueError, IndexError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a SentencePiece model ({exc})") from None
    if not pieces:
        raise DataError(f"{path}: not a SentencePiece model (no pieces)")
    return SentencePieces(tuple(pieces), tuple(scores))
