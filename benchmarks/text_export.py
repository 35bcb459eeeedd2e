"""Sentences per second from raw text for a text student (a ``static_embedding`` stem),
tokenisation included, on one thread: the student in process (PyTorch), its ONNX export
under ONNX Runtime, its TorchScript export, and the MiniLM teacher for reference.

Every variant takes the same batches of raw strings and tokenises each batch itself:

- ``pytorch``: the run's student rebuilt by :func:`cdkd_core.artifacts.export.load_run_student`
  (eval mode, ``torch.no_grad``) on the ids of ``cdkd_nlp.student_tokenizer``,
  each batch right-padded to its longest text;
- ``pytorch_max_tokens``: the same student on ``student_tokenizer(...).encode(texts,
  max_tokens)``, the domains' own view (padded to ``max_tokens``; the stem drops the
  all-padding columns itself);
- ``onnx`` and ``torchscript``: the files of ``RUN_DIR/export/`` (run ``cdkd export RUN_DIR
  -f onnx -f torchscript`` first), tokenised with the export folder alone (its
  ``manifest.json`` ``text_input`` and the ``tokenizer.json`` beside it), padded to each
  batch's longest text;
- ``teacher``: ``MiniLMEmbedder(batch_size=batch).encode(texts)`` alone (MiniLM from raw
  text: its tokenizer and transformer; it sorts the texts by length first). The teacher's
  own network over the 384-d vector is left out: it is a small MLP, far below MiniLM's cost.

One thread everywhere: ``torch.set_num_threads(1)``, ONNX Runtime with one intra- and one
inter-op thread, and ``TOKENIZERS_PARALLELISM=false`` (``encode_batch`` would otherwise use a
thread per core). Each figure is the median over ``repeats`` passes over all texts, after one
warm-up batch.

    python -m benchmarks.text_export RUN_DIR [--domain NAME] [--texts 2048] [--no-teacher]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from cdkd_nlp import pad_ids

#: variant -> what it is (the table's rows, in order)
VARIANTS = {
    "pytorch": "PyTorch student, in process (padded to the batch's longest)",
    "pytorch_max_tokens": "PyTorch student, in process (padded to max_tokens, as the domains)",
    "onnx": "ONNX export, onnxruntime (export folder's tokenizer)",
    "torchscript": "TorchScript export (export folder's tokenizer)",
    "teacher": "teacher: MiniLM encode from raw text (its MLP left out)",
}


def exported_tokenizer(export_dir: Path, entry: dict[str, Any]) -> Callable[[list[str]], Any]:
    """Raw texts -> ids as the manifest entry's ``text_input`` says, from the export folder
    alone (``tokenizers`` and the shipped ``tokenizer.json``)."""
    from tokenizers import Tokenizer

    text = entry["text_input"]
    tok = Tokenizer.from_file(str(Path(export_dir) / text["files"]["tokenizer.json"]))
    tok.no_padding()
    tok.no_truncation()
    limit, special, padding = text["max_tokens"], text["add_special_tokens"], text["padding_id"]

    def encode(texts: list[str]) -> np.ndarray:
        encodings = tok.encode_batch(texts, add_special_tokens=special)
        return pad_ids([e.ids[:limit] for e in encodings], padding_id=padding)

    return encode


@contextmanager
def one_thread() -> Iterator[None]:
    """torch and the ``tokenizers`` library on one thread for the block."""
    threads, before = torch.get_num_threads(), os.environ.get("TOKENIZERS_PARALLELISM")
    torch.set_num_threads(1)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        if before is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = before


def _rates(
    steps: dict[str, tuple[Callable[[Any], Any], Sequence[Any]]], repeats: int
) -> dict[str, list[float]]:
    """Per step ``(function, batches)`` (batches of texts, or id arrays: a row per
    sentence), the sentences per second of ``repeats`` passes over its batches. Each step is
    warmed up on its first batch; the passes are interleaved (one of each step per repeat),
    so that a change in the machine's load falls on every step alike."""
    for step, batches in steps.values():
        step(batches[0])
    rates: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, (step, batches) in steps.items():
            start = time.perf_counter()
            for item in batches:
                step(item)
            rates[name].append(sum(map(len, batches)) / (time.perf_counter() - start))
    return rates


def raw_text_throughput(
    run_dir: Path,
    texts: list[str],
    batch: int = 256,
    repeats: int = 5,
    domain: str | None = None,
    teacher: bool = True,
) -> dict[str, Any]:
    """Sentences per second from raw ``texts`` (tokenisation included, one thread) of the
    run's text student in process, its ONNX and TorchScript exports (those in
    ``RUN_DIR/export/``), and MiniLM (``teacher``); medians over ``repeats``. Also the
    largest logit difference of each export from the in-process student on the first batch,
    and the model-only rate of each student variant on pre-tokenised batches."""
    from cdkd_nlp import student_tokenizer

    from cdkd_core import PluginHost
    from cdkd_core.experimental import load_run_student

    run_dir = Path(run_dir)
    export_dir = run_dir / "export"
    manifest_path = export_dir / "manifest.json"
    if not manifest_path.is_file():
        raise SystemExit(f"{manifest_path}: missing; run cdkd export {run_dir} -f onnx first")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    text_domains = [k for k, v in manifest["domains"].items() if "text_input" in v]
    if not text_domains:
        raise SystemExit(f"{manifest_path}: no exported domain reads raw text (text_input)")
    domain = domain or text_domains[0]
    if domain not in text_domains:
        raise SystemExit(f"{domain!r} is not among the text domains {text_domains}")
    entry = manifest["domains"][domain]
    text_input = entry["text_input"]
    limit = text_input["max_tokens"]
    batches = [list(texts[i : i + batch]) for i in range(0, len(texts), batch)]
    if not batches:
        raise SystemExit("no texts")

    with one_thread(), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
        module = load_run_student(run_dir, PluginHost()).domain_module(domain).eval()
        cdkd_tok = student_tokenizer(text_input["vocabulary"])
        exported_tok = exported_tokenizer(export_dir, entry)

        def in_process(ids: np.ndarray) -> np.ndarray:
            return module(torch.from_numpy(ids)).numpy()

        models: dict[str, tuple[Callable[[list[str]], np.ndarray], Callable]] = {
            "pytorch": (lambda t: pad_ids(cdkd_tok.token_ids(t, limit)), in_process),
            "pytorch_max_tokens": (lambda t: cdkd_tok.encode(t, limit), in_process),
        }
        if "onnx" in entry["files"]:
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
            session = onnxruntime.InferenceSession(
                str(export_dir / entry["files"]["onnx"]),
                options,
                providers=["CPUExecutionProvider"],
            )
            models["onnx"] = (exported_tok, lambda ids: session.run(None, {"x": ids})[0])
        if "torchscript" in entry["files"]:
            scripted = torch.jit.load(str(export_dir / entry["files"]["torchscript"]))
            models["torchscript"] = (
                exported_tok,
                lambda ids: scripted(torch.from_numpy(ids)).numpy(),
            )

        steps: dict[str, tuple[Callable[[Any], Any], Sequence[Any]]] = {}
        diff: dict[str, float] = {}
        reference = in_process(pad_ids(cdkd_tok.token_ids(batches[0], limit)))
        for name, (tokenize, run) in models.items():
            steps[name] = (lambda t, tok=tokenize, f=run: f(tok(t)), batches)
            ids = [tokenize(t) for t in batches]
            diff[name] = float(np.abs(run(ids[0]) - reference).max())
            steps[f"model_only/{name}"] = (run, ids)
        steps["tokenize_only/cdkd student_tokenizer"] = (
            lambda t: cdkd_tok.token_ids(t, limit),
            batches,
        )
        steps["tokenize_only/export folder"] = (exported_tok, batches)
        if teacher:  # every text in one call, as cdkd embeds a domain (sorted by length)
            from cdkd_nlp import MiniLMEmbedder

            steps["teacher"] = (MiniLMEmbedder(batch_size=batch).encode, [list(texts)])
        rates = _rates(steps, repeats)

    median = {k: statistics.median(v) for k, v in rates.items()}
    lengths = [len(ids) for ids in cdkd_tok.token_ids(list(texts), limit)]
    return {
        "run": run_dir.name,
        "domain": domain,
        "texts": len(texts),
        "batch": batch,
        "repeats": repeats,
        "threads": 1,
        "mean_tokens": float(np.mean(lengths)),
        "max_tokens": limit,
        "sentences_per_s": {k: median[k] for k in rates if "/" not in k},
        "model_only_sentences_per_s": _part(median, "model_only/"),
        "tokenize_only_sentences_per_s": _part(median, "tokenize_only/"),
        "all_repeats": rates,
        "max_abs_logit_diff": diff,
        "torch": torch.__version__,
    }


def _part(values: dict[str, float], prefix: str) -> dict[str, float]:
    return {k.removeprefix(prefix): v for k, v in values.items() if k.startswith(prefix)}


def format_table(result: dict[str, Any]) -> str:
    """The result as a small text table."""
    lines = [
        f"run {result['run']}, domain {result['domain']}: {result['texts']} texts "
        f"(mean {result['mean_tokens']:.1f} tokens, cut at {result['max_tokens']}), batch "
        f"{result['batch']}, 1 thread, median of {result['repeats']}",
        "",
        f"{'':<68} {'raw text/s':>11} {'model only/s':>13} {'max |dlogit|':>13}",
    ]
    for name, label in VARIANTS.items():
        if name not in result["sentences_per_s"]:
            continue
        only = result["model_only_sentences_per_s"].get(name)
        diff = result["max_abs_logit_diff"].get(name)
        lines.append(
            f"{label:<68} {result['sentences_per_s'][name]:>11,.0f} "
            f"{'' if only is None else f'{only:,.0f}':>13} "
            f"{'' if diff is None else f'{diff:.1e}':>13}"
        )
    for name, rate in result["tokenize_only_sentences_per_s"].items():
        lines.append(f"{'tokenisation alone (' + name + ')':<68} {rate:>11,.0f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.text_export", description=__doc__.splitlines()[0]
    )
    parser.add_argument("run_dir", type=Path, help="a finished run with an export/ folder")
    parser.add_argument("--domain", help="an exported text domain (default: the first)")
    parser.add_argument("--dataset", default="movies", help="VADER set of the texts")
    parser.add_argument("--texts", type=int, default=2048, help="how many texts")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-teacher", action="store_true", help="leave MiniLM out")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    from cdkd_nlp import read_vader

    texts = read_vader(args.dataset).texts[: args.texts]
    result = raw_text_throughput(
        args.run_dir, texts, args.batch, args.repeats, args.domain, not args.no_teacher
    )
    print(json.dumps(result, indent=2) if args.json else format_table(result))


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(sys.argv[1:])
