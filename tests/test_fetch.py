"""Reading members of package archives (the fetch cache), on archives the tests write."""

from __future__ import annotations

import io
import tarfile
import zipfile

import pytest

from cdkd_core.data.fetch import cache_dir, fetch_distribution, read_member
from cdkd_core.errors import DataError


def test_read_member_from_wheel_and_sdist(tmp_path):
    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("pkg/data/a.csv", "x,y\n1,2\n")
        zf.writestr("pkg/__init__.py", "")
    assert read_member(wheel, "*/data/a.csv") == b"x,y\n1,2\n"
    sdist = tmp_path / "pkg-1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as tf:
        payload = b"inner"
        info = tarfile.TarInfo("pkg-1.0/extra/inner.txt")
        info.size = len(payload)
        tf.addfile(info, io.BytesIO(payload))
    assert read_member(sdist, "*/extra/inner.txt") == b"inner"
    with pytest.raises(DataError, match="no member matching"):
        read_member(sdist, "*/missing")


def test_cached_distribution_is_not_downloaded_again(tmp_path, monkeypatch):
    monkeypatch.setenv("CDKD_DATA_DIR", str(tmp_path))
    assert cache_dir() == tmp_path
    target = tmp_path / "dists" / "some-pkg-2.0"
    target.mkdir(parents=True)
    (target / "some_pkg-2.0.tar.gz").write_bytes(b"")
    import subprocess

    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("downloaded again"))
    assert fetch_distribution("some_pkg==2.0", sdist=True).name == "some_pkg-2.0.tar.gz"


def test_unpinned_requirement_is_refused():
    with pytest.raises(ValueError, match="pin an exact version"):
        fetch_distribution("some-pkg>=1")


def test_member_checksum_is_verified(tmp_path):
    import hashlib

    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("pkg/data.bin", b"real data")
    good = hashlib.sha256(b"real data").hexdigest()
    assert read_member(wheel, "pkg/data.bin", good) == b"real data"
    with pytest.raises(DataError, match="cdkd data fetch"):
        read_member(wheel, "pkg/data.bin", "0" * 64)
