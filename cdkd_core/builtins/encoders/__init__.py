"""Built-in knowledge encoders: PCA, a supervised linear projection and a spectral graph.

All three are fitted on the train-split teacher trunk features of every domain at once
(concatenated in sorted domain order), are deterministic, compute in float64 and return
float32 knowledge vectors. Label spaces of different domains are kept apart by indexing
classes as ``(domain, class)`` pairs named ``"domain:class"``.
"""

from __future__ import annotations

from cdkd_core.builtins.encoders.graph import GraphEncoder
from cdkd_core.builtins.encoders.linear import LinearEncoder
from cdkd_core.builtins.encoders.pca import PCAEncoder
from cdkd_core.host.hookspecs import Register, hookimpl

__all__ = ["GraphEncoder", "LinearEncoder", "PCAEncoder", "register_encoders"]


@hookimpl
def register_encoders(register: Register) -> None:
    """The core's own encoders of vectors (the ``knowledge_graph`` feature registers its own)."""
    register(PCAEncoder)
    register(LinearEncoder)
    register(GraphEncoder)
