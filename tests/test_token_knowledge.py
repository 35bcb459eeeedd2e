"""cdkd_core.stages.token_knowledge: the token table against a numpy hand computation, its cache,
and the stem protocol behind ``student.weight_init: teacher_tokens``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import cdkd_core.stages.token_knowledge as tk
from cdkd_core import hookimpl, load_config, run_pipeline
from cdkd_core.components.architecture import Architecture
from cdkd_core.components.token_vocabulary import TokenKnowledgeStem, TokenVocabulary
from cdkd_core.config.models import StudentSpec
from cdkd_core.errors import ConfigError, DataError
from cdkd_core.host.plugin_host import PluginHost
from cdkd_core.nets.assembly import NetworkSlot, build_network
from cdkd_core.stages.token_knowledge import check_token_stems, inject_teacher_tokens, token_table

#: id 0 is padding and id 4 a special token: neither is shown to the teacher. The rank
#: order (most frequent first) is not the id order, so rank and id cannot be confused.
TOKENS = ("[PAD]", "the", ",", "cat", "[UNK]", "sat", "mat", "##s")
EMBED = (2, 1, 3, 7, 5, 6)
WIDTH = 5  # the teacher's output width


def vocabulary(tokens: Sequence[str] = TOKENS, embed: Sequence[int] = EMBED) -> TokenVocabulary:
    return TokenVocabulary("toy-vocab", tuple(tokens), tuple(embed))


class ToyTeacher:
    """A fixed random lookup table, not centred (offset), counting its calls."""

    def __init__(self, model_id: str = "toy/teacher@1", seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.model_id = model_id
        self.matrix = (rng.normal(size=(len(TOKENS), WIDTH)) * [3, 2, 1, 0.5, 0.25] + 1.5).astype(
            np.float32
        )
        self.calls: list[list[int]] = []

    def embed_tokens(self, token_ids: Sequence[int]) -> np.ndarray:
        self.calls.append([int(i) for i in token_ids])
        return self.matrix[list(token_ids)]


def hand_table(
    teacher: ToyTeacher, dim: int, sif: float | None, embed: Sequence[int] = EMBED
) -> tuple[np.ndarray, float]:
    """Steps 1-4 of the module docstring in float64 numpy, written out by hand."""
    x = teacher.matrix[list(embed)].astype(np.float64)  # rank order
    centred = x - x.mean(0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    components = vt[:dim]
    # each component's largest-magnitude entry positive
    picked = components[np.arange(dim), np.abs(components).argmax(1)]
    components = components * np.where(picked < 0, -1.0, 1.0)[:, None]
    z = centred @ components.T
    z = z / np.sqrt((z**2).sum(1).mean())
    if sif is not None:
        n = len(embed)
        inv = np.array([1.0 / (r + 2) for r in range(n)])
        p = inv / inv.sum()
        z = z * (sif / (sif + p))[:, None]
    table = np.zeros((len(TOKENS), dim))
    for rank, token_id in enumerate(embed):
        table[token_id] = z[rank]
    explained = float((s[:dim] ** 2).sum() / (s**2).sum())
    return table, explained


@pytest.mark.parametrize("sif", [1e-4, 0.05])
def test_table_equals_the_hand_computation(tmp_path: Path, sif: float) -> None:
    teacher = ToyTeacher()
    table = token_table(vocabulary(), teacher, 3, sif=sif, root=tmp_path)
    expected, explained = hand_table(teacher, 3, sif)
    assert table.weights.dtype == torch.float32 and table.weights.shape == (8, 3)
    np.testing.assert_allclose(table.weights.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert table.explained_variance == pytest.approx(explained, rel=1e-9)
    assert 0 < table.explained_variance < 1
    for skipped in (0, 4):  # padding and the special token
        assert torch.equal(table.weights[skipped], torch.zeros(3))
    assert teacher.calls == [list(EMBED)]  # only the real tokens, in rank order
    assert (table.model_id, table.vocabulary, table.dim, table.sif) == (
        "toy/teacher@1",
        "toy-vocab",
        3,
        sif,
    )
    assert table.embedded == 6 and table.cached is False
    assert table.digest == vocabulary().digest
    report = table.report()
    assert "weights" not in report and report["path"] == table.path
    # the weighting shrinks the most frequent token most: rank 0 is id 2
    weights = np.linalg.norm(expected[list(EMBED)], axis=1) / np.linalg.norm(
        hand_table(teacher, 3, None)[0][list(EMBED)], axis=1
    )
    assert np.all(np.diff(weights) > 0)


def test_without_sif_rows_have_unit_rms_and_no_weighting(tmp_path: Path) -> None:
    teacher = ToyTeacher()
    table = token_table(vocabulary(), teacher, 4, sif=None, root=tmp_path)
    expected, _ = hand_table(teacher, 4, None)
    np.testing.assert_allclose(table.weights.numpy(), expected, rtol=1e-5, atol=1e-6)
    rows = table.weights.double().numpy()[list(EMBED)]
    assert np.sqrt((rows**2).sum(1).mean()) == pytest.approx(1.0, rel=1e-6)
    # and each column is centred (PCA of centred outputs)
    np.testing.assert_allclose(rows.mean(0), 0.0, atol=1e-6)
    # the weighted table is exactly this one times a / (a + p) per row
    weighted = token_table(vocabulary(), teacher, 4, sif=1e-4, root=tmp_path)
    inv = 1.0 / np.arange(2, 8)
    factor = 1e-4 / (1e-4 + inv / inv.sum())
    np.testing.assert_allclose(
        weighted.weights.numpy()[list(EMBED)], rows * factor[:, None], rtol=1e-5, atol=1e-7
    )
    assert len(teacher.calls) == 2  # sif keys the cache too


def test_scale_of_the_teacher_does_not_matter(tmp_path: Path) -> None:
    small, large = ToyTeacher("a"), ToyTeacher("b")
    large.matrix = large.matrix * 1000
    a = token_table(vocabulary(), small, 3, root=tmp_path)
    b = token_table(vocabulary(), large, 3, root=tmp_path)
    torch.testing.assert_close(a.weights, b.weights, rtol=1e-4, atol=1e-7)


def test_chunks_and_progress_bar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from contextlib import contextmanager

    monkeypatch.setattr(tk, "CHUNK", 4)
    events: list[Any] = []

    def bar(description: str, total: int):
        @contextmanager
        def stage():
            events.append((description, total))
            yield lambda status="": events.append("advance")

        return stage()

    teacher = ToyTeacher()
    table = token_table(vocabulary(), teacher, 3, root=tmp_path, bar=bar)
    assert teacher.calls == [[2, 1, 3, 7], [5, 6]]
    assert events == [("teacher tokens (toy-vocab)", 2), "advance", "advance"]
    np.testing.assert_allclose(table.weights.numpy(), hand_table(teacher, 3, 1e-4)[0], atol=1e-6)


def test_cache_reuse_and_what_invalidates_it(tmp_path: Path) -> None:
    teacher = ToyTeacher()
    first = token_table(vocabulary(), teacher, 3, root=tmp_path)
    assert not first.cached and Path(first.path).is_file()
    assert Path(first.path).parent == tmp_path and Path(first.path).suffix == ".safetensors"
    assert len(teacher.calls) == 1

    again = token_table(vocabulary(), teacher, 3, root=tmp_path)
    assert again.cached and len(teacher.calls) == 1  # read from the file, teacher not asked
    assert torch.equal(again.weights, first.weights)
    assert again.explained_variance == first.explained_variance
    assert again.path == first.path and again.embedded == 6

    wider = token_table(vocabulary(), teacher, 4, root=tmp_path)
    assert not wider.cached and len(teacher.calls) == 2 and wider.path != first.path

    renamed = vocabulary((*TOKENS[:3], "dog", *TOKENS[4:]))  # one token string differs
    assert renamed.digest != vocabulary().digest
    other_vocab = token_table(renamed, teacher, 3, root=tmp_path)
    assert not other_vocab.cached and len(teacher.calls) == 3
    assert other_vocab.path != first.path

    reranked = vocabulary(embed=(1, 2, 3, 7, 5, 6))  # same strings, another rank order
    assert not token_table(reranked, teacher, 3, root=tmp_path).cached
    assert len(teacher.calls) == 4

    other_teacher = ToyTeacher("toy/teacher@2")
    other = token_table(vocabulary(), other_teacher, 3, root=tmp_path)
    assert not other.cached and other_teacher.calls and other.path != first.path

    # every one of them is cached now
    assert token_table(vocabulary(), teacher, 4, root=tmp_path).cached
    assert token_table(renamed, teacher, 3, root=tmp_path).cached
    assert len(teacher.calls) == 4


def test_default_root_is_the_data_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDKD_DATA_DIR", str(tmp_path / "data"))
    table = token_table(vocabulary(), ToyTeacher(), 3)
    assert Path(table.path).parent == tmp_path / "data" / "token_knowledge"
    assert Path(table.path).is_file()


def test_a_corrupt_or_mismatched_cache_file_is_recomputed(tmp_path: Path) -> None:
    teacher = ToyTeacher()
    expected, _ = hand_table(teacher, 3, 1e-4)
    path = Path(token_table(vocabulary(), teacher, 3, root=tmp_path).path)
    data = path.read_bytes()

    path.write_bytes(data[: len(data) // 2])  # truncated
    table = token_table(vocabulary(), teacher, 3, root=tmp_path)
    assert not table.cached and len(teacher.calls) == 2
    np.testing.assert_allclose(table.weights.numpy(), expected, atol=1e-6)
    reread = token_table(vocabulary(), teacher, 3, root=tmp_path)  # rewritten whole
    assert reread.cached and torch.equal(reread.weights, table.weights)

    path.write_bytes(b"not a safetensors file")
    assert not token_table(vocabulary(), teacher, 3, root=tmp_path).cached
    assert len(teacher.calls) == 3

    # a readable file at the right path whose contents do not fit is not trusted either
    meta = {
        "model": teacher.model_id,
        "vocabulary": "toy-vocab",
        "digest": vocabulary().digest,
        "dim": "3",
        "sif": "0.0001",
        "explained_variance": "0.5",
    }
    for weights, metadata in (
        (torch.full((8, 3), float("nan")), meta),  # not finite
        (torch.zeros(8, 4), meta),  # another shape
        (torch.zeros(8, 3), {**meta, "model": "someone/else"}),  # another teacher's
    ):
        save_file({"weights": weights}, str(path), metadata=metadata)
        table = token_table(vocabulary(), teacher, 3, root=tmp_path)
        assert not table.cached
        np.testing.assert_allclose(table.weights.numpy(), expected, atol=1e-6)
    assert len(teacher.calls) == 6


def test_refusals(tmp_path: Path) -> None:
    teacher = ToyTeacher()
    # six outputs of width 5: at most 5 components
    with pytest.raises(ConfigError, match=r"table width 6 exceeds .* 6 token outputs of width 5"):
        token_table(vocabulary(), teacher, 6, root=tmp_path)
    assert not list(tmp_path.iterdir())
    with pytest.raises(ConfigError, match="no token to show the teacher"):
        token_table(vocabulary(embed=()), teacher, 3, root=tmp_path)

    class Wrong(ToyTeacher):
        def embed_tokens(self, token_ids: Sequence[int]) -> np.ndarray:
            return np.zeros((len(token_ids) - 1, WIDTH), dtype=np.float32)

    with pytest.raises(ConfigError, match=r"Wrong\.embed_tokens gave shape \[5, 5\] for 6"):
        token_table(vocabulary(), Wrong(), 3, root=tmp_path)


# --------------------------------------------------------------------------- stems


def _slots(vocabularies: Sequence[str | None], space: str = "toy.tokens") -> list[NetworkSlot]:
    return [
        NetworkSlot(
            name=f"toy_{i}",
            space=space,
            modality="text",
            task="t",
            num_classes=2,
            input_shape=(6,),
            input_dtype="int64",
            vocabulary=v,
        )
        for i, v in enumerate(vocabularies)
    ]


class _ToyTokenModule(nn.Module):
    vocabulary = "toy-vocab"

    def __init__(self, out_features: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(len(TOKENS), 3)
        self.proj = nn.Linear(3, out_features)
        self.root: Path | None = None

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.proj(self.embedding(ids).mean(1))

    def inject_teacher_tokens(self, bar=None) -> dict[str, Any]:
        table = token_table(vocabulary(), ToyTeacher(), 3, root=self.root, bar=bar)
        with torch.no_grad():
            self.embedding.weight.copy_(table.weights)
        return table.report()


class _ToyTokenStem(Architecture):
    """A token stem declaring the toy vocabulary."""

    name = "toy_tokens"
    modalities: ClassVar[tuple[str, ...]] = ("text",)

    def build_stem(self, input_shape: tuple[int, ...], out_features: int) -> nn.Module:
        return _ToyTokenModule(out_features)


class _ToyPlugin:
    @staticmethod
    @hookimpl
    def register_architectures(register) -> None:
        register(_ToyTokenStem)


def _spec(stem: str | None) -> StudentSpec:
    student: dict[str, Any] = {"trunk": {"name": "mlp", "params": {"width": 8, "depth": 1}}}
    if stem is not None:
        student["stems"] = {"text": {"name": stem}}
    return StudentSpec.model_validate(student)


def test_check_token_stems_refuses_a_network_without_one(host) -> None:
    network = build_network(_spec("mlp"), _slots([None]), host, "student", 0)
    with pytest.raises(ConfigError, match=r"teacher_tokens needs a student stem over token ids"):
        check_token_stems(network)
    with pytest.raises(ConfigError, match="this student has none"):
        inject_teacher_tokens(network)
    with pytest.raises(ConfigError, match="this student has none"):
        check_token_stems(nn.Linear(2, 2))  # not even a MultiDomainNet


def test_token_stems_are_injected_and_vocabularies_checked(tmp_path: Path) -> None:
    host = PluginHost(entry_points=False, plugins=[("toy", _ToyPlugin)])
    spec = _spec("toy_tokens")
    network = build_network(spec, _slots(["toy-vocab", "toy-vocab"]), host, "student", 0)
    (stem,) = network.stems.values()
    assert isinstance(stem, TokenKnowledgeStem)
    stem.root = tmp_path
    check_token_stems(network)
    reports = inject_teacher_tokens(network)
    assert list(reports) == list(network.stems) and reports[next(iter(reports))]["dim"] == 3
    np.testing.assert_allclose(
        stem.embedding.weight.detach().numpy(), hand_table(ToyTeacher(), 3, 1e-4)[0], atol=1e-6
    )
    # a slot with no vocabulary (not a token view) is not checked
    build_network(spec, _slots([None]), host, "student", 0)
    with pytest.raises(DataError, match=r"toy_tokens reads token ids of vocabulary 'toy-vocab'"):
        build_network(spec, _slots(["other-vocab"]), host, "student", 0)
    with pytest.raises(DataError, match=r"differ in their student token vocabulary"):
        build_network(spec, _slots(["toy-vocab", "other-vocab"]), host, "student", 0)


def test_config_and_pipeline_refusals(tiny_config, host, tmp_path: Path) -> None:
    tiny_config["student"]["weight_init"] = "teacher_tokens"
    assert load_config(tiny_config, host=host).student.weight_init == "teacher_tokens"
    bad = {**tiny_config, "student": {**tiny_config["student"], "weight_init_layers": ["x"]}}
    with pytest.raises(ConfigError, match=r"student\.weight_init_layers: applies to"):
        load_config(bad, host=host)
    # tabular students have no token stem: refused before the teacher trains
    with pytest.raises(ConfigError, match="teacher_tokens needs a student stem"):
        run_pipeline(tiny_config, output=tmp_path, host=host)
    assert not list(tmp_path.glob("*/teacher.safetensors"))
