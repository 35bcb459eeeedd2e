"""The built-in knowledge encoders, checked against hand computations on small tensors."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pydantic
import pytest
import torch

from cdkd_core.builtins.encoders import (
    GraphEncoder,
    LinearEncoder,
    PCAEncoder,
)
from cdkd_core.builtins.knowledge_graph import KnowledgeGraphEncoder
from cdkd_core.components.encoder import KnowledgeEncoder
from cdkd_core.host.builtins import kind_plugin

torch.set_num_threads(1)

#: the built-in plugin ``cdkd.encoders``'s hook: every built-in feature's encoders
register_encoders = kind_plugin("encoders").register_encoders


# --------------------------------------------------------------------------- helpers


def _data(
    seed: int = 0, sizes: tuple[int, int] = (24, 18), width: int = 5
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Two domains with different label spaces (3 and 2 classes), shifted and scaled."""
    g = torch.Generator().manual_seed(seed)
    scales = torch.linspace(0.5, 3.0, width)
    feats = {
        "beta": torch.randn(sizes[1], width, generator=g) * scales + 1.0,
        "alpha": torch.randn(sizes[0], width, generator=g) * scales.flip(0) - 0.5,
    }
    labels = {
        "alpha": torch.arange(sizes[0]) % 3,
        "beta": torch.arange(sizes[1]) % 2,
    }
    return feats, labels


def _pooled(feats: dict[str, torch.Tensor]) -> np.ndarray:
    """Features concatenated in sorted domain order, float64."""
    return torch.cat([feats[d] for d in sorted(feats)]).double().numpy()


def _onehot(labels: dict[str, torch.Tensor]) -> np.ndarray:
    """One-hot over (domain, class) pairs in sorted order."""
    cols, blocks, offset = [], [], 0
    for d in sorted(labels):
        y = labels[d].numpy()
        classes = np.unique(y)
        blocks.append((np.searchsorted(classes, y) + offset, len(y)))
        cols.extend(f"{d}:{c}" for c in classes)
        offset += len(classes)
    out = np.zeros((sum(n for _, n in blocks), len(cols)))
    row = 0
    for idx, n in blocks:
        out[np.arange(row, row + n), idx] = 1.0
        row += n
    return out


def _sign_fix_cols(m: np.ndarray) -> np.ndarray:
    """Flip columns so that each one's largest-magnitude entry is positive."""
    rows = np.abs(m).argmax(axis=0)
    return m * np.where(m[rows, np.arange(m.shape[1])] < 0, -1.0, 1.0)


def _assert_sign_rule(cols: np.ndarray) -> None:
    rows = np.abs(cols).argmax(axis=0)
    assert (cols[rows, np.arange(cols.shape[1])] > 0).all()


def _assert_equal_up_to_column_sign(a: np.ndarray, b: np.ndarray, atol: float) -> None:
    signs = np.sign((a * b).sum(axis=0))
    assert (signs != 0).all()
    np.testing.assert_allclose(a, b * signs, atol=atol)


def _gaussian_clusters(
    n: int = 10, seed: int = 3, gap: float = 10.0
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """One domain, two tight classes far apart along the first axis."""
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n, 4, generator=g) * 0.3
    x1 = torch.randn(n, 4, generator=g) * 0.3
    x1[:, 0] += gap
    return {"d": torch.cat([x0, x1])}, {"d": torch.cat([torch.zeros(n), torch.ones(n)]).long()}


# --------------------------------------------------------------------------- pca


def test_pca_matches_numpy_svd_and_sign_rule() -> None:
    feats, labels = _data()
    enc = PCAEncoder.from_params({"dim": 3})
    enc.fit(feats, labels)
    x = _pooled(feats)
    xc = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    comps = _sign_fix_cols(vt[:3].T).T  # rows are components
    tensors, meta = enc.state()
    np.testing.assert_allclose(tensors["components"].numpy(), comps, atol=1e-10)
    _assert_sign_rule(tensors["components"].numpy().T)
    np.testing.assert_allclose(tensors["mean"].numpy(), x.mean(axis=0), atol=1e-12)
    # orthonormal components
    c = tensors["components"].numpy()
    np.testing.assert_allclose(c @ c.T, np.eye(3), atol=1e-10)
    # explained variance and its ratio
    ev = s**2 / (x.shape[0] - 1)
    np.testing.assert_allclose(tensors["explained_variance"].numpy(), ev[:3], rtol=1e-10)
    np.testing.assert_allclose(meta["explained_variance_ratio"], ev[:3] / ev.sum(), rtol=1e-10)
    assert enc.explained_variance_ratio == meta["explained_variance_ratio"]
    # transform, per domain and for an unseen domain name
    z = enc.transform(torch.from_numpy(x).float(), "never-seen")
    assert z.dtype == torch.float32 and z.shape == (x.shape[0], 3)
    np.testing.assert_allclose(z.numpy(), xc @ comps.T, atol=1e-4)
    za = enc.transform(feats["alpha"], "alpha")
    np.testing.assert_allclose(za.numpy(), z[: feats["alpha"].shape[0]].numpy(), atol=1e-5)


def test_pca_caps_dim_and_says_so() -> None:
    feats, labels = _data(width=4)
    enc = PCAEncoder.from_params({"dim": 10})
    assert enc.dim == 10
    n = sum(len(f) for f in feats.values())
    with pytest.warns(
        UserWarning, match=rf"dim 10 asked.*\({n} training examples x 4 features\).*using dim 4"
    ):
        enc.fit(feats, labels)
    assert enc.dim == 4
    assert enc.transform(feats["beta"], "beta").shape == (feats["beta"].shape[0], 4)
    few = {"a": feats["alpha"][:2], "b": feats["beta"][:1]}
    few_labels = {"a": labels["alpha"][:2], "b": labels["beta"][:1]}
    with pytest.warns(UserWarning, match=r"\(3 training examples x 4 features\).*using dim 3"):
        enc.fit(few, few_labels)
    assert enc.dim == 3


def test_pca_within_the_data_fits_without_a_warning() -> None:
    feats, labels = _data(width=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        PCAEncoder.from_params({"dim": 4}).fit(feats, labels)


def test_pca_whiten_gives_unit_variance() -> None:
    feats, labels = _data()
    enc = PCAEncoder.from_params({"dim": 4, "whiten": True})
    enc.fit(feats, labels)
    z = enc.transform(torch.from_numpy(_pooled(feats)), "alpha").double().numpy()
    np.testing.assert_allclose(z.var(axis=0, ddof=1), np.ones(4), rtol=1e-5)
    np.testing.assert_allclose(z.mean(axis=0), np.zeros(4), atol=1e-5)


# --------------------------------------------------------------------------- incremental pca


def _well_separated(
    n: int = 600, f: int = 8, seed: int = 0
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Two domains of rotated Gaussian data, variances 100, 25, 4 and then tiny ones."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(f, f, generator=g, dtype=torch.float64))
    scales = torch.tensor([10.0, 5.0, 2.0] + [0.05] * (f - 3), dtype=torch.float64)
    x = (torch.randn(n, f, generator=g, dtype=torch.float64) * scales) @ q.T + torch.arange(f)
    feats = {"b": x[:250].float(), "a": x[250:].float()}
    labels = {"b": torch.zeros(250, dtype=torch.long), "a": torch.arange(n - 250) % 2}
    return feats, labels


def test_incremental_pca_agrees_with_the_exact_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    import cdkd_core.builtins.encoders.pca as encoders

    feats, labels = _well_separated()
    exact = PCAEncoder.from_params({"dim": 3, "incremental_above": None})
    exact.fit(feats, labels)

    def no_stack(*args: Any) -> None:
        raise AssertionError("the incremental fit must not pool the features in RAM")

    monkeypatch.setattr(encoders, "stack_pooled", no_stack)
    inc = PCAEncoder.from_params({"dim": 3, "incremental_above": 599, "incremental_batch": 64})
    inc.fit(feats, labels)  # 600 rows > 599: incremental, 9 chunks spanning both domains
    (te, me), (ti, mi) = exact.state(), inc.state()
    assert set(te) == set(ti) and set(me) == set(mi) and mi["dim"] == 3
    torch.testing.assert_close(ti["mean"], te["mean"], rtol=0, atol=1e-12)
    torch.testing.assert_close(ti["components"], te["components"], rtol=0, atol=1e-5)
    _assert_sign_rule(ti["components"].numpy().T)
    torch.testing.assert_close(
        ti["explained_variance"], te["explained_variance"], rtol=1e-6, atol=0
    )
    np.testing.assert_allclose(
        mi["explained_variance_ratio"], me["explained_variance_ratio"], rtol=1e-6
    )
    for d in feats:
        torch.testing.assert_close(
            inc.transform(feats[d], d), exact.transform(feats[d], d), atol=1e-4, rtol=0
        )


def test_incremental_pca_on_a_line_matches_hand_computation() -> None:
    # x = m + t u with u = (0.6, 0.8): one direction holds all the variance
    t = torch.tensor([-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0])
    x = torch.tensor([1.0, 2.0]) + t.unsqueeze(1) * torch.tensor([0.6, 0.8])
    feats, labels = (
        {"a": x[:4], "b": x[4:]},
        {"a": torch.zeros(4).long(), "b": torch.ones(3).long()},
    )
    enc = PCAEncoder.from_params({"dim": 1, "incremental_above": 1, "incremental_batch": 3})
    enc.fit(feats, labels)  # chunks of 3, 3 and 1 rows
    tensors, meta = enc.state()
    torch.testing.assert_close(tensors["mean"], torch.tensor([1.0, 2.0]).double())
    torch.testing.assert_close(tensors["components"], torch.tensor([[0.6, 0.8]]).double())
    # variance of t with n - 1: (9 + 4 + 1 + 0 + 1 + 4 + 9) / 6
    torch.testing.assert_close(tensors["explained_variance"], torch.tensor([28 / 6]).double())
    assert meta["explained_variance_ratio"] == pytest.approx([1.0])
    z = torch.cat([enc.transform(feats["a"], "a"), enc.transform(feats["b"], "b")])
    torch.testing.assert_close(z.squeeze(1), t, atol=1e-6, rtol=0)


def test_pooled_chunks_span_domains_and_merge_a_short_tail() -> None:
    from cdkd_core.builtins.encoders.fitting import pooled_chunks as _pooled_chunks

    feats = {"b": torch.arange(8.0).reshape(4, 2) + 100, "a": torch.arange(10.0).reshape(5, 2)}
    chunks = list(_pooled_chunks(feats, rows=4, min_rows=2))
    assert [len(c) for c in chunks] == [4, 5]  # 4, 4, 1 -> the last row joins the second
    assert all(c.dtype == np.float64 for c in chunks)
    np.testing.assert_array_equal(np.concatenate(chunks), _pooled(feats))


@pytest.mark.parametrize(
    ("cls", "params"),
    [
        (PCAEncoder, {"dim": 3, "whiten": True}),
        (LinearEncoder, {"dim": 2}),
        (GraphEncoder, {"dim": 2}),
    ],
    ids=["pca", "linear", "graph"],
)
def test_transform_in_chunks_equals_the_whole(
    cls: type[KnowledgeEncoder], params: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from cdkd_core.data import scratch

    feats, labels = _data()
    enc = cls.from_params(params)
    enc.fit(feats, labels)
    whole = enc.transform(feats["alpha"], "alpha")
    monkeypatch.setattr(scratch, "CHUNK_BYTES", 3 * 5 * 8)  # chunks of 3 rows
    chunked = enc.transform(feats["alpha"], "alpha")
    assert chunked.dtype == torch.float32 and chunked.shape == whole.shape
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-6)


# --------------------------------------------------------------------------- linear


def _standardise(a: np.ndarray) -> np.ndarray:
    std = a.std(axis=0, ddof=1)
    std[std == 0] = 1.0
    return (a - a.mean(axis=0)) / std


def test_pls_first_weight_is_dominant_singular_vector() -> None:
    feats, labels = _data(seed=1)
    enc = LinearEncoder.from_params({"method": "pls", "dim": 3})
    enc.fit(feats, labels)
    assert enc.pair_names == ["alpha:0", "alpha:1", "alpha:2", "beta:0", "beta:1"]
    x, y = _pooled(feats), _onehot(labels)
    xs, ys = _standardise(x), _standardise(y)
    u, _, _ = np.linalg.svd(xs.T @ ys)
    tensors, _ = enc.state()
    np.testing.assert_allclose(tensors["mean"].numpy(), x.mean(axis=0), atol=1e-12)
    np.testing.assert_allclose(tensors["std"].numpy(), x.std(axis=0, ddof=1), rtol=1e-12)
    # first rotation column == first x-weight (p1' w1 = 1 and P'W is unit upper triangular)
    r0 = tensors["projection"][:, 0].numpy()
    _assert_equal_up_to_column_sign(r0[:, None], u[:, :1], atol=1e-6)
    z = enc.transform(torch.from_numpy(x), "alpha").double().numpy()
    _assert_equal_up_to_column_sign(z[:, :1], (xs @ u[:, 0])[:, None], atol=1e-4)
    _assert_sign_rule(tensors["projection"].numpy())


def test_pls_torch_transform_equals_sklearn() -> None:
    from sklearn.cross_decomposition import PLSRegression

    feats, labels = _data(seed=2)
    for scale in (True, False):
        enc = LinearEncoder.from_params({"method": "pls", "dim": 3, "scale": scale})
        enc.fit(feats, labels)
        x, y = _pooled(feats), _onehot(labels)
        ref = PLSRegression(n_components=3, scale=scale, max_iter=5000, tol=1e-14).fit(x, y)
        got = enc.transform(torch.from_numpy(x), "beta").double().numpy()
        _assert_equal_up_to_column_sign(got, ref.transform(x), atol=1e-4)
        new = np.random.default_rng(0).normal(size=(5, x.shape[1]))
        got_new = enc.transform(torch.from_numpy(new), "other").double().numpy()
        signs = np.sign((got * ref.transform(x)).sum(axis=0))
        np.testing.assert_allclose(got_new, ref.transform(new) * signs, atol=1e-4)


def test_ridge_matches_closed_form() -> None:
    feats, labels = _data(seed=4)
    alpha = 2.5
    enc = LinearEncoder.from_params({"method": "ridge", "dim": 10, "alpha": alpha})
    enc.fit(feats, labels)
    x, y = _pooled(feats), _onehot(labels)
    xs = _standardise(x)
    w = np.linalg.solve(xs.T @ xs + alpha * np.eye(x.shape[1]), xs.T @ y)
    tensors, meta = enc.state()
    np.testing.assert_allclose(tensors["coef"].numpy(), w, atol=1e-10)
    # 5 (domain, class) pairs: centred targets have rank 4
    assert enc.dim == 4 == meta["dim"]
    fitted = xs @ w
    _, _, vt = np.linalg.svd(fitted - fitted.mean(axis=0), full_matrices=False)
    proj = _sign_fix_cols(w @ vt[:4].T)
    np.testing.assert_allclose(tensors["projection"].numpy(), proj, atol=1e-8)
    _assert_sign_rule(tensors["projection"].numpy())
    z = enc.transform(torch.from_numpy(x), "alpha")
    assert z.dtype == torch.float32 and z.shape == (x.shape[0], 4)
    np.testing.assert_allclose(z.double().numpy(), xs @ proj, atol=1e-4)


def test_ridge_without_scaling_only_centres() -> None:
    feats, labels = _data(seed=5)
    enc = LinearEncoder.from_params({"method": "ridge", "dim": 2, "scale": False, "alpha": 0.5})
    enc.fit(feats, labels)
    x, y = _pooled(feats), _onehot(labels)
    xc = x - x.mean(axis=0)
    w = np.linalg.solve(xc.T @ xc + 0.5 * np.eye(x.shape[1]), xc.T @ y)
    np.testing.assert_allclose(enc.state()[0]["coef"].numpy(), w, atol=1e-10)
    np.testing.assert_allclose(enc.state()[0]["std"].numpy(), np.ones(x.shape[1]))


@pytest.mark.parametrize("method", ["pls", "ridge"])
def test_linear_separates_two_classes(method: str) -> None:
    feats, labels = _gaussian_clusters()
    enc = LinearEncoder.from_params({"method": method, "dim": 1})
    enc.fit(feats, labels)
    z = enc.transform(feats["d"], "d")[:, 0]
    a, b = z[labels["d"] == 0], z[labels["d"] == 1]
    assert a.max() < b.min() or b.max() < a.min()


# --------------------------------------------------------------------------- graph


def _hand_graph(
    x: np.ndarray, k: int, dim: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Standardise, build the self-tuning kNN graph and its spectral embedding by hand."""
    mean, std = x.mean(axis=0), x.std(axis=0)
    xs = (x - mean) / std
    n = len(xs)
    d2 = ((xs[:, None, :] - xs[None, :, :]) ** 2).sum(-1)
    order = np.argsort(d2, axis=1, kind="stable")[:, :k]  # includes self (distance 0)
    assert (order[:, 0] == np.arange(n)).all()
    sigma = np.sqrt(d2[np.arange(n), order[:, -1]])
    w = np.zeros((n, n))
    for i in range(n):
        for j in order[i]:
            w[i, j] = np.exp(-d2[i, j] / (sigma[i] * sigma[j]))
    w = np.maximum(w, w.T)
    np.testing.assert_allclose(np.diag(w), 1.0)
    deg = w.sum(axis=1)
    a = w / np.sqrt(np.outer(deg, deg))
    lam, u = np.linalg.eigh(a)
    lam, u = lam[::-1][: dim + 1], u[:, ::-1][:, : dim + 1]
    np.testing.assert_allclose(lam[0], 1.0, atol=1e-10)  # the trivial pair, dropped
    lam, u = lam[1:], u[:, 1:]
    phi = _sign_fix_cols(u / np.sqrt(deg)[:, None])
    # phi are eigenvectors of the random walk P = D^-1 W with the same eigenvalues
    np.testing.assert_allclose((w / deg[:, None]) @ phi, phi * lam, atol=1e-10)
    return xs, sigma, w, lam, phi


def _tiny_graph_data(seed: int = 7) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    feats = {"p": torch.randn(4, 3, generator=g) * 2, "q": torch.randn(3, 3, generator=g)}
    labels = {"p": torch.tensor([0, 1, 0, 1]), "q": torch.tensor([5, 5, 2])}
    return feats, labels


def test_graph_full_graph_matches_hand_computation() -> None:
    feats, labels = _tiny_graph_data()
    enc = GraphEncoder.from_params({"dim": 3, "neighbors": 10})
    enc.fit(feats, labels)
    x = _pooled(feats)
    xs, sigma, _, lam, phi = _hand_graph(x, k=len(x), dim=3)
    tensors, meta = enc.state()
    assert meta["neighbors"] == len(x) and enc.dim == 3
    np.testing.assert_allclose(tensors["nodes"].numpy(), xs, atol=1e-12)
    np.testing.assert_allclose(tensors["sigma"].numpy(), sigma, rtol=1e-10)
    np.testing.assert_allclose(tensors["eigenvalues"].numpy(), lam, atol=1e-10)
    np.testing.assert_allclose(tensors["embedding"].numpy(), phi, atol=1e-9)
    _assert_sign_rule(tensors["embedding"].numpy())
    # Nyström at the training nodes reproduces phi exactly (full graph)
    z = enc.transform(torch.from_numpy(x), "p")
    assert z.dtype == torch.float32 and z.shape == (len(x), 3)
    np.testing.assert_allclose(z.double().numpy(), phi, atol=1e-5)
    # a new point: phi(x) = (1/lambda) sum_j p_j phi_j with the self-tuning kernel
    new = np.array([[0.3, -1.2, 0.8], [2.0, 0.1, -0.4]])
    ns = (new - x.mean(axis=0)) / x.std(axis=0)
    d2 = ((ns[:, None, :] - xs[None, :, :]) ** 2).sum(-1)
    sigma_x = np.sqrt(d2.max(axis=1))
    kern = np.exp(-d2 / (sigma_x[:, None] * sigma[None, :]))
    p = kern / kern.sum(axis=1, keepdims=True)
    expected = (p @ phi) / lam
    got = enc.transform(torch.from_numpy(new).float(), "unseen-domain")
    np.testing.assert_allclose(got.double().numpy(), expected, atol=1e-4)


def test_graph_sparse_knn_matches_hand_computation() -> None:
    g = torch.Generator().manual_seed(11)
    feats = {"a": torch.randn(8, 2, generator=g)}
    labels = {"a": torch.arange(8) % 2}
    enc = GraphEncoder.from_params({"dim": 2, "neighbors": 3})
    enc.fit(feats, labels)
    x = _pooled(feats)
    _, sigma, _, lam, phi = _hand_graph(x, k=3, dim=2)
    tensors, _ = enc.state()
    np.testing.assert_allclose(tensors["sigma"].numpy(), sigma, rtol=1e-10)
    np.testing.assert_allclose(tensors["eigenvalues"].numpy(), lam, atol=1e-10)
    np.testing.assert_allclose(tensors["embedding"].numpy(), phi, atol=1e-9)


def test_graph_class_graph_is_cosine_of_class_means() -> None:
    feats, labels = _tiny_graph_data()
    enc = GraphEncoder.from_params({"dim": 3, "neighbors": 10})
    enc.fit(feats, labels)
    names, weights = enc.class_graph()
    assert names == ["p:0", "p:1", "q:2", "q:5"]
    phi = enc.state()[0]["embedding"].numpy()
    # nodes: p rows 0..3 (labels 0,1,0,1), q rows 4..6 (labels 5,5,2)
    groups = {"p:0": [0, 2], "p:1": [1, 3], "q:2": [6], "q:5": [4, 5]}
    protos = np.stack([phi[groups[n]].mean(axis=0) for n in names])
    np.testing.assert_allclose(enc.prototypes.double().numpy(), protos, atol=1e-6)
    unit = protos / np.linalg.norm(protos, axis=1, keepdims=True)
    assert weights.dtype == torch.float32 and weights.shape == (4, 4)
    np.testing.assert_allclose(weights.double().numpy(), unit @ unit.T, atol=1e-6)


@pytest.mark.parametrize("neighbors", [5, 30])
def test_graph_separates_two_clusters(neighbors: int) -> None:
    feats, labels = _gaussian_clusters()
    enc = GraphEncoder.from_params({"dim": 2, "neighbors": neighbors})
    enc.fit(feats, labels)
    z = enc.transform(feats["d"], "d")[:, 0]
    a, b = z[labels["d"] == 0], z[labels["d"] == 1]
    assert a.max() < b.min() or b.max() < a.min()
    names, weights = enc.class_graph()
    assert names == ["d:0", "d:1"]
    assert weights[0, 1] < 0.5


def test_graph_subsample_is_stratified_and_evenly_spaced() -> None:
    g = torch.Generator().manual_seed(2)
    feats = {"big": torch.randn(30, 3, generator=g), "small": torch.randn(10, 3, generator=g)}
    labels = {"big": torch.arange(30) % 4, "small": torch.arange(10) % 3}
    enc = GraphEncoder.from_params({"dim": 3, "neighbors": 4, "max_nodes": 8})
    enc.fit(feats, labels)
    tensors, _ = enc.state()
    x = _pooled(feats)
    xs = (x - x.mean(axis=0)) / x.std(axis=0)
    expected = [0, 5, 10, 15, 20, 25, 30, 35]  # 6 of 30 "big", 2 of 10 "small"
    np.testing.assert_allclose(tensors["nodes"].numpy(), xs[expected], atol=1e-12)
    assert tensors["node_pairs"].tolist() == [0, 1, 2, 3, 0, 1, 4, 6]
    names, weights = enc.class_graph()
    assert len(names) == 7 and torch.isfinite(weights).all()
    # nodes keep their exact embedding; the other samples are Nyström-embedded
    protos = enc.prototypes.double()
    emb = torch.cat([enc.transform(feats["big"], "big"), enc.transform(feats["small"], "s")])
    emb = emb.double()
    emb[expected] = tensors["embedding"]
    pairs = torch.cat([labels["big"], 4 + labels["small"]])
    for p in range(7):
        torch.testing.assert_close(protos[p], emb[pairs == p].mean(0), atol=1e-5, rtol=0)


def test_graph_without_standardize_uses_raw_distances() -> None:
    feats, labels = _tiny_graph_data()
    enc = GraphEncoder.from_params({"dim": 2, "neighbors": 10, "standardize": False})
    enc.fit(feats, labels)
    tensors, _ = enc.state()
    np.testing.assert_allclose(tensors["nodes"].numpy(), _pooled(feats), atol=1e-12)


# --------------------------------------------------------------------------- every encoder

CASES: list[tuple[type[KnowledgeEncoder], dict[str, Any]]] = [
    (PCAEncoder, {"dim": 3}),
    (PCAEncoder, {"dim": 3, "whiten": True}),
    (LinearEncoder, {"method": "pls", "dim": 3}),
    (LinearEncoder, {"method": "ridge", "dim": 3, "alpha": 0.1}),
    (GraphEncoder, {"dim": 3, "neighbors": 5}),
    (KnowledgeGraphEncoder, {"dim": 3, "top_k": 2}),
]
IDS = ["pca", "pca-whiten", "pls", "ridge", "graph", "knowledge_graph"]


@pytest.mark.parametrize(("cls", "params"), CASES, ids=IDS)
def test_save_load_roundtrip(
    cls: type[KnowledgeEncoder], params: dict[str, Any], tmp_path: Path
) -> None:
    feats, labels = _data(seed=9)
    enc = cls.from_params(params)
    enc.fit(feats, labels)
    enc.save(tmp_path)
    assert (tmp_path / "encoder.safetensors").exists() and (tmp_path / "encoder.json").exists()
    fresh = cls.from_params(params)
    fresh.load(tmp_path)
    assert fresh.dim == enc.dim
    probe = torch.randn(6, 5, generator=torch.Generator().manual_seed(1))
    for x in (feats["alpha"], probe):
        assert torch.equal(fresh.transform(x, "alpha"), enc.transform(x, "alpha"))
    if isinstance(enc, GraphEncoder | KnowledgeGraphEncoder):
        assert isinstance(fresh, GraphEncoder | KnowledgeGraphEncoder)
        assert fresh.class_graph()[0] == enc.class_graph()[0]
        assert torch.equal(fresh.class_graph()[1], enc.class_graph()[1])


@pytest.mark.parametrize(("cls", "params"), CASES, ids=IDS)
def test_deterministic_and_shapes(cls: type[KnowledgeEncoder], params: dict[str, Any]) -> None:
    feats, labels = _data(seed=10)
    first, second = cls.from_params(params), cls.from_params(params)
    first.fit(feats, labels)
    # dict order of the domains does not matter either
    second.fit(dict(reversed(feats.items())), dict(reversed(labels.items())))
    for domain, x in feats.items():
        a, b = first.transform(x, domain), second.transform(x, domain)
        assert torch.equal(a, b)
        assert a.dtype == torch.float32 and a.shape == (x.shape[0], first.dim)
        assert torch.isfinite(a).all()
    assert first.transform(torch.zeros(0, 5), "empty").shape == (0, first.dim)
    assert first.transform(feats["beta"].double(), "a-domain-not-seen").dtype == torch.float32


@pytest.mark.parametrize(("cls", "params"), CASES, ids=IDS)
def test_errors(cls: type[KnowledgeEncoder], params: dict[str, Any]) -> None:
    feats, labels = _data()
    enc = cls.from_params(params)
    with pytest.raises(RuntimeError, match="not fitted"):
        enc.transform(feats["alpha"], "alpha")
    with pytest.raises(RuntimeError, match="not fitted"):
        enc.state()
    with pytest.raises(ValueError, match="different domains"):
        enc.fit(feats, {"alpha": labels["alpha"]})
    with pytest.raises(ValueError, match="labels"):
        enc.fit(feats, {"alpha": labels["alpha"][:3], "beta": labels["beta"]})
    enc.fit(feats, labels)
    with pytest.raises(ValueError, match="shape"):
        enc.transform(torch.zeros(3, 4), "alpha")


@pytest.mark.parametrize(
    ("cls", "bad"),
    [
        (PCAEncoder, {"dim": 0}),
        (PCAEncoder, {"unknown": 1}),
        (PCAEncoder, {"incremental_above": 0}),
        (PCAEncoder, {"incremental_batch": 1}),
        (LinearEncoder, {"dim": 0}),
        (LinearEncoder, {"method": "lda"}),
        (LinearEncoder, {"alpha": 0.0}),
        (LinearEncoder, {"ridge": True}),
        (GraphEncoder, {"dim": 0}),
        (GraphEncoder, {"neighbors": 1}),
        (GraphEncoder, {"max_nodes": 1}),
        (GraphEncoder, {"sigma": 1.0}),
        (KnowledgeGraphEncoder, {"dim": 0}),
        (KnowledgeGraphEncoder, {"top_k": 0}),
        (KnowledgeGraphEncoder, {"min_weight": 1.5}),
        (KnowledgeGraphEncoder, {"center": "class"}),
    ],
)
def test_config_rejects_bad_params(cls: type[KnowledgeEncoder], bad: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        cls.from_params(bad)


def test_configs_are_frozen_and_documented() -> None:
    for cls in (PCAEncoder, LinearEncoder, GraphEncoder, KnowledgeGraphEncoder):
        config = cls.from_params({}).config
        with pytest.raises(pydantic.ValidationError):
            config.dim = 5  # type: ignore[misc]
        for field in cls.Config.model_fields.values():
            assert field.description
        assert cls.name == cls.name.lower()
        assert cls.summary()


def test_register_encoders_registers_the_builtins() -> None:
    seen: list[type] = []
    register_encoders(seen.append)
    assert seen == [PCAEncoder, LinearEncoder, GraphEncoder, KnowledgeGraphEncoder]
    assert [c.name for c in seen] == ["pca", "linear", "graph", "knowledge_graph"]
    assert KnowledgeGraphEncoder.provides == frozenset({"vectors", "graph"})
    assert GraphEncoder.provides == frozenset({"vectors", "graph"})
    assert PCAEncoder.provides == LinearEncoder.provides == frozenset({"vectors"})
