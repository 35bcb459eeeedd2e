"""Exporting a finished run's student: for each domain it predicts, one self-contained graph
from the domain's student view (before standardisation) to logits.

The student is rebuilt from the run directory alone (``config.yaml``, ``layout.json``,
``student.safetensors``, ``preprocessing.safetensors``); no data is loaded. Every file is
written into a temporary directory inside the run and swapped into ``export/`` at the end,
after each exported graph has been loaded back and checked against the student.

A domain whose student stem can name the files that turn raw text into its ids (a text stem
with ``inference_files()``, such as the nlp plugin's ``static_embedding``) also gets those
files copied into ``export/`` and a ``text_input`` entry in the manifest saying how to use
them; its graphs take a batch padded only to its longest text (the token axis is dynamic).

The ONNX graphs hold their weights themselves, except those two or more of them hold alike
(e.g. the token table of a text stem several domains share): these are written once, into
``shared.onnx_data`` (:mod:`cdkd_core.artifacts.onnx_sharing`), which the manifest lists.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from cdkd_core.artifacts.export_formats import (
    FORMATS,
    MANIFEST,
    check_formats,
    file_stems,
    verify_graph,
    write_graph,
)
from cdkd_core.artifacts.onnx_sharing import SHARED_WEIGHTS, share_initializers
from cdkd_core.artifacts.run_student import (
    RunStudent,
    check_run_dir,
    input_dtype,
    load_run_student,
)
from cdkd_core.artifacts.text_export import (
    TextInput,
    example_ids,
    place_files,
    text_entry,
    text_input,
)
from cdkd_core.errors import ExportError

if TYPE_CHECKING:
    from cdkd_core.host.plugin_host import PluginHost

__all__ = ["EXPORT_DIR", "FORMATS", "MANIFEST", "example_input", "export_run", "load_run_student"]

EXPORT_DIR = "export"
#: batch sizes of the example inputs: the graph is captured at one and checked at another
# (not 0 or 1, which torch.export would specialise on)
TRACE_BATCH, CHECK_BATCH = 2, 3


def export_run(
    run_dir: Path,
    formats: Sequence[str] = ("onnx",),
    *,
    host: PluginHost,
    on_file: Callable[[Path], None] | None = None,
) -> dict[str, Any]:
    """Export the student of the finished run in ``run_dir`` to ``run_dir/export/``: for each
    domain it predicts, one file per format (``onnx``: ``<domain>.onnx``; ``torchscript``:
    ``<domain>.pt``; ``export``: ``<domain>.pt2``, a ``torch.export`` program), plus
    ``manifest.json`` and, where ONNX graphs hold weights alike, ``shared.onnx_data``. An
    existing ``export/`` is replaced as a whole, and only once every file is written and
    checked. ``host``: the plugin host the run's components come from. ``on_file`` is
    called with each file's final path. Returns the manifest."""
    from cdkd_core.files import atomic_dir, atomic_write_json
    from cdkd_core.version import __version__

    run_dir = check_run_dir(run_dir)
    formats = check_formats(formats)
    student = load_run_student(run_dir, host)
    components = _domain_components(student.config, host)
    domains, skipped = _exportable_domains(student)
    stems = file_stems(list(domains))
    texts = {name: text_input(student, name) for name in domains}
    taken = {MANIFEST, SHARED_WEIGHTS}
    taken |= {s.lower() + FORMATS[f] for s in stems.values() for f in formats}
    shipped = place_files({k: v for k, v in texts.items() if v is not None}, taken)
    manifest: dict[str, Any] = {
        "formats": formats,
        "run": run_dir.resolve().name,
        "cdkd_version": __version__,
        "torch_version": torch.__version__,
        "domains": {},
        "skipped": skipped,
        "shared_files": {},
    }
    written = []
    final = run_dir / EXPORT_DIR
    with atomic_dir(final) as staging:
        for name, info in domains.items():
            text = texts[name]
            files = _export_domain(student, name, formats, stems[name], text, staging)
            written += [final / filename for filename in files.values()]
            entry = _entry(student, name, info, files, components)
            if text is not None:
                entry = text_entry(entry, text, shipped[text.space])
            manifest["domains"][name] = entry
        if "onnx" in formats:
            written += [final / f for f in _share_onnx_weights(student, texts, manifest, staging)]
        written += [final / target for target in _copy_text_files(texts, shipped, staging)]
        atomic_write_json(staging / MANIFEST, manifest)
    if on_file is not None:
        for path in [*written, final / MANIFEST]:
            on_file(path)
    return manifest


def _exportable_domains(
    student: RunStudent,
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """The layout entries of the domains the student predicts, and why each other one is
    skipped; an :class:`ExportError` when it predicts none."""
    domains, skipped = {}, {}
    for name, info in student.layout["domains"].items():
        reason = _not_exportable(student, name)
        if reason is not None:
            skipped[name] = reason
            continue
        domains[name] = info
    if not domains:
        raise ExportError(
            f"{student.run_dir}: the student predicts none of the run's domains ("
            + "; ".join(f"{k}: {v}" for k, v in skipped.items())
            + ")"
        )
    return domains, skipped


def _export_domain(
    student: RunStudent,
    name: str,
    formats: list[str],
    stem: str,
    text: TextInput | None,
    staging: Path,
) -> dict[str, str]:
    """Capture the domain's graph in each format into ``staging`` and check each file
    against the student; returns format -> file name."""
    module = student.domain_module(name)
    if text is None:
        example = example_input(student, name, TRACE_BATCH)
    else:  # real ids, rows of several lengths
        example = example_ids(TRACE_BATCH, text.max_tokens, text.id_limit)
    check = _check_input(student, name, text)
    files = {}
    for fmt in formats:
        filename = stem + FORMATS[fmt]
        write_graph(fmt, module, example, staging / filename, name, text is not None)
        verify_graph(fmt, module, check, staging / filename, name)
        files[fmt] = filename
    return files


def _check_input(student: RunStudent, name: str, text: TextInput | None) -> torch.Tensor:
    """The batch a domain's graphs are checked on: another batch size than the capture's,
    and for token ids another token length."""
    if text is None:
        return example_input(student, name, CHECK_BATCH, seed=1)
    return example_ids(CHECK_BATCH, text.max_tokens // 2 + 1, text.id_limit, 1)


def _share_onnx_weights(
    student: RunStudent,
    texts: dict[str, TextInput | None],
    manifest: dict[str, Any],
    staging: Path,
) -> list[str]:
    """Write the weights that two or more ONNX graphs in ``staging`` hold alike once, into
    :data:`SHARED_WEIGHTS`; check each graph that now reads it against the student again
    and record the file in the manifest. Returns the files written (none when no weights
    are shared)."""
    graphs = {entry["files"]["onnx"]: name for name, entry in manifest["domains"].items()}
    shared = share_initializers([staging / g for g in graphs], staging / SHARED_WEIGHTS)
    if shared is None:
        return []
    for graph in shared["graphs"]:
        name = graphs[graph]
        check = _check_input(student, name, texts[name])
        verify_graph("onnx", student.domain_module(name), check, staging / graph, name)
        manifest["domains"][name]["external_data"] = {"onnx": SHARED_WEIGHTS}
    manifest["shared_files"][SHARED_WEIGHTS] = {
        "format": "onnx",
        "bytes": shared["bytes"],
        "tensors": shared["tensors"],
        "used_by": shared["graphs"],
        "note": "ONNX external data: the weights these graphs hold alike (e.g. a text "
        "stem's token table), stored once; keep it beside them (onnxruntime finds it by "
        "the graph's folder).",
    }
    return [SHARED_WEIGHTS]


def _copy_text_files(
    texts: dict[str, TextInput | None], shipped: dict[str, dict[str, str]], staging: Path
) -> list[str]:
    """Copy the text domains' inference files into ``staging``; their paths inside it."""
    copies = {  # path inside export/ -> the file
        shipped[text.space][key]: source
        for text in texts.values()
        if text is not None
        for key, source in text.sources.items()
    }
    for target, source in copies.items():
        (staging / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, staging / target)
    return list(copies)


def _domain_components(config: Any, host: PluginHost) -> dict[str, dict[str, str]]:
    """Each domain's registered component name and, where known, its plugin."""
    from cdkd_core.errors import ConfigError

    out = {}
    for entry in config.domains:
        try:
            plugin = host.info("domains", entry.name).plugin
        except ConfigError:
            plugin = "?"
        out[entry.key] = {"component": entry.name, "plugin": plugin}
    return out


def _not_exportable(student: RunStudent, name: str) -> str | None:
    info = student.layout["domains"][name]
    if not student.net.has_stem(info["space"]):
        return f"the student has no stem for its input space {info['space']!r}"
    if not student.net.has_head(info["task"]):
        return f"the student has no head for its task {info['task']!r}"
    stem_shape = next(
        (s["input_shape"] for s in student.layout["student"] if s["space"] == info["space"]),
        None,
    )
    if stem_shape is not None and list(stem_shape) != list(info["student_input_shape"]):
        return (
            f"its student inputs have shape {info['student_input_shape']}, the stem of its "
            f"input space reads {list(stem_shape)}"
        )
    return None


def example_input(student: RunStudent, domain: str, batch: int, seed: int = 0) -> torch.Tensor:
    """A batch of made-up raw student inputs of the domain's shape and dtype: about the
    run's mean and spread for a standardised view, ids 0 and 1 (padding and the first id:
    valid for any vocabulary) for integer ids."""
    info = student.layout["domains"][domain]
    shape = (batch, *info["student_input_shape"])
    dtype = input_dtype(info["student_input_dtype"])
    generator = torch.Generator().manual_seed(seed)
    if not dtype.is_floating_point:
        return torch.randint(0, 2, shape, generator=generator).to(dtype)
    x = torch.randn(shape, generator=generator)
    if info["standardized"]["student_x"]:
        mean = student.preprocessing[f"{domain}/student_x/mean"].float()
        std = student.preprocessing[f"{domain}/student_x/std"].float()
        x = mean + std * x
    return x.to(dtype)


def _entry(
    student: RunStudent,
    name: str,
    info: dict[str, Any],
    files: dict[str, str],
    components: dict[str, dict[str, str]],
) -> dict[str, Any]:
    """The manifest entry of one exported domain."""
    shape = ["batch", *info["student_input_shape"]]
    dtype = info["student_input_dtype"]
    standardized = bool(info["standardized"]["student_x"])
    component = components.get(name, {"component": name, "plugin": "?"})
    source = f"domain component {component['component']!r} (plugin {component['plugin']!r})"
    if standardized:
        note = (
            f"Pass the student view as {source} produces it, before standardisation "
            f"({dtype} {shape}); the graph standardises it with the run's statistics. "
        )
    elif input_dtype(dtype).is_floating_point:
        note = (
            f"Pass the student view as {source} produces it ({dtype} {shape}); the run used "
            "it without standardisation, and the graph applies none. "
        )
    else:
        note = (
            f"Pass the student view as {source} produces it ({dtype} {shape}, e.g. the "
            "plugin's token ids, 0 = padding); the graph reads it as it is. "
        )
    note += (
        "Anything that domain does to raw data first (reading files, encoding CSV columns, "
        "tokenising, resizing) is not in the graph. The output is logits in the order of "
        "classes: softmax for probabilities, argmax for the label."
    )
    return {
        "role": info["role"],
        "task": info["task"],
        "space": info["space"],
        "modality": info["modality"],
        **component,
        "files": files,
        "input": {"name": "x", "shape": shape, "dtype": dtype},
        "output": {"name": "logits", "shape": ["batch", len(info["classes"])]},
        "classes": list(info["classes"]),
        "standardization_included": standardized,
        "note": note,
    }
