"""Fuzzing medical.image_folder with broken image files: every one is refused with a
DataError naming the file, never read as a wrong image or passed over silently."""

from __future__ import annotations

import io

import numpy as np
import pytest
from cdkd_medical.image_folder import ImageFolder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from cdkd_core.plugin_api import DataError

TRIED = {"n": 0}


def _png(size=(12, 10), mode="RGB") -> bytes:
    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    Image.fromarray(rng.integers(0, 255, shape).astype(np.uint8), mode).save(buf, "PNG")
    return buf.getvalue()


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (120, 10, 10)).save(buf, "JPEG")
    return buf.getvalue()


CORRUPTIONS = {
    "empty": lambda data, cut, byte: b"",
    "truncated": lambda data, cut, byte: data[: max(1, cut % max(len(data) - 1, 1))],
    "garbage_after_magic": lambda data, cut, byte: data[:8] + bytes([byte]) * 64,
    "text_with_image_name": lambda data, cut, byte: b"not an image at all\n" * 3,
    "random_bytes": lambda data, cut, byte: (
        np.random.default_rng(cut).integers(0, 256, 200).astype(np.uint8).tobytes()
    ),
}


def _folder(root):
    for c, name in enumerate(("benign", "malignant")):
        (root / name).mkdir(parents=True)
        for i in range(4):
            (root / name / f"ok{i}.png").write_bytes(_png(mode="L" if (i + c) % 2 else "RGB"))
    return root


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    kind=st.sampled_from(sorted(CORRUPTIONS)),
    ext=st.sampled_from(["png", "jpg", "jpeg"]),
    cut=st.integers(min_value=1, max_value=10_000),
    byte=st.integers(min_value=0, max_value=255),
    cls=st.sampled_from(["benign", "malignant"]),
)
def test_a_broken_image_is_refused_naming_the_file(tmp_path_factory, kind, ext, cut, byte, cls):
    root = _folder(tmp_path_factory.mktemp("imgs"))
    source = _png() if ext == "png" else _jpeg()
    data = CORRUPTIONS[kind](source, cut, byte)
    bad = root / cls / f"broken.{ext}"
    bad.write_bytes(data)
    TRIED["n"] += 1
    with pytest.raises(DataError) as info:
        ImageFolder.from_params({"path": str(root), "size": 8}).load(0)
    assert f"broken.{ext}" in str(info.value), (kind, str(info.value))


def test_fuzz_count():
    """After the property test (file order): how many broken images were tried."""
    assert TRIED["n"] >= 50
