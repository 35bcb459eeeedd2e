"""A finished run's reference peers (``peers.json``, written by ``cdkd report --peers``): the
run's domains are loaded again from its resolved config (same config and seed, so the same
splits, labelled subsets and quiz rows) and the peers of :mod:`cdkd_core.stages.peers` are
fitted on them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from cdkd_core.artifacts.run_files import first_line
from cdkd_core.errors import CdkdError, ReportError

if TYPE_CHECKING:
    from cdkd_core.host.plugin_host import PluginHost

#: the peers' file name in the run directory
PEERS_FILE = "peers.json"


def compute_peers(run_dir: Path, host: PluginHost) -> dict[str, Any]:
    """The reference peers of the run in ``run_dir``: ``{"seed", "c_grid", "domains":
    {domain: {peer: {"metrics", "headline", "C", "labelled"}}}}`` (see
    :func:`~cdkd_core.stages.peers.peer_results`). A :class:`ReportError` says why the run's
    domains could not be loaded again (a plugin or data file gone, a changed config)."""
    from cdkd_core.config.loading import load_config
    from cdkd_core.data.preparation import prepare_domains
    from cdkd_core.stages.peers import C_GRID, peer_results

    run_dir = Path(run_dir)
    try:
        config = load_config(run_dir / "config.yaml", host=host, machine=False)
        feedback = host.get("feedback", config.feedback.name).from_params(config.feedback.params)
        domains = prepare_domains(config, host, feedback.quiz_fraction)
    except CdkdError as exc:
        raise ReportError(
            f"--peers: cannot load the run's domains again: {first_line(exc)}"
        ) from exc
    return {
        "seed": config.seed,
        "c_grid": list(C_GRID),
        "domains": peer_results(domains, config.seed),
    }


def write_peers(run_dir: Path, host: PluginHost) -> dict[str, Any]:
    """Compute the run's reference peers and write them to ``run_dir/peers.json``
    atomically; returns what was written."""
    from cdkd_core.files import atomic_write_json

    peers = compute_peers(run_dir, host)
    atomic_write_json(Path(run_dir) / PEERS_FILE, peers)
    return peers


def read_peers(run_dir: Path) -> dict[str, Any] | None:
    """The run's ``peers.json``, or None when it has none; a :class:`ReportError` for a
    file that is not one."""
    path = Path(run_dir) / PEERS_FILE
    if not path.is_file():
        return None
    from cdkd_core.files import read_run_file

    peers = read_run_file(path)
    if not isinstance(peers.get("domains"), dict):
        raise ReportError(f"{path}: not a cdkd peers file (no 'domains')")
    return peers
