"""The benchmark settings: real domains of the three plugins, as cdkd configs.

Every setting is a plain config mapping; the suites vary its encoder, losses, feedback or
label fractions. ``quick`` shrinks epochs and domain sizes so that ``--quick`` ends in
minutes; the full settings are the plugins' own example sizes or the whole dataset.
"""

from __future__ import annotations

import copy
from typing import Any

CE = {"name": "ce", "weight": 1.0}
KD = {"name": "kd", "weight": 1.0, "params": {"temperature": 4.0}}
HINT = {"name": "hint", "weight": 0.5}
GRAPH = {"name": "graph", "weight": 0.5}


def _train(epochs: int, quick: bool, batch_size: int = 64) -> dict[str, Any]:
    return {
        "epochs": max(2, epochs // 4) if quick else epochs,
        "batch_size": batch_size,
        "lr": 0.003,
        "device": "cpu",
        "threads": 1,
    }


def _cap(n: int | None, quick: bool, quick_n: int) -> dict[str, Any]:
    cap = quick_n if quick else n
    return {} if cap is None else {"max_examples": cap}


def medical(quick: bool = False) -> dict[str, Any]:
    """Nuclei patches (image) and FNA measurements (tabular), both sources."""
    return {
        "name": "bench-medical",
        "domains": [
            {"name": "medical.nuclei", "role": "source", "params": _cap(None, quick, 600)},
            {"name": "medical.breast_cancer_fna", "role": "source"},
        ],
        "teacher": {
            "trunk": {"name": "mlp", "params": {"width": 128, "depth": 2}},
            "stems": {"image": {"name": "resnet", "params": {"width": 16, "layers": [1, 1, 1]}}},
        },
        "student": {
            "trunk": {"name": "mlp", "params": {"width": 32, "depth": 1}},
            "stems": {"image": {"name": "cnn", "params": {"channels": 8, "blocks": 2}}},
        },
        "encoder": {"name": "pca", "params": {"dim": 16}},
        "losses": [CE, KD, HINT],
        "train": _train(8, quick),
    }


def finance(quick: bool = False) -> dict[str, Any]:
    """Three credit tables in their own schemas and the S&P 500 direction, all sources."""
    return {
        "name": "bench-finance",
        "domains": [
            {"name": "finance.credit_data", "role": "source"},
            {"name": "finance.german_credit", "role": "source"},
            {"name": "finance.default", "role": "source", "params": _cap(None, quick, 2000)},
            {"name": "finance.sp500", "role": "source"},
        ],
        "teacher": {
            "trunk": {"name": "mlp", "params": {"width": 128, "depth": 2}},
            "stems": {"series": {"name": "gru", "params": {"hidden": 32}}},
        },
        "student": {
            "trunk": {"name": "mlp", "params": {"width": 32, "depth": 1}},
            "stems": {"series": {"name": "tcn", "params": {"channels": 8, "blocks": 2}}},
        },
        "encoder": {"name": "pca", "params": {"dim": 16}},
        "losses": [CE, KD, HINT],
        "train": _train(20, quick, batch_size=128),
    }


#: The student view of the older text settings (sections 1-7 of the report): hashed word
#: n-grams for the ``embedding_bag`` student, as they were measured. The text suite uses the
#: nlp plugin's default view (the teacher's own tokens).
HASHED = {"tokenizer": "hashed"}


def nlp(quick: bool = False, tokenizer: str = "hashed") -> dict[str, Any]:
    """The four VADER sentiment domains and BBC News topics, all sources (text); the
    students read ``tokenizer`` ids."""
    cap = {**_cap(None, quick, 500), "tokenizer": tokenizer}
    return {
        "name": "bench-nlp",
        "domains": [
            {"name": f"nlp.sentiment_{d}", "role": "source", "params": cap}
            for d in ("tweets", "movies", "amazon", "nyt")
        ]
        + [{"name": "nlp.bbc_news", "role": "source", "params": cap}],
        "teacher": {"trunk": {"name": "mlp", "params": {"width": 256, "depth": 2, "dropout": 0.1}}},
        "student": {
            "trunk": {"name": "mlp", "params": {"width": 64, "depth": 1}},
            "stems": {"text": {"name": "embedding_bag", "params": {"dim": 48}}},
        },
        "encoder": {"name": "pca", "params": {"dim": 32}},
        "losses": [CE, KD, HINT],
        "train": _train(10, quick),
    }


def multilingual(quick: bool = False, tokenizer: str = "hashed") -> dict[str, Any]:
    """ChatterBot topics in five languages (multilingual USE teacher view), all sources."""
    langs = {  # language: (ISO code, examples)
        "english": ("en", 600),
        "italian": ("it", 500),
        "japanese": ("ja", 500),
        "spanish": ("es", 400),
        "chinese": ("zh", 400),
    }
    return {
        "name": "bench-multilingual",
        "domains": [
            {
                "name": "nlp.chatterbot",
                "alias": f"chat_{code}",
                "role": "source",
                "params": {
                    "languages": [lang],
                    "max_examples": min(n, 200) if quick else n,
                    "tokenizer": tokenizer,
                },
            }
            for lang, (code, n) in langs.items()
        ],
        "teacher": {
            "trunk": {"name": "mlp", "params": {"width": 128, "depth": 1, "dropout": 0.1}},
            "stems": {"text": {"name": "minilm"}},
        },
        "student": {
            "trunk": {"name": "mlp", "params": {"width": 64, "depth": 1}},
            "stems": {"text": {"name": "embedding_bag", "params": {"dim": 48}}},
        },
        "encoder": {"name": "pca", "params": {"dim": 16}},
        "losses": [CE, KD, HINT],
        "train": _train(15, quick),
    }


QUALITY_SETTINGS = {
    "medical": medical,
    "finance": finance,
    "nlp": nlp,
    "multilingual": multilingual,
}


def student_variants(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The student variants of the quality table, as config overrides: logit KD only, and
    KD plus feature alignment through each encoder (same dimension)."""
    dim = config["encoder"]["params"]["dim"]
    return {
        "kd": {"losses": [CE, KD]},
        "pca": {"encoder": {"name": "pca", "params": {"dim": dim}}, "losses": [CE, KD, HINT]},
        "linear": {
            "encoder": {"name": "linear", "params": {"dim": dim}},
            "losses": [CE, KD, HINT],
        },
        "graph": {
            "encoder": {"name": "graph", "params": {"dim": dim}},
            "losses": [CE, KD, GRAPH],
        },
    }


def finance_transfer(fraction: float | None, quick: bool = False) -> dict[str, Any]:
    """Teacher on two credit schemas through the common space; Default a target with
    ``fraction`` of its labels, or unseen (``None``)."""
    target = {"name": "finance.default", "params": {"schema": "common", **_cap(None, quick, 2000)}}
    target.update(
        {"role": "unseen"} if fraction is None else {"role": "target", "label_fraction": fraction}
    )
    return {
        "name": "bench-finance-transfer",
        "domains": [
            {"name": "finance.credit_data", "role": "source", "params": {"schema": "common"}},
            {"name": "finance.german_credit", "role": "source", "params": {"schema": "common"}},
            target,
        ],
        "teacher": {"trunk": {"name": "mlp", "params": {"width": 128, "depth": 2}}},
        "student": {"trunk": {"name": "mlp", "params": {"width": 32, "depth": 1}}},
        "encoder": {"name": "pca", "params": {"dim": 16}},
        "losses": [CE, KD, HINT],
        "train": _train(20, quick, batch_size=128),
    }


def nlp_transfer(fraction: float | None, quick: bool = False) -> dict[str, Any]:
    """Teacher on tweets, movies and Amazon reviews; NYT editorials a target with
    ``fraction`` of its labels, or unseen (``None``)."""
    cap = {**_cap(None, quick, 500), **HASHED}
    target = {"name": "nlp.sentiment_nyt", "params": cap}
    target.update(
        {"role": "unseen"} if fraction is None else {"role": "target", "label_fraction": fraction}
    )
    config = nlp(quick)
    config["name"] = "bench-nlp-transfer"
    config["domains"] = [
        {"name": f"nlp.sentiment_{d}", "role": "source", "params": cap}
        for d in ("tweets", "movies", "amazon")
    ] + [target]
    return config


TRANSFER_SETTINGS = {"finance": finance_transfer, "nlp": nlp_transfer}


def feedback_setting(quick: bool = False) -> dict[str, Any]:
    """The feedback study: two credit tables in the common schema, Default a 5% target."""
    config = finance_transfer(0.05, quick)
    config["name"] = "bench-feedback"
    return config


def peer_setting(quick: bool = False) -> dict[str, Any]:
    """One domain, one teacher, one student: the torchdistill comparison (nuclei images)."""
    config = copy.deepcopy(medical(quick))
    config["name"] = "bench-peer"
    config["domains"] = config["domains"][:1]
    config["losses"] = [
        {"name": "ce", "weight": 0.5},
        {"name": "kd", "weight": 0.5, "params": {"temperature": 4.0}},
    ]
    return config


#: The text student of the text suite: the teacher tokenizer's ids, a static token table
#: that starts from the teacher's tokens (``teacher_tokens``), mean pooling, a small MLP.
def text_student(dim: int = 64) -> dict[str, Any]:
    """The nlp plugin's default student with its table injected from the teacher."""
    return {
        "trunk": {"name": "mlp", "params": {"width": 64, "depth": 1}},
        "stems": {"text": {"name": "static_embedding", "params": {"dim": dim}}},
        "weight_init": "teacher_tokens",
    }


def _text_train(epochs: int, quick: bool, lr: float = 0.001) -> dict[str, Any]:
    # the student's lr and epochs were chosen on the val split (benchmarks/notes.md)
    return {**_train(epochs, quick), "lr": lr, "teacher_lr": 0.003}


SENTIMENT = ("tweets", "movies", "amazon", "nyt")


def text_indomain(quick: bool = False) -> dict[str, Any]:
    """The four VADER sentiment domains and BBC News, all sources, the injected student."""
    config = nlp(quick, tokenizer="teacher")
    config["name"] = "bench-text"
    config["student"] = text_student()
    config["train"] = _text_train(10, quick)
    return config


def text_lodo(held_out: str, role: str, quick: bool = False) -> dict[str, Any]:
    """Leave one sentiment domain out: the other three are sources; ``held_out`` is a
    target with unlabelled text (``label_fraction: 0``) or ``unseen``."""
    cap = _cap(None, quick, 500)
    target: dict[str, Any] = {"name": f"nlp.sentiment_{held_out}", "role": role, "params": cap}
    if role == "target":
        target["label_fraction"] = 0.0
    config = text_indomain(quick)  # default tokenizer (teacher) on every domain
    config["name"] = f"bench-text-lodo-{held_out}"
    config["domains"] = [
        {"name": f"nlp.sentiment_{d}", "role": "source", "params": cap}
        for d in SENTIMENT
        if d != held_out
    ] + [target]
    return config


def text_multilingual(quick: bool = False) -> dict[str, Any]:
    """ChatterBot topics in five languages; the student reads USE's SentencePiece ids and
    its table starts from USE's outputs for each piece (48-d: 128,001 pieces, 6.2M
    parameters, 9% of the teacher with USE counted)."""
    config = multilingual(quick, tokenizer="teacher")
    config["name"] = "bench-text-multilingual"
    config["student"] = text_student(dim=48)
    config["train"] = _text_train(30, quick, lr=0.003)
    return config
