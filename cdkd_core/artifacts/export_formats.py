"""The export formats: which exist and what each needs, the files' names in ``export/``,
capturing a domain's graph in a format and checking the written file against the student."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import re
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch import nn

from cdkd_core.artifacts.run_files import first_line
from cdkd_core.errors import CdkdError, ExportError

#: format -> file suffix
FORMATS: dict[str, str] = {"onnx": ".onnx", "torchscript": ".pt", "export": ".pt2"}
#: format -> (module, pip package) pairs it needs beyond torch
REQUIREMENTS: dict[str, tuple[tuple[str, str], ...]] = {
    "onnx": (("onnx", "onnx"), ("onnxscript", "onnxscript")),
}
MANIFEST = "manifest.json"


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
        missing = [pip for module, pip in REQUIREMENTS.get(fmt, ()) if not installed(module)]
        if missing:
            raise ExportError(
                f"the {fmt} export needs the package(s) {', '.join(missing)}: pip install "
                f"{' '.join(missing)} (or pip install 'cdkd[export]')"
            )
    return chosen


def installed(module: str) -> bool:
    """Whether ``module`` can be imported here (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module set to None
        return False


def file_stems(names: list[str]) -> dict[str, str]:
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


@contextlib.contextmanager
def _quiet_logger(name: str, level: int = logging.ERROR) -> Iterator[None]:
    """Raise the logger ``name``'s level for the block (torch's ONNX exporter logs a
    warning per torchvision operator it cannot register when torchvision is absent)."""
    logger = logging.getLogger(name)
    before = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(before)


def write_graph(
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
                with contextlib.redirect_stdout(io.StringIO()), _quiet_logger("torch.onnx"):
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
            f"({layers(module)}): {first_line(exc)}; try another --format (--debug shows "
            "the traceback)"
        ) from exc


def verify_graph(fmt: str, module: nn.Module, x: torch.Tensor, path: Path, domain: str) -> None:
    """Load the written file back and compare it with the student on a batch of another
    size (skipped for ONNX when onnxruntime is not installed)."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
        expected = module(x)
        if fmt == "onnx" and not installed("onnxruntime"):
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
                f"{list(x.shape)}, the student does not ({layers(module)}): "
                f"{first_line(exc)}"
            ) from exc
    if got.shape != expected.shape:
        raise CdkdError(
            f"domain {domain!r}: the {fmt} export gives outputs of shape {list(got.shape)} at "
            f"batch size {len(x)}, the student {list(expected.shape)}: the batch dimension "
            f"did not stay dynamic ({layers(module)})"
        )
    if not got.numel():
        return
    diff = output_difference(got, expected)
    if diff is not None:
        raise CdkdError(
            f"domain {domain!r}: the {fmt} export differs from the student by up to {diff:.3g} "
            f"at batch size {len(x)} ({layers(module)}); a layer may hold steps that depend "
            "on the data or the batch size, which the capture fixed"
        )


def output_difference(got: torch.Tensor, expected: torch.Tensor) -> float | None:
    """The largest absolute difference between a graph's outputs and the module's when it
    exceeds the tolerance (``1e-4 * (1 + max |expected|)``), else None."""
    diff = float((got.float() - expected).abs().max())
    bound = 1e-4 * (1.0 + float(expected.abs().max()))
    return None if diff <= bound else diff


def layers(module: nn.Module) -> str:
    """The stem, trunk and head types of a domain's module, for messages (the module's own
    type when it has none of them)."""
    parts = [(p, getattr(module, p, None)) for p in ("stem", "trunk", "head")]
    if all(m is None for _, m in parts):
        return type(module).__name__
    return ", ".join(f"{part} {type(m).__name__}" for part, m in parts if m is not None)
