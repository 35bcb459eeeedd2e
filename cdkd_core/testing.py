"""Pytest fixtures for plugin authors: a plugin host, a tiny config, a run helper, the CLI.

Opt in from your tests' ``conftest.py`` and name your plugin in ``cdkd_plugins``::

    import pytest

    import cdkd_whiten

    pytest_plugins = ["cdkd_core.testing"]


    @pytest.fixture
    def cdkd_plugins():
        return [("whiten", cdkd_whiten)]

Fixtures: ``cdkd_plugins`` (override it), ``make_cdkd_host``, ``cdkd_host``,
``tiny_domain``, ``tiny_config``, ``run_tiny_pipeline``, ``cdkd_cli``. The plain functions
:func:`make_host`, :func:`tiny_pipeline_config` and :func:`invoke_cli` work outside pytest
too. Nothing here runs on import; the fixtures that train set one torch thread.

Contract checks, one call per kind (the checks a run makes, :mod:`cdkd_core.components.contracts`,
raising ``AssertionError`` with the text a run would print): :func:`check_domain`,
:func:`check_encoder`, :func:`check_loss`, :func:`check_architecture`,
:func:`check_feedback`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # pragma: no cover
    from click.testing import Result

    from cdkd_core.host.plugin_host import PluginHost
    from cdkd_core.run.runner import RunResult

PluginSpec = ModuleType | tuple[str, object]
"""A plugin for :func:`make_host`: a module with ``@hookimpl`` functions (named after the
module), or a ``(name, module_or_object)`` pair.

Examples:
    >>> import types
    >>> from cdkd_core.testing import PluginSpec, make_host
    >>> module = types.ModuleType("cdkd_empty")  # a plugin module that registers nothing
    >>> plugins: list[PluginSpec] = [module, ("other", object())]
    >>> host = make_host(*plugins)
    >>> "cdkd_empty" in host.plugins and "other" in host.plugins
    True
"""

TINY_DOMAIN: dict[str, Any] = {"name": "sklearn.wine", "role": "source"}
"""The domain of ``tiny_domain``: 178 wines, 13 features, 3 classes (scikit-learn's copy).

Examples:
    >>> from cdkd_core.testing import TINY_DOMAIN, tiny_pipeline_config
    >>> TINY_DOMAIN
    {'name': 'sklearn.wine', 'role': 'source'}
    >>> tiny_pipeline_config()["domains"][0] == TINY_DOMAIN
    True
"""

SECOND_DOMAIN: dict[str, Any] = {"name": "sklearn.breast_cancer", "role": "source"}
"""The second source domain of ``tiny_config``: the 569 breast-cancer FNA samples.

Examples:
    >>> from cdkd_core.testing import SECOND_DOMAIN, tiny_pipeline_config
    >>> tiny_pipeline_config()["domains"][1] == SECOND_DOMAIN
    True
"""


def tiny_pipeline_config(domain: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A two-domain pipeline config that trains in a second or two on one CPU thread:
    ``domain`` (default :data:`TINY_DOMAIN`) and breast-cancer FNA (569 samples) as sources, an
    mlp teacher of width 32 and student of width 8, a 4-dimensional ``pca`` encoder,
    ``ce`` + ``kd`` + ``hint`` losses, 2 epochs on the CPU. A new dict each call.

    Args:
        domain: The first domain's config entry (copied).

    Returns:
        The config as a dict (what a YAML config reads as), to change and run.

    Examples:
        >>> from cdkd_core.testing import tiny_pipeline_config
        >>> config = tiny_pipeline_config({"name": "sklearn.iris", "role": "target"})
        >>> [d["name"] for d in config["domains"]], config["train"]["epochs"]
        (['sklearn.iris', 'sklearn.breast_cancer'], 2)
    """
    return {
        "name": "tiny",
        "seed": 0,
        "domains": [dict(copy.deepcopy(domain or TINY_DOMAIN)), copy.deepcopy(SECOND_DOMAIN)],
        "teacher": {"trunk": {"name": "mlp", "params": {"width": 32, "depth": 1}}},
        "student": {"trunk": {"name": "mlp", "params": {"width": 8, "depth": 1}}},
        "encoder": {"name": "pca", "params": {"dim": 4}},
        "losses": [
            {"name": "ce"},
            {"name": "kd", "params": {"temperature": 2.0}},
            {"name": "hint", "weight": 0.5},
        ],
        "train": {"epochs": 2, "batch_size": 64, "lr": 0.01, "device": "cpu", "threads": 1},
    }


def make_host(*plugins: PluginSpec, entry_points: bool = False) -> PluginHost:
    """A :class:`~cdkd_core.host.plugin_host.PluginHost` with the built-ins and ``plugins`` loaded
    in-process (installed plugins too with ``entry_points=True``); raises
    :class:`~cdkd_core.errors.PluginError` naming each given plugin that failed.

    Args:
        *plugins: The plugins to load besides the built-ins.
        entry_points: Load the installed plugins (entry points of the group ``cdkd``) too.

    Returns:
        The host: ``components(kind)`` lists the registered components,
        ``get(kind, name)`` returns a component class, ``plugins`` what each plugin
        loaded.

    Raises:
        PluginError: A given plugin failed to load or register (all of them named).

    Examples:
        >>> from cdkd_core.testing import make_host
        >>> host = make_host()
        >>> "pca" in host.components("encoders"), host.get("losses", "kd").name
        (True, 'kd')
    """
    from cdkd_core.errors import PluginError
    from cdkd_core.host.plugin_host import PluginHost

    pairs = _as_pairs(plugins)
    host = PluginHost(entry_points=entry_points, disabled=(), plugins=pairs)
    failed = [
        f"{name}: {'; '.join(host.plugins[name].errors)}"
        for name, _ in pairs
        if name in host.plugins and not host.plugins[name].ok
    ]
    if failed:
        raise PluginError("plugin(s) failed to load or register: " + " | ".join(failed))
    return host


def invoke_cli(
    *args: str, env: Mapping[str, str] | None = None, input: str | None = None
) -> Result:
    """Run ``cdkd ARGS`` in-process (Typer's CliRunner) and return Click's result:
    ``exit_code``, ``stdout``, ``stderr``, ``output`` (both), ``exception``.

    The command builds its own plugin host from installed entry points, as ``cdkd`` does,
    so a plugin shows up here once it is installed (``pip install -e .``).

    Args:
        *args: The command's arguments (``"components", "losses", "--json"``).
        env: Environment variables to set for the command.
        input: Text for its standard input.

    Returns:
        Click's ``Result``.

    Examples:
        >>> import json
        >>> from cdkd_core.testing import invoke_cli
        >>> result = invoke_cli("components", "losses", "--json")
        >>> result.exit_code, "kd" in [c["name"] for c in json.loads(result.stdout)["losses"]]
        (0, True)
    """
    import torch
    from typer.testing import CliRunner

    from cdkd_core.cli import app

    torch.set_num_threads(1)
    try:
        runner = CliRunner(mix_stderr=False)  # Click < 8.2 mixes stderr in by default
    except TypeError:
        runner = CliRunner()  # Click >= 8.2 keeps stdout and stderr apart
    return runner.invoke(app, [str(a) for a in args], env=dict(env or {}), input=input)


@pytest.fixture
def cdkd_plugins() -> list[PluginSpec]:
    """The plugins ``cdkd_host`` loads besides the built-ins; override it in your conftest
    to return your plugin, e.g. ``[("whiten", cdkd_whiten)]`` (default: none).

    Returns:
        A list of :data:`PluginSpec`.

    Examples:
        In the tests' ``conftest.py``:

        ```python
        import pytest

        import cdkd_whiten

        pytest_plugins = ["cdkd_core.testing"]


        @pytest.fixture
        def cdkd_plugins():
            return [("whiten", cdkd_whiten)]
        ```
    """
    return []


@pytest.fixture
def make_cdkd_host() -> Callable[..., PluginHost]:
    """A factory: ``make_cdkd_host(*plugins, entry_points=False)`` is :func:`make_host`.

    Returns:
        :func:`make_host`.

    Examples:
        ```python
        def test_the_built_ins_alone_lack_it(make_cdkd_host):
            assert "whiten" not in make_cdkd_host().components("encoders")
        ```
    """
    return make_host


@pytest.fixture
def cdkd_host(cdkd_plugins: list[PluginSpec]) -> PluginHost:
    """A plugin host with the built-ins and ``cdkd_plugins`` loaded in-process (installed
    plugins stay out, so the test sees exactly these); fails if one of them failed.

    Args:
        cdkd_plugins: The fixture: the plugins to load.

    Returns:
        The host (:func:`make_host`).

    Raises:
        PluginError: One of ``cdkd_plugins`` failed to load or register.

    Examples:
        ```python
        def test_registered_by_the_plugin(cdkd_host):
            info = cdkd_host.components("encoders")["whiten"]
            assert info.plugin == "whiten"
        ```
    """
    return make_host(*cdkd_plugins)


@pytest.fixture
def tiny_domain() -> dict[str, Any]:
    """A small real domain as a config entry (``sklearn.wine`` as a source): append it to
    ``domains`` or change its ``role``.

    Returns:
        A copy of :data:`TINY_DOMAIN`.

    Examples:
        Override it to make your domain the tiny run's first one:

        ```python
        @pytest.fixture
        def tiny_domain():
            return {"name": "whiten.blobs", "role": "source"}
        ```
    """
    return copy.deepcopy(TINY_DOMAIN)


@pytest.fixture
def tiny_config(tiny_domain: dict[str, Any]) -> dict[str, Any]:
    """A pipeline config dict that trains in seconds (:func:`tiny_pipeline_config` over
    ``tiny_domain``); change it in a test to put your component in, then
    ``run_tiny_pipeline()``.

    Args:
        tiny_domain: The fixture: the first domain's entry.

    Returns:
        A new config dict for each test.

    Examples:
        ```python
        def test_trains_with_my_encoder(tiny_config, run_tiny_pipeline):
            tiny_config["encoder"] = {"name": "whiten", "params": {"dim": 4}}
            result = run_tiny_pipeline()
            assert 0.0 <= result.summary["domains"]["sklearn.wine"]["student"] <= 1.0
        ```
    """
    return tiny_pipeline_config(tiny_domain)


@pytest.fixture
def run_tiny_pipeline(
    cdkd_host: PluginHost, tiny_config: dict[str, Any], tmp_path: Path
) -> Callable[..., RunResult]:
    """``run_tiny_pipeline(config=None, *, host=None)`` runs a pipeline (default: the
    test's ``tiny_config``, as changed so far) with ``cdkd_host`` into ``tmp_path/runs`` on
    one torch thread and returns its :class:`~cdkd_core.run.runner.RunResult`.

    Args:
        cdkd_host: The fixture: the host the run uses unless ``host`` is given.
        tiny_config: The fixture: the config run unless ``config`` is given.
        tmp_path: pytest's fixture: where the run directory goes.

    Returns:
        ``run_tiny_pipeline(config=None, *, host=None)``: it returns the ``RunResult``
        (``summary``: the run's ``summary.json`` as a dict; ``run_dir``).

    Examples:
        ```python
        def test_runs_as_a_target(tiny_config, run_tiny_pipeline):
            tiny_config["domains"].append({"name": "whiten.blobs", "role": "target"})
            result = run_tiny_pipeline()
            assert result.summary["domains"]["whiten.blobs"]["sizes"]["test"] > 0
        ```
    """

    def run(
        config: Mapping[str, Any] | None = None, *, host: PluginHost | None = None
    ) -> RunResult:
        import torch

        from cdkd_core.run.runner import run_pipeline

        torch.set_num_threads(1)
        chosen = copy.deepcopy(dict(config if config is not None else tiny_config))
        return run_pipeline(chosen, host=host or cdkd_host, output=tmp_path / "runs")

    return run


@pytest.fixture
def cdkd_cli() -> Callable[..., Result]:
    """``cdkd_cli("components", "encoders", env=None, input=None)`` runs the ``cdkd``
    command in-process (:func:`invoke_cli`) and returns Click's result (``exit_code``,
    ``stdout``, ``stderr``, ``output``, ``exception``).

    Returns:
        :func:`invoke_cli`.

    Examples:
        ```python
        def test_the_cdkd_command_lists_it(cdkd_cli):
            result = cdkd_cli("components", "encoders", "--json")
            assert result.exit_code == 0, result.output
            assert "whiten" in [c["name"] for c in json.loads(result.stdout)["encoders"]]
        ```
    """
    return invoke_cli


def _as_pairs(plugins: Iterable[PluginSpec]) -> list[tuple[str, object]]:
    """``plugins`` as ``(name, object)`` pairs (a bare module is named after itself)."""
    return [p if isinstance(p, tuple) else (p.__name__, p) for p in plugins]


# -- contract checks ------------------------------------------------------------------------


def _asserting(check: Callable[[], Any]) -> Any:
    """Run a contract check; a broken contract becomes an ``AssertionError`` (same text)."""
    from cdkd_core.components.contracts import ContractError

    try:
        return check()
    except ContractError as exc:
        raise AssertionError(str(exc)) from None


def check_encoder(
    encoder: Any,
    features: Mapping[str, Any],
    labels: Mapping[str, Any],
    *,
    atol: float = 1e-5,
) -> dict[str, Any]:
    """Fit ``encoder`` on ``features``/``labels`` (``{domain: tensor}``) and check what a
    run checks: ``dim`` a positive int, ``state()`` tensors + JSON metadata (no pickle
    bytes), ``transform`` giving floating, finite ``[N, dim]`` per domain; then that the
    state saved and loaded into a new instance transforms the same (within ``atol``).
    Returns each domain's vectors. Raises ``AssertionError`` naming what broke.

    Args:
        encoder: A new (unfitted) encoder.
        features: Domain name -> teacher features ``[N, F]``.
        labels: Domain name -> class indices ``[N]``.
        atol: How far the restored encoder's vectors may be from the original's.

    Returns:
        Domain name -> its knowledge vectors ``[N, dim]``.

    Raises:
        AssertionError: A contract is broken (the message a run would print).

    Examples:
        >>> import torch
        >>> from cdkd_core.plugin_api import check_encoder
        >>> from cdkd_core.testing import make_host
        >>> pca = make_host().get("encoders", "pca").from_params({"dim": 2})
        >>> features = {"a": torch.randn(30, 6), "b": torch.randn(20, 6)}
        >>> labels = {"a": torch.arange(30) % 3, "b": torch.arange(20) % 2}
        >>> vectors = check_encoder(pca, features, labels)
        >>> {domain: tuple(v.shape) for domain, v in vectors.items()}
        {'a': (30, 2), 'b': (20, 2)}
    """
    import tempfile

    import torch

    from cdkd_core.components import contracts

    def run() -> dict[str, Any]:
        encoder.fit(dict(features), dict(labels))
        contracts.check_encoder_dim(encoder)
        contracts.check_encoder_state(encoder)
        vectors = {}
        for domain, x in features.items():
            vectors[domain] = encoder.transform(x, domain)
            contracts.check_encoder_output(encoder, x, vectors[domain], domain)
        with tempfile.TemporaryDirectory() as tmp:
            encoder.save(Path(tmp))
            restored = type(encoder)(encoder.config)
            restored.load(Path(tmp))
        for domain, x in features.items():
            again = restored.transform(x, domain)
            contracts.check_encoder_output(restored, x, again, domain)
            if not torch.allclose(again.double(), vectors[domain].double(), atol=atol):
                raise contracts.ContractError(
                    "encoders",
                    encoder,
                    f"transform(..., {domain!r}) differs after save() and load() into a new "
                    "instance; expected state() to hold everything transform needs",
                )
        return vectors

    return _asserting(run)


def check_loss(
    loss: Any,
    ctx: Any = None,
    *,
    student_features: int = 8,
    knowledge_dim: int | None = 4,
    num_classes: int = 3,
    batch: int = 16,
) -> Any:
    """Set ``loss`` up (``setup(student_features, knowledge_dim)``), call it on ``ctx`` (by
    default a random :class:`~cdkd_core.components.loss.BatchContext` with teacher logits, features
    and knowledge vectors, half the labels known) and check what a run checks: None or a
    floating scalar tensor, finite, with a gradient for the student's outputs when it
    depends on them. Returns the value. Raises ``AssertionError`` naming what broke.

    Args:
        loss: A new loss (``setup`` is called here).
        ctx: The batch to call it on (default: a random one, as described).
        student_features: Width of the student's features (``setup``'s first argument).
        knowledge_dim: The encoder's ``dim`` (``None``: no knowledge vectors).
        num_classes: Classes of the random batch.
        batch: Rows of the random batch.

    Returns:
        The loss's value (``None`` or a scalar tensor), after ``backward()``.

    Raises:
        AssertionError: A contract is broken (the message a run would print).

    Examples:
        >>> from cdkd_core.plugin_api import check_loss
        >>> from cdkd_core.testing import make_host
        >>> kd = make_host().get("losses", "kd").from_params({"temperature": 2.0})
        >>> value = check_loss(kd)
        >>> value.shape, value.requires_grad
        (torch.Size([]), True)
    """
    import torch

    from cdkd_core.components import contracts
    from cdkd_core.components.loss import BatchContext

    def run() -> Any:
        loss.setup(student_features, knowledge_dim)
        context = ctx
        if context is None:
            gen = torch.Generator().manual_seed(0)
            labels = torch.arange(batch) % num_classes
            labelled = torch.arange(batch) % 2 == 0
            context = BatchContext(
                domain="test",
                task="test",
                student_logits=torch.randn(batch, num_classes, generator=gen).requires_grad_(),
                student_features=torch.randn(
                    batch, student_features, generator=gen
                ).requires_grad_(),
                labels=torch.where(labelled, labels, torch.full_like(labels, -1)),
                labelled=labelled,
                teacher_logits=torch.randn(batch, num_classes, generator=gen),
                teacher_features=torch.randn(batch, 2 * student_features, generator=gen),
                knowledge=(
                    None
                    if knowledge_dim is None
                    else torch.randn(batch, knowledge_dim, generator=gen)
                ),
            )
        value = loss(context)
        contracts.check_loss_value(loss, value)
        contracts.check_loss_finite(loss, value)
        if value is not None and value.requires_grad:
            value.backward()
        return value

    return _asserting(run)


def check_architecture(
    arch: Any,
    inputs: Any = None,
    *,
    num_classes: int = 3,
    stem_width: int = 16,
) -> None:
    """Build what ``arch`` provides and check what a run checks, on ``inputs`` (default:
    ``torch.randn(4, 13)``, a table of 13 columns): a stem (for its first modality) maps
    them to ``[N, width]`` (the trunk's ``in_features`` when it is a trunk too, else
    ``stem_width``), a trunk declares ``in_features``/``out_features`` and maps
    ``[N, in_features]`` to ``[N, out_features]``, a head gives ``[N, num_classes]``.
    Raises ``AssertionError`` naming what broke.

    Args:
        arch: An architecture (built with its params).
        inputs: A batch for its stem (its first modality's), e.g. an image batch.
        num_classes: Classes of the head checked.
        stem_width: The stem's output width when ``arch`` provides no trunk.

    Raises:
        AssertionError: A contract is broken (the message a run would print).

    Examples:
        >>> import torch
        >>> from cdkd_core.plugin_api import check_architecture
        >>> from cdkd_core.testing import make_host
        >>> mlp = make_host().get("architectures", "mlp").from_params({"width": 16})
        >>> check_architecture(mlp)  # a stem over 13 columns, the trunk, a head
        >>> check_architecture(mlp, torch.randn(4, 7), num_classes=5)
    """
    import torch

    from cdkd_core.components import contracts
    from cdkd_core.components.slot import NetworkSlot

    x = torch.randn(4, 13) if inputs is None else inputs

    def run() -> None:
        width, out = stem_width, stem_width
        with torch.no_grad():
            if arch.provides_trunk:
                trunk = arch.build_trunk()
                width, out = contracts.check_trunk(arch, trunk)
                trunk.eval()
                contracts.check_trunk_output(arch, trunk(torch.randn(len(x), width)), len(x), out)
            if arch.modalities:
                slot = NetworkSlot(
                    name="test",
                    space="test",
                    modality=arch.modalities[0],
                    task="test",
                    num_classes=num_classes,
                    input_shape=tuple(int(n) for n in x.shape[1:]),
                    input_dtype=str(x.dtype).removeprefix("torch."),
                )
                stem = arch.build_stem_for(slot, width)
                stem.eval()
                contracts.check_stem_output(arch, stem(x), len(x), width)
            head = arch.build_head(out, num_classes)
            head.eval()
            contracts.check_head_output(arch, head(torch.randn(len(x), out)), len(x), num_classes)

    _asserting(run)


#: Largest student view (bytes of the train split's) that :func:`check_domain` looks through
#: for test examples repeated in train.
_SHARED_ROWS_BYTES = 2**28


def _split_problem(data: Any, name: str) -> str | None:
    """What is wrong with split ``name`` of ``data`` (a DomainData), or None."""
    import torch

    from cdkd_core.components.domain import Split

    split = data.splits.get(name)
    if not isinstance(split, Split):
        found = "missing" if split is None else f"a {type(split).__name__}"
        return f"its {name} split is {found}; expected a Split"
    views = {"teacher_x": split.teacher_x, "student_x": split.student_x, "y": split.y}
    for view, x in views.items():
        if not isinstance(x, torch.Tensor):
            return f"its {name} split's {view} is a {type(x).__name__}; expected a tensor"
    if len(split.y) == 0:
        return f"its {name} split is empty"
    lengths = {view: len(x) for view, x in views.items()}
    if len(set(lengths.values())) > 1:
        return f"its {name} split's views and labels differ in length: {lengths}"
    y = split.y
    if y.is_floating_point() or y.dtype == torch.bool or y.dim() != 1:
        return (
            f"its {name} split's labels are {y.dtype} of shape {list(y.shape)}; expected [N] ints"
        )
    low, high = int(y.min()), int(y.max())
    if low < 0 or high >= len(data.classes):
        return (
            f"its {name} split has labels in {low}..{high}, outside 0..{len(data.classes) - 1} "
            f"({len(data.classes)} classes)"
        )
    for view in ("teacher_x", "student_x"):
        x = views[view]
        if x.is_floating_point() and not bool(torch.isfinite(x).all()):
            return f"its {name} split's {view} has NaN or infinite values (a run refuses them)"
    return None


def _difference(first: Any, second: Any) -> str | None:
    """Where two loads' DomainData differ (None: they are equal)."""
    import dataclasses

    import torch

    for f in dataclasses.fields(first):
        a, b = getattr(first, f.name), getattr(second, f.name)
        if f.name == "splits":
            for name in sorted(set(a) | set(b)):
                if name not in a or name not in b:
                    return f"the {name} split is in one load only"
                for view in ("teacher_x", "student_x", "y"):
                    x, z = getattr(a[name], view), getattr(b[name], view)
                    same = x.shape == z.shape and x.dtype == z.dtype
                    if not (same and torch.equal(x, z)):
                        return f"the {name} split's {view} differs"
        else:
            try:
                differs = bool(a != b)
            except Exception:  # values without a plain equality (arrays): not compared
                differs = False
            if differs:
                return f"{f.name} differs ({a!r} vs {b!r})"
    return None


def _shared_rows(data: Any) -> tuple[int, int] | None:
    """How many test examples repeat a train example exactly (student view), of how many;
    None when the train split's student view is too large to look through cheaply."""
    train, test = data.splits["train"].student_x, data.splits["test"].student_x
    if train.numel() * train.element_size() > _SHARED_ROWS_BYTES:
        return None

    def rows(x: Any) -> list[bytes]:
        flat = x.detach().reshape(len(x), -1).contiguous().cpu().numpy()
        return [row.tobytes() for row in flat]

    seen = set(rows(train))
    return sum(row in seen for row in rows(test)), len(test)


def check_domain(
    domain: Any,
    seed: int = 0,
    *,
    params: Mapping[str, Any] | None = None,
    max_shared: float = 0.0,
) -> Any:
    """Load ``domain`` and check what a run relies on: ``load(seed)`` returns a
    :class:`~cdkd_core.components.domain.DomainData` whose train, val and test splits are
    non-empty :class:`~cdkd_core.components.domain.Split` s, teacher view, student view and
    labels of one length, labels in ``0..len(classes)-1``, floating views finite, metrics
    known (:mod:`cdkd_core.metrics`); a second load with the same seed (a new instance)
    gives equal data; and no test example is repeated exactly (student view) in train —
    at most ``max_shared`` of the test split may be (a look skipped where the train split's
    student view is over 256 MiB). Returns the data. Raises ``AssertionError`` naming what
    broke.

    Args:
        domain: A domain class (built with ``params``) or instance.
        seed: The run's seed given to ``load``.
        params: The domain's params when ``domain`` is a class (default: none).
        max_shared: The share of test examples that may repeat a train example exactly
            (for raw data with duplicate rows that the domain keeps).

    Returns:
        What ``load(seed)`` returned.

    Raises:
        AssertionError: A contract is broken (the message a run would print).

    Examples:
        >>> from cdkd_core.plugin_api import check_domain
        >>> from cdkd_core.testing import make_host
        >>> data = check_domain(make_host().get("domains", "sklearn.iris"))
        >>> {name: len(split) for name, split in data.splits.items()}
        {'train': 90, 'val': 30, 'test': 30}
    """
    from cdkd_core.components import contracts
    from cdkd_core.components.domain import SPLITS
    from cdkd_core.metrics import METRICS

    instance = domain.from_params(dict(params or {})) if isinstance(domain, type) else domain

    def run() -> Any:
        def broke(problem: str) -> contracts.ContractError:
            return contracts.ContractError("domains", instance, f"load(seed={seed}): {problem}")

        data = instance.load(seed)
        contracts.check_domain_data(instance, data, seed)
        for name in SPLITS:
            problem = _split_problem(data, name)
            if problem:
                raise broke(problem)
        for attr in ("modality", "task"):
            value = getattr(data, attr)
            if not isinstance(value, str) or not value:
                raise broke(f"its {attr} is {value!r}; expected a non-empty string")
        unknown = [m for m in data.metrics if m not in METRICS]
        if unknown:
            raise broke(f"unknown metric(s) {unknown}; known: {sorted(METRICS)}")
        again = type(instance)(instance.config).load(seed)
        contracts.check_domain_data(instance, again, seed)
        difference = _difference(data, again)
        if difference:
            raise broke(
                f"two loads with one seed differ: {difference}; expected the same data for "
                "a seed (fix the split with a seed of its own, e.g. SplitConfig.split_seed)"
            )
        shared = _shared_rows(data)
        if shared is not None and shared[0] > max_shared * shared[1]:
            raise broke(
                f"{shared[0]} of {shared[1]} test examples repeat a train example exactly "
                "(student view); an example (or a copy of it) must sit in one split only"
            )
        return data

    return _asserting(run)


def _tiny_net(features: int, width: int, num_classes: int) -> Any:
    """A stems + trunk + heads network over one input space and task, both ``"test"``."""
    from torch import nn

    from cdkd_core.nets.network import MultiDomainNet

    trunk = nn.Sequential(nn.Linear(width, width), nn.ReLU())
    return MultiDomainNet(
        {"test": nn.Linear(features, width)}, trunk, {"test": nn.Linear(width, num_classes)}
    )


def _feedback_context(
    strategy: Any, features: int, num_classes: int, examples: int, refuse: Callable[..., Any]
) -> Any:
    """A round's end on one random source domain (train, val and, where the strategy asks
    for one, quiz splits; no test split), with a tiny teacher and student."""
    import torch
    import torch.nn.functional as F

    from cdkd_core.components.domain import Split
    from cdkd_core.components.feedback import FeedbackContext, FeedbackDomain

    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)

    def split(n: int) -> Split:
        return Split.single_view(
            torch.randn(n, features, generator=gen), torch.arange(n) % num_classes
        )

    domain = FeedbackDomain(
        name="test",
        role="source",
        task="test",
        space="test",
        num_classes=num_classes,
        train=split(examples),
        val=split(examples // 2),
        quiz=split(examples // 2) if strategy.needs_quiz else None,
        labelled=torch.ones(examples, dtype=torch.bool),
    )
    teacher, student = _tiny_net(features, 8, num_classes), _tiny_net(features, 4, num_classes)

    @torch.no_grad()
    def predict(model: Any, name: str, split_name: str) -> torch.Tensor:
        if split_name not in ("train", "val", "quiz"):
            refuse(f"asked ctx.predict for the {split_name!r} split of {name!r}")
        chosen = getattr(domain, split_name)
        if chosen is None:
            raise ValueError(f"domain {name!r} has no {split_name} split")
        model.eval()
        return model(chosen.student_x, "test", "test")

    def finetune(batches: Any, epochs: int, lr: float) -> None:
        optimizer = torch.optim.Adam(teacher.parameters(), lr=lr)
        teacher.train()
        for _ in range(epochs):
            for name, (data, weights) in batches.items():
                if len(weights) != len(data):
                    refuse(
                        f"passed finetune_teacher {len(weights)} weights for the {len(data)} "
                        f"examples of {name!r}; expected one weight per example"
                    )
                losses = F.cross_entropy(
                    teacher(data.teacher_x, "test", "test"), data.y, reduction="none"
                )
                optimizer.zero_grad()
                (losses * weights).mean().backward()
                optimizer.step()

    val = {"test": {"teacher": {"accuracy": 0.5}, "student": {"accuracy": 0.5}}}
    return FeedbackContext(
        round=0,
        teacher=teacher,
        student=student,
        domains={"test": domain},
        val_results=val,
        predict=predict,
        finetune_teacher=finetune,
    )


def _weights(model: Any) -> dict[str, Any]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _changed(before: dict[str, Any], model: Any) -> bool:
    import torch

    after = model.state_dict()
    return any(not torch.equal(before[k], after[k]) for k in before if k in after)


def _live_round(strategy: Any, context: Any, broke: Callable[[str], Exception]) -> None:
    """A live strategy's ``begin_round`` and two ``student_step`` calls per domain (the
    student left as it was), then its ``state_dict()`` through a checkpoint into a new
    instance."""
    import tempfile

    import torch

    from cdkd_core.components.feedback import StudentStep
    from cdkd_core.run.checkpoint import load_checkpoint, save_checkpoint

    teacher, student = context.teacher, context.student
    strategy.begin_round(teacher, context.domains)
    for domain in context.domains.values():
        rows = min(8, len(domain.train))
        for start in (0, rows):
            part = domain.train.subset(torch.arange(start, start + rows) % len(domain.train))
            before = _weights(student)
            with torch.no_grad():
                logits = student(part.student_x, domain.space, domain.task)
            step = StudentStep(
                domain=domain,
                teacher_x=part.teacher_x,
                labels=part.y,
                labelled=torch.ones(len(part), dtype=torch.bool),
                student_logits=logits,
                student=student,
                student_x=part.student_x,
            )
            strategy.student_step(teacher, step)
            if _changed(before, student):
                raise broke("student_step changed the student; it must leave it as it is")
    state = strategy.state_dict()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            save_checkpoint(Path(tmp), {"feedback": state})
            saved = load_checkpoint(Path(tmp))
        assert saved is not None
        restored = type(strategy)(strategy.config)
        restored.begin_round(copy.deepcopy(teacher), context.domains)
        restored.load_state_dict(saved["feedback"])
    except Exception as exc:
        raise broke(
            "state_dict() does not survive a checkpoint (saved, read back and loaded into "
            f"a new instance after begin_round): {type(exc).__name__}: {exc}; keep "
            "tensors, numbers, strings, lists and dicts only"
        ) from exc


def check_feedback(
    strategy: Any,
    ctx: Any = None,
    *,
    features: int = 6,
    num_classes: int = 3,
    examples: int = 24,
) -> bool:
    """Run ``strategy`` through a round as a run does, on ``ctx`` (by default a tiny one:
    one source domain of ``examples`` random rows with val and, where the strategy asks for
    one, quiz splits, no test split; a small stems + trunk + heads teacher and student),
    and check what a run relies on: a live strategy's ``begin_round`` and two
    ``student_step`` calls leave the student as it was, and its ``state_dict()`` survives a
    checkpoint (saved, read back and loaded into a new instance); ``after_round`` reads no
    test data (``ctx.predict`` refuses it), returns ``True``/``False`` (or ``None``) and
    not, say, a new teacher (the run keeps ``ctx.teacher``: change it in place); the
    teacher keeps its parameter names and shapes and finite weights; a teacher changed by
    ``after_round`` is reported as changed (``True``), and one with
    ``updates_teacher = False`` is not changed at all. Returns what ``after_round`` said.
    Raises ``AssertionError`` naming what broke.

    Args:
        strategy: A new feedback strategy.
        ctx: The round's :class:`~cdkd_core.components.feedback.FeedbackContext` (default:
            the tiny one described; its domains also serve the live calls).
        features: Input width of the default context's domain.
        num_classes: Classes of the default context's domain.
        examples: Rows of the default context's train split (val and quiz: half).

    Returns:
        Whether ``after_round`` changed the teacher, as it said.

    Raises:
        AssertionError: A contract is broken (the message a run would print).

    Examples:
        >>> from cdkd_core.plugin_api import check_feedback
        >>> from cdkd_core.testing import make_host
        >>> host = make_host()
        >>> check_feedback(host.get("feedback", "hard_examples").from_params({"epochs": 1}))
        True
        >>> check_feedback(host.get("feedback", "mutual")())  # changes it beside the student
        False
    """
    import torch

    from cdkd_core.components import contracts

    def broke(problem: str) -> contracts.ContractError:
        return contracts.ContractError("feedback", strategy, problem)

    def refuse(problem: str) -> None:
        test = "'test'" in problem
        raise broke(f"{problem}; test data never reach a feedback strategy" if test else problem)

    def run() -> bool:
        context = ctx
        if context is None:
            context = _feedback_context(strategy, features, num_classes, examples, refuse)
        teacher = context.teacher
        original = _weights(teacher)
        if strategy.live_teacher:
            _live_round(strategy, context, broke)
        shapes = {k: (v.shape, v.dtype) for k, v in teacher.state_dict().items()}
        before_round = _weights(teacher)
        value = strategy.after_round(context)
        if value is not None and not isinstance(value, bool) and type(value).__name__ != "bool_":
            raise broke(
                f"after_round returned a {type(value).__name__}; expected True or False "
                "(whether it changed ctx.teacher, which it changes in place: the run keeps "
                "ctx.teacher and ignores a returned model)"
            )
        state = teacher.state_dict()
        if {k: (v.shape, v.dtype) for k, v in state.items()} != shapes:
            raise broke(
                "after_round changed the teacher's parameter names or shapes; the run "
                "reloads and saves the teacher as it was built (change its weights only)"
            )
        if not all(bool(torch.isfinite(v).all()) for v in state.values() if v.is_floating_point()):
            raise broke("the teacher's weights are not finite after the strategy ran")
        if _changed(before_round, teacher) and not value and not strategy.live_teacher:
            raise broke(
                "after_round changed the teacher but returned False: its knowledge would "
                "not be extracted again (return True)"
            )
        if not strategy.updates_teacher and _changed(original, teacher):
            raise broke(
                "changed the teacher's weights, but its updates_teacher is False (a run "
                "pairs it with teachers that cannot change)"
            )
        return bool(value)

    return _asserting(run)
