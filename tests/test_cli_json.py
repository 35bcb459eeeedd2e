"""``cdkd run --json``: standard output holds the JSON alone, whatever a plugin prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import TINY

#: a plugin that prints at import (through Python and straight to descriptor 1) and while
#: it runs (a loss that prints at every call)
CHATTY = '''
import os
import sys

import torch

from cdkd_core import Loss, hookimpl

print("chatty: imported")
os.write(1, b"chatty: straight to descriptor 1\\n")


class Chatty(Loss):
    """A loss of zero that prints."""

    name = "chatty"
    needs = frozenset()

    def __call__(self, ctx):
        print("chatty: called")
        sys.stdout.flush()
        return torch.zeros((), requires_grad=True)


@hookimpl
def register_losses(register):
    register(Chatty)
'''


def _site(tmp_path: Path) -> Path:
    """A folder with the chatty plugin installed as a distribution (an entry point)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "cdkd_chatty.py").write_text(CHATTY, encoding="utf-8")
    meta = site / "cdkd_chatty-0.1.0.dist-info"
    meta.mkdir()
    (meta / "METADATA").write_text("Metadata-Version: 2.1\nName: cdkd-chatty\nVersion: 0.1.0\n")
    (meta / "entry_points.txt").write_text("[cdkd]\nchatty = cdkd_chatty\n")
    return site


def test_run_json_keeps_standard_output_for_the_json(tmp_path: Path) -> None:
    config = {**TINY, "losses": [*TINY["losses"], {"name": "chatty"}]}
    config["train"] = {**config["train"], "epochs": 1}
    path = tmp_path / "chatty.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(_site(tmp_path)), os.environ.get("PYTHONPATH", "")]),
        "CDKD_PLUGINS": "chatty",
    }
    command = [sys.executable, "-m", "cdkd_core", "run", str(path), "--json", "--quiet"]
    command += ["--output", str(tmp_path / "runs")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)  # nothing but the JSON
    assert set(summary["domains"]) == {d["name"] for d in TINY["domains"]}
    for line in ("chatty: imported", "chatty: straight to descriptor 1", "chatty: called"):
        assert line in done.stderr and line not in done.stdout
    # the other commands whose standard output a script reads: the plugin's import prints
    # go to standard error there too
    base = [sys.executable, "-m", "cdkd_core"]
    listed = subprocess.run([*base, "plugins", "list", "--json"], env=env, capture_output=True)
    assert listed.returncode == 0, listed.stderr[-3000:]
    assert "chatty" in {p["name"] for p in json.loads(listed.stdout)}
    rows = tmp_path / "rows.csv"
    rows.write_text(_wine_rows(), encoding="utf-8")
    (run_dir,) = (tmp_path / "runs").iterdir()
    predicted = subprocess.run(
        [*base, "predict", str(run_dir), str(rows), "-d", "sklearn.wine"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    assert predicted.stdout.splitlines()[0].startswith("id,prediction,p_")
    assert len(predicted.stdout.splitlines()) == 3 and "chatty" in predicted.stderr


def _wine_rows() -> str:
    """Two rows of the wine table, as a CSV with its feature names."""
    import sklearn.datasets

    bunch = sklearn.datasets.load_wine()
    header = ",".join(bunch.feature_names)
    return header + "\n" + "\n".join(",".join(map(str, row)) for row in bunch.data[:2]) + "\n"
