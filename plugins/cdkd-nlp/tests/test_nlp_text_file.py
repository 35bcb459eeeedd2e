"""nlp.text_file: CSV / TSV / JSON Lines loaders and their errors (file and line named)."""

from __future__ import annotations

import json

import pytest
import torch
from cdkd_nlp.text_file import TextFile, read_text_file

from cdkd_core.plugin_api import DataError

POSITIVE = ["great fun", "loved it", "wonderful acting", "a joy to watch", "brilliant plot"]
NEGATIVE = ["dull and slow", "hated it", "awful script", "a waste of time", "boring mess"]


def _records() -> list[tuple[str, str]]:
    return [(t, "pos") for t in POSITIVE] + [(t, "neg") for t in NEGATIVE]


def write_csv(path, rows, header="text,label"):
    lines = [header] + [f'"{t}",{lab}' for t, lab in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_jsonl(path, rows, text="text", label="label"):
    path.write_text(
        "".join(
            json.dumps({text: t, label: lab, "id": i}) + "\n" for i, (t, lab) in enumerate(rows)
        ),
        encoding="utf-8",
    )
    return path


def _load(**params):
    return TextFile.from_params(params).load(seed=0)


def test_csv_and_jsonl_give_the_same_domain(tmp_path, fake_embedder):
    rows = _records()
    a = _load(path=write_csv(tmp_path / "reviews.csv", rows))
    b = _load(
        path=write_jsonl(tmp_path / "reviews.jsonl", rows, "body", "stars"),
        text="body",
        label="stars",
    )
    for data in (a, b):
        assert data.classes == ["neg", "pos"]
        assert data.input_space == "nlp.text" and data.modality == "text"
        assert sum(len(s) for s in data.splits.values()) == 10
        assert all(set(s.y.tolist()) == {0, 1} for s in data.splits.values())
    assert torch.equal(a.splits["test"].student_x, b.splits["test"].student_x)
    assert a.task != b.task  # one head per file unless the config says otherwise
    assert a.task.startswith("nlp.text_file.reviews.")
    c = _load(path=tmp_path / "reviews.csv", task="sentiment", input_space="mine")
    assert (c.task, c.input_space) == ("sentiment", "mine")


def test_tsv_quoted_multiline_and_duplicates(tmp_path, fake_embedder):
    path = tmp_path / "notes.tsv"
    rows = [f"{t}\t{lab}" for t, lab in _records()]
    rows += ["GREAT   fun\tneg", '"line one\nline two"\tneg']  # a duplicate (kept: pos) + 1
    path.write_text("text\tlabel\n" + "\n".join(rows) + "\n")
    texts, labels, lines = read_text_file(path)
    assert labels[-2:] == ["neg", "neg"]
    assert len(texts) == 12 and texts[-1] == "line one line two" and lines[-1] == 13
    data = _load(path=path)
    assert sum(len(s) for s in data.splits.values()) == 11  # the duplicate merged
    assert fake_embedder.calls == [11]


@pytest.mark.parametrize(
    ("name", "content", "params", "message"),
    [
        (
            "a.csv",
            "body,label\nhi,pos\n",
            {},
            r"a.csv: no text column 'text'; columns are \['body', 'label'\]",
        ),
        ("a.csv", "text,lab\nhi,pos\n", {}, "a.csv: no label column 'label'"),
        ("a.csv", "text,label\nhi,pos\n  ,neg\n", {}, r"a.csv, line 3: empty text in 'text'"),
        ("a.csv", "text,label\nhi,pos\nho,\n", {}, r"a.csv, line 3: empty label in 'label'"),
        (
            "a.csv",
            "text,label\nhi,pos\nho,neg,extra\n",
            {},
            r"a.csv, line 3: 3 field\(s\) where the header has 2",
        ),
        ("a.csv", "", {}, "a.csv: the file is empty"),
        (
            "a.jsonl",
            '{"text": "hi", "label": 1}\n{"text": "ho", "label": 0\n',
            {},
            r"a.jsonl, line 2: invalid JSON",
        ),
        (
            "a.jsonl",
            '{"text": "hi", "label": 1}\n\n[1, 2]\n',
            {},
            r"a.jsonl, line 3: expected a JSON object, got list",
        ),
        (
            "a.jsonl",
            '{"txt": "hi", "label": 1}\n',
            {},
            r"a.jsonl, line 1: no text key 'text'; keys are \['label', 'txt'\]",
        ),
        ("a.jsonl", '{"text": 5, "label": 1}\n', {}, r"a.jsonl, line 1: 'text' must be a string"),
        (
            "a.jsonl",
            '{"text": "x", "label": null}\n',
            {},
            r"a.jsonl, line 1: label 'label' must be a string or number",
        ),
        ("a.txt", "text,label\n", {}, r"a.txt: cannot tell the format from the suffix '.txt'"),
    ],
)
def test_errors_name_the_file_and_line(tmp_path, name, content, params, message):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        TextFile.from_params({"path": path, **params}).load(seed=0)


def test_invalid_utf8_and_missing_file(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes(b"text,label\nok,pos\ncaf\xe9 au lait,neg\n")
    with pytest.raises(DataError, match=r"latin.csv, line 3: not valid UTF-8 \(byte 0xe9\)"):
        read_text_file(path)
    with pytest.raises(DataError, match=r"nowhere.jsonl: no such file"):
        read_text_file(tmp_path / "nowhere.jsonl")


def test_class_checks(tmp_path, fake_embedder):
    one = write_csv(tmp_path / "one.csv", [(t, "pos") for t in POSITIVE])
    with pytest.raises(DataError, match="every record has the label 'pos'"):
        _load(path=one)
    rows = [(t, "pos") for t in POSITIVE] + [("meh", "neutral"), ("ok", "neutral")]
    few = write_csv(tmp_path / "few.csv", rows)
    with pytest.raises(DataError, match=r"few.csv, line 7: label 'neutral' has 2 example\(s\)"):
        _load(path=few)
    assert fake_embedder.calls == []  # refused before embedding anything


def test_label_spellings_follow_the_core_rule(tmp_path, fake_embedder):
    numbers = [(t, "1") for t in POSITIVE[:3]] + [(t, "1.0") for t in POSITIVE[3:]]
    numbers += [(t, "0") for t in NEGATIVE]
    data = _load(path=write_csv(tmp_path / "n.csv", numbers))
    assert data.classes == ["0", "1"]  # 1 and 1.0 are one class
    cased = [(t, "Pos") for t in POSITIVE[:2]] + [(t, "pos") for t in POSITIVE[2:]]
    cased += [(t, "neg") for t in NEGATIVE]
    path = write_csv(tmp_path / "c.csv", cased)
    with pytest.raises(DataError) as info:
        _load(path=path)
    assert f"{path}, column 'label'" in str(info.value)
    assert "['Pos', 'pos']" in str(info.value) and "classes:" in str(info.value)
    fixed = _load(path=path, classes=["pos", "neg"])
    assert fixed.classes == ["pos", "neg"]
    assert sum(int((s.y == 0).sum()) for s in fixed.splits.values()) == 5


def test_a_label_outside_classes_names_the_line(tmp_path, fake_embedder):
    rows = _records()
    rows[3] = (rows[3][0], "meh")  # line 5
    path = write_csv(tmp_path / "r.csv", rows)
    with pytest.raises(DataError, match=r"r\.csv, line 5, column 'label': label 'meh' is not one"):
        _load(path=path, classes=["neg", "pos"])


def test_a_directory_is_named_as_such(tmp_path):
    folder = tmp_path / "texts.csv"
    folder.mkdir()
    with pytest.raises(DataError, match="is a directory, not a file"):
        read_text_file(folder)


def test_a_text_over_the_csv_module_default_field_limit_reads_as_in_json_lines(tmp_path):
    """A 200,000-character text (over csv's default 131,072) reads from a CSV as from JSON
    Lines, through the domain's reader and the core's raw-input reader alike."""
    from cdkd_core.plugin_api import InputOptions, TextReader

    long = ("a long review " * 15_000)[:200_000]
    rows = [*_records(), (long, "pos")]
    csv_texts, csv_labels, _ = read_text_file(write_csv(tmp_path / "long.csv", rows))
    jsonl = read_text_file(write_jsonl(tmp_path / "long.jsonl", rows))
    assert (csv_texts, csv_labels) == (jsonl[0], jsonl[1])
    assert len(csv_texts[-1]) == len(long.strip())

    def lengths(texts, teacher):
        return torch.tensor([[float(len(t))] for t in texts]), None

    (batch,) = TextReader(lengths).batches(tmp_path / "long.csv", InputOptions(), 64)
    assert batch.student_x[-1].item() == 200_000
