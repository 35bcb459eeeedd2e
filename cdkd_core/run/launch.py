"""``cdkd run --nproc N``: the same command started N times by torchrun on this machine."""

from __future__ import annotations

import logging
import os
import signal


def torchrun_args(nproc: int, cdkd_args: list[str]) -> list[str]:
    """torchrun's arguments for running ``cdkd <cdkd_args>`` on ``nproc`` processes of this
    machine (``--standalone``: a private rendezvous on a free port)."""
    return ["--standalone", f"--nproc_per_node={nproc}", "-m", "cdkd_core", *cdkd_args]


def launch(nproc: int, cdkd_args: list[str]) -> int:
    """Run ``cdkd <cdkd_args>`` under torchrun on ``nproc`` processes; return the exit status
    of the first process that failed (0 when all succeeded).

    The processes print their own errors (process 0 alone), so torchrun's report of a
    failed process is not repeated. Unless ``OMP_NUM_THREADS`` is set, the machine's cores
    are shared out among the processes (torchrun would give each one thread).
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    elastic = logging.getLogger("torch.distributed.elastic")
    level = elastic.level
    elastic.setLevel(logging.CRITICAL)
    try:
        run(get_args_parser().parse_args(torchrun_args(nproc, cdkd_args)))
    except ChildFailedError as exc:
        _, failure = exc.get_first_failure()
        code = failure.exitcode
        return 128 + abs(code) if code < 0 else code or 1  # killed by a signal: 128 + its number
    except KeyboardInterrupt:
        return 128 + signal.SIGINT
    finally:
        elastic.setLevel(level)
    return 0
