"""The installed entry point registers every component; defaults pick the text stems."""

from __future__ import annotations

import cdkd_nlp

from cdkd_core import PluginHost
from cdkd_core.testing import stem_architecture

DOMAINS = {
    "nlp.sentiment_tweets",
    "nlp.sentiment_movies",
    "nlp.sentiment_amazon",
    "nlp.sentiment_nyt",
    "nlp.bbc_news",
    "nlp.text_file",
    "nlp.chatterbot",
}


def test_entry_point_registers_every_component():
    host = PluginHost()  # installed entry points, as `cdkd plugins list` sees them
    info = host.plugins["nlp"]
    assert info.ok, info.errors
    assert info.version == "0.1.0"
    assert set(info.components["domains"]) == DOMAINS
    assert set(info.components["architectures"]) == {"minilm", "static_embedding", "embedding_bag"}
    for name in DOMAINS:
        assert host.components("domains")[name].plugin == "nlp"


def test_default_text_stems_per_side():
    host = PluginHost(entry_points=False, plugins=[("nlp", cdkd_nlp)])
    spec = {"trunk": {"name": "mlp"}}
    assert stem_architecture(spec, "text", host, "teacher").name == "minilm"
    assert stem_architecture(spec, "text", host, "student").name == "static_embedding"


def test_every_component_documents_itself():
    for cls in (*cdkd_nlp.DOMAINS, *cdkd_nlp.ARCHITECTURES):
        assert cls.summary(), cls
