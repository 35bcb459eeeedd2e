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
:func:`check_feedback`. Each is a sequence of named checks; :func:`component_checks` yields
them one by one and :func:`parametrize_with_checks` makes one test of each, for every
component of a plugin, as scikit-learn's ``parametrize_with_checks`` does::

    @parametrize_with_checks(["whiten"], plugins=[("whiten", cdkd_whiten)])
    def test_components_keep_their_contracts(component, check):
        check(component)

What a plugin's tests would otherwise take from the core's inside:
:func:`stem_architecture`, :func:`prepare_domains`, :func:`export_run`,
:func:`load_run_student`, :func:`export_formats`.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
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


# -- what a plugin's tests need from the core's inside ---------------------------------------


def stem_architecture(
    model: Mapping[str, Any] | Any, modality: str, host: PluginHost, view: str
) -> Any:
    """The stem a run would build for ``modality`` on the teacher or student side
    (``view``): the model's choice under ``stems``, else the architecture whose
    ``default_for`` lists ``"<modality>:<view>"``, else one listing ``"<modality>"``.

    Args:
        model: The ``teacher`` or ``student`` entry of a config (a dict, validated here).
        modality: The input modality (``"tabular"``, ``"image"``, ``"series"``, ``"text"``).
        host: The plugin host whose architectures are looked through.
        view: ``"teacher"`` or ``"student"``.

    Returns:
        The architecture built with its params.

    Raises:
        ConfigError: No architecture is a default stem for ``modality``.

    Examples:
        >>> from cdkd_core.testing import make_host, stem_architecture
        >>> model = {"trunk": {"name": "mlp"}, "stems": {"image": {"name": "cnn"}}}
        >>> stem_architecture(model, "image", make_host(), "student").name
        'cnn'
        >>> stem_architecture({"trunk": {"name": "mlp"}}, "tabular", make_host(), "teacher").name
        'mlp'
    """
    from cdkd_core.config.models import ModelSpec
    from cdkd_core.nets.assembly import stem_architecture as chosen_stem

    spec = model if isinstance(model, ModelSpec) else ModelSpec.model_validate(dict(model))
    return chosen_stem(spec, modality, host, view)


def prepare_domains(config: Any, host: PluginHost, quiz_fraction: float = 0.0) -> list[Any]:
    """Load and prepare the domains of ``config`` as a run does before training: each
    domain's splits standardised, the domains of one task given one class order.

    Args:
        config: A loaded config (:func:`cdkd_core.load_config`).
        host: The plugin host the domains come from.
        quiz_fraction: The share of each source's train split held out as a quiz split
            (what a feedback strategy that asks for one gets).

    Returns:
        One prepared domain per configured domain, in the config's order (``name``,
        ``splits``, ``classes``, ...).

    Examples:
        >>> from cdkd_core import load_config
        >>> from cdkd_core.testing import make_host, prepare_domains, tiny_pipeline_config
        >>> host = make_host()
        >>> config = load_config(tiny_pipeline_config(), host=host)
        >>> [domain.name for domain in prepare_domains(config, host)]
        ['sklearn.wine', 'sklearn.breast_cancer']
    """
    from cdkd_core.data.preparation import prepare_domains as prepare

    return prepare(config, host, quiz_fraction=quiz_fraction)


def export_formats() -> dict[str, str]:
    """The formats ``cdkd export`` writes, each with the suffix of its files.

    Returns:
        Format name -> file suffix.

    Examples:
        >>> from cdkd_core.testing import export_formats
        >>> export_formats()
        {'onnx': '.onnx', 'torchscript': '.pt', 'export': '.pt2'}
    """
    from cdkd_core.artifacts.export_formats import FORMATS

    return dict(FORMATS)


def export_run(run_dir: Path, formats: Iterable[str] = ("onnx",), *, host: PluginHost) -> Any:
    """Export the student of a finished run as ``cdkd export`` does: one file per domain
    and format under ``run_dir/export/``, with ``manifest.json``.

    Args:
        run_dir: The run's directory.
        formats: Names of :func:`export_formats`.
        host: The plugin host the run's components come from.

    Returns:
        The manifest (what ``manifest.json`` holds), as a dict.

    Raises:
        CdkdError: The run cannot be exported (not finished, a format unknown, an export
            that does not reproduce the student).

    Examples:
        ```python
        def test_exports_to_every_format(run_tiny_pipeline, cdkd_host):
            result = run_tiny_pipeline()
            manifest = export_run(result.run_dir, list(export_formats()), host=cdkd_host)
            assert (result.run_dir / "export" / "manifest.json").is_file()
        ```
    """
    from cdkd_core.artifacts.export import export_run as export

    return export(Path(run_dir), list(formats), host=host)


def load_run_student(run_dir: Path, host: PluginHost) -> Any:
    """A finished run's student, rebuilt from the run's ``config.yaml`` and ``layout.json``
    with ``student.safetensors`` loaded (what ``cdkd export`` traces).

    Args:
        run_dir: The run's directory.
        host: The plugin host the run's components come from.

    Returns:
        The student: ``net`` (the network), ``layout`` (the run's ``layout.json``),
        ``domain_module(domain)`` (one domain's raw-input-to-logits module, in eval mode).

    Examples:
        ```python
        def test_the_student_comes_back(run_tiny_pipeline, cdkd_host):
            result = run_tiny_pipeline()
            student = load_run_student(result.run_dir, cdkd_host)
            assert student.predicts("sklearn.wine")
        ```
    """
    from cdkd_core.artifacts.export import load_run_student as load

    return load(Path(run_dir), host)


# -- contract checks: named checks of each kind -----------------------------------------------
#
# Each kind's contract is a sequence of named checks (``check_splits_are_disjoint``, ...). The
# function of a kind (``check_domain`` ...) runs them all in order on one call of the
# component; ``component_checks`` yields them one by one and ``parametrize_with_checks`` turns
# them into one test each, as scikit-learn's ``parametrize_with_checks`` does for estimators.


def _asserting(check: Callable[[], Any]) -> Any:
    """Run a contract check; a broken contract becomes an ``AssertionError`` (same text)."""
    from cdkd_core.components.contracts import ContractError

    try:
        return check()
    except ContractError as exc:
        raise AssertionError(str(exc)) from None


def _fresh(component: Any) -> Any:
    """A new instance of ``component``'s class with a copy of its config (a check that
    fits, sets up or runs a component works on one of its own)."""
    return type(component)(component.config.model_copy(deep=True))


# -- encoders


def _sample_features() -> tuple[dict[str, Any], dict[str, Any]]:
    """Teacher features of two domains (60 and 40 rows of 48 random columns, room for an
    encoder's default dim) and labels: what the named encoder checks fit on unless given
    ``features`` and ``labels``."""
    import torch

    gen = torch.Generator().manual_seed(0)
    features = {"a": torch.randn(60, 48, generator=gen), "b": torch.randn(40, 48, generator=gen)}
    return features, {"a": torch.arange(60) % 3, "b": torch.arange(40) % 2}


def _encoder_vectors(encoder: Any, features: Mapping[str, Any]) -> dict[str, Any]:
    """Each domain's vectors, each checked as a run checks them (floating, finite,
    ``[N, dim]``)."""
    from cdkd_core.components import contracts

    vectors = {}
    for domain, x in features.items():
        vectors[domain] = encoder.transform(x, domain)
        contracts.check_encoder_output(encoder, x, vectors[domain], domain)
    return vectors


def _encoder_restores(
    encoder: Any, features: Mapping[str, Any], vectors: Mapping[str, Any], atol: float
) -> None:
    """The state saved and loaded into a new instance transforms as ``encoder`` did."""
    import tempfile

    import torch

    from cdkd_core.components import contracts

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
    from cdkd_core.components import contracts

    def run() -> dict[str, Any]:
        encoder.fit(dict(features), dict(labels))
        contracts.check_encoder_dim(encoder)
        contracts.check_encoder_state(encoder)
        vectors = _encoder_vectors(encoder, features)
        _encoder_restores(encoder, features, vectors, atol)
        return vectors

    return _asserting(run)


def _fitted_encoder(
    encoder: Any,
    features: Mapping[str, Any] | None = None,
    labels: Mapping[str, Any] | None = None,
    **_: Any,
) -> tuple[Any, Mapping[str, Any]]:
    """A fresh copy of ``encoder`` fitted on ``features``/``labels`` (default: the sample
    ones), and the features."""
    if features is None or labels is None:
        features, labels = _sample_features()
    fitted = _fresh(encoder)
    fitted.fit(dict(features), dict(labels))
    return fitted, features


def _check_encoder_dim(encoder: Any, **options: Any) -> None:
    from cdkd_core.components import contracts

    contracts.check_encoder_dim(_fitted_encoder(encoder, **options)[0])


def _check_encoder_state(encoder: Any, **options: Any) -> None:
    from cdkd_core.components import contracts

    contracts.check_encoder_state(_fitted_encoder(encoder, **options)[0])


def _check_transform_output(encoder: Any, **options: Any) -> None:
    _encoder_vectors(*_fitted_encoder(encoder, **options))


def _check_state_restores_transform(encoder: Any, *, atol: float = 1e-5, **options: Any) -> None:
    fitted, features = _fitted_encoder(encoder, **options)
    _encoder_restores(fitted, features, _encoder_vectors(fitted, features), atol)


# -- losses


def _loss_value(
    loss: Any,
    ctx: Any = None,
    *,
    student_features: int = 8,
    knowledge_dim: int | None = 4,
    num_classes: int = 3,
    batch: int = 16,
) -> Any:
    """Set ``loss`` up and call it on ``ctx`` (default: a random batch); its value."""
    import torch

    from cdkd_core.components.loss import BatchContext

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
            student_features=torch.randn(batch, student_features, generator=gen).requires_grad_(),
            labels=torch.where(labelled, labels, torch.full_like(labels, -1)),
            labelled=labelled,
            teacher_logits=torch.randn(batch, num_classes, generator=gen),
            teacher_features=torch.randn(batch, 2 * student_features, generator=gen),
            knowledge=(
                None if knowledge_dim is None else torch.randn(batch, knowledge_dim, generator=gen)
            ),
        )
    return loss(context)


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
    from cdkd_core.components import contracts

    def run() -> Any:
        value = _loss_value(
            loss,
            ctx,
            student_features=student_features,
            knowledge_dim=knowledge_dim,
            num_classes=num_classes,
            batch=batch,
        )
        contracts.check_loss_value(loss, value)
        contracts.check_loss_finite(loss, value)
        if value is not None and value.requires_grad:
            value.backward()
        return value

    return _asserting(run)


def _check_loss_value(loss: Any, **options: Any) -> None:
    from cdkd_core.components import contracts

    fresh = _fresh(loss)
    contracts.check_loss_value(fresh, _loss_value(fresh, **options))


def _check_loss_is_finite(loss: Any, **options: Any) -> None:
    from cdkd_core.components import contracts

    fresh = _fresh(loss)
    value = _loss_value(fresh, **options)
    contracts.check_loss_value(fresh, value)
    contracts.check_loss_finite(fresh, value)


def _check_loss_backpropagates(loss: Any, **options: Any) -> None:
    from cdkd_core.components import contracts

    fresh = _fresh(loss)
    value = _loss_value(fresh, **options)
    contracts.check_loss_value(fresh, value)
    if value is not None and value.requires_grad:
        value.backward()


# -- architectures


def _trunk_widths(arch: Any, rows: int) -> tuple[int, int]:
    """Build ``arch``'s trunk and check it (declared widths, ``[N, out_features]``); its
    ``in_features`` and ``out_features``."""
    import torch

    from cdkd_core.components import contracts

    trunk = arch.build_trunk()
    width, out = contracts.check_trunk(arch, trunk)
    trunk.eval()
    contracts.check_trunk_output(arch, trunk(torch.randn(rows, width)), rows, out)
    return width, out


def _check_stem(arch: Any, x: Any, width: int, num_classes: int) -> None:
    """Build ``arch``'s stem for its first modality over ``x``'s shape and check that it
    maps ``x`` to ``[N, width]``."""
    from cdkd_core.components import contracts
    from cdkd_core.components.slot import NetworkSlot

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


def _check_head(arch: Any, rows: int, width: int, num_classes: int) -> None:
    """Build ``arch``'s head over ``width`` features and check it gives ``[N, classes]``."""
    import torch

    from cdkd_core.components import contracts

    head = arch.build_head(width, num_classes)
    head.eval()
    contracts.check_head_output(arch, head(torch.randn(rows, width)), rows, num_classes)


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

    x = torch.randn(4, 13) if inputs is None else inputs

    def run() -> None:
        width, out = stem_width, stem_width
        with torch.no_grad():
            if arch.provides_trunk:
                width, out = _trunk_widths(arch, len(x))
            if arch.modalities:
                _check_stem(arch, x, width, num_classes)
            _check_head(arch, len(x), out, num_classes)

    _asserting(run)


def _sample_inputs(modality: str) -> Any:
    """A batch of 4 for a stem of ``modality``, what the named architecture checks use
    unless given ``inputs``: rows of 13 columns (``tabular``, as :func:`check_architecture`
    uses), windows of 20 steps x 4 features (``series``), 1 x 24 x 24 images (``image``),
    16 token ids under 100 (``text``)."""
    import torch

    gen = torch.Generator().manual_seed(0)
    if modality == "series":
        return torch.randn(4, 20, 4, generator=gen)
    if modality == "image":
        return torch.randn(4, 1, 24, 24, generator=gen)
    if modality == "text":
        return torch.randint(0, 100, (4, 16), generator=gen)
    return torch.randn(4, 13, generator=gen)


def _architecture_inputs(arch: Any, inputs: Any) -> Any:
    return inputs if inputs is not None else _sample_inputs(next(iter(arch.modalities), ""))


def _check_trunk(arch: Any, inputs: Any = None, **_: Any) -> None:
    import torch

    with torch.no_grad():
        _trunk_widths(arch, len(_architecture_inputs(arch, inputs)))


def _check_stem_output(
    arch: Any, inputs: Any = None, *, num_classes: int = 3, stem_width: int = 16
) -> None:
    import torch

    x = _architecture_inputs(arch, inputs)
    with torch.no_grad():
        width = _trunk_widths(arch, len(x))[0] if arch.provides_trunk else stem_width
        _check_stem(arch, x, width, num_classes)


def _check_head_output(
    arch: Any, inputs: Any = None, *, num_classes: int = 3, stem_width: int = 16
) -> None:
    import torch

    rows = len(_architecture_inputs(arch, inputs))
    with torch.no_grad():
        out = _trunk_widths(arch, rows)[1] if arch.provides_trunk else stem_width
        _check_head(arch, rows, out, num_classes)


# -- domains

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


def _domain_broke(instance: Any, seed: int, problem: str) -> Exception:
    """The contract error of a domain's ``load(seed)``."""
    from cdkd_core.components.contracts import ContractError

    return ContractError("domains", instance, f"load(seed={seed}): {problem}")


def _splits_are_well_formed(instance: Any, data: Any, seed: int, max_shared: float) -> None:
    """Train, val and test: non-empty splits, views and labels of one length, labels in
    range, floating views finite."""
    from cdkd_core.components.domain import SPLITS

    for name in SPLITS:
        problem = _split_problem(data, name)
        if problem:
            raise _domain_broke(instance, seed, problem)


def _modality_and_task_are_named(instance: Any, data: Any, seed: int, max_shared: float) -> None:
    """``modality`` and ``task`` non-empty strings."""
    for attr in ("modality", "task"):
        value = getattr(data, attr)
        if not isinstance(value, str) or not value:
            raise _domain_broke(
                instance, seed, f"its {attr} is {value!r}; expected a non-empty string"
            )


def _metrics_are_known(instance: Any, data: Any, seed: int, max_shared: float) -> None:
    """Every metric one of :mod:`cdkd_core.metrics`."""
    from cdkd_core.metrics import METRICS

    unknown = [m for m in data.metrics if m not in METRICS]
    if unknown:
        raise _domain_broke(
            instance, seed, f"unknown metric(s) {unknown}; known: {sorted(METRICS)}"
        )


def _load_is_reproducible(instance: Any, data: Any, seed: int, max_shared: float) -> None:
    """A new instance's load with the same seed gives equal data."""
    from cdkd_core.components import contracts

    again = type(instance)(instance.config).load(seed)
    contracts.check_domain_data(instance, again, seed)
    difference = _difference(data, again)
    if difference:
        raise _domain_broke(
            instance,
            seed,
            f"two loads with one seed differ: {difference}; expected the same data for "
            "a seed (fix the split with a seed of its own, e.g. SplitConfig.split_seed)",
        )


def _splits_are_disjoint(instance: Any, data: Any, seed: int, max_shared: float) -> None:
    """No test example (student view) repeated exactly in train, beyond ``max_shared``."""
    shared = _shared_rows(data)
    if shared is not None and shared[0] > max_shared * shared[1]:
        raise _domain_broke(
            instance,
            seed,
            f"{shared[0]} of {shared[1]} test examples repeat a train example exactly "
            "(student view); an example (or a copy of it) must sit in one split only",
        )


#: The named domain checks after ``load`` (checked to return a DomainData), in the order
#: :func:`check_domain` runs them; ``True``: the check reads the splits, so its own test
#: checks them first.
_DOMAIN_CHECKS: tuple[tuple[str, Callable[[Any, Any, int, float], None], bool], ...] = (
    ("check_splits_are_well_formed", _splits_are_well_formed, False),
    ("check_modality_and_task_are_named", _modality_and_task_are_named, False),
    ("check_metrics_are_known", _metrics_are_known, False),
    ("check_load_is_reproducible", _load_is_reproducible, True),
    ("check_splits_are_disjoint", _splits_are_disjoint, True),
)


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

    instance = domain.from_params(dict(params or {})) if isinstance(domain, type) else domain

    def run() -> Any:
        data = instance.load(seed)
        contracts.check_domain_data(instance, data, seed)
        for _, check, _ in _DOMAIN_CHECKS:
            check(instance, data, seed, max_shared)
        return data

    return _asserting(run)


#: The last domain loaded by a named domain check: ``(domain, seed, data)``. The checks of
#: one domain run one after another, so they load it once between them.
_last_load: list[tuple[Any, int, Any]] = []


def _loaded(instance: Any, seed: int) -> Any:
    """``instance.load(seed)``, checked to be a DomainData; loaded once for the checks of
    one domain that run in a row."""
    from cdkd_core.components import contracts

    if _last_load and _last_load[0][0] is instance and _last_load[0][1] == seed:
        return _last_load[0][2]
    _last_load.clear()
    data = instance.load(seed)
    contracts.check_domain_data(instance, data, seed)
    _last_load.append((instance, seed, data))
    return data


def _domain_check(
    check: Callable[[Any, Any, int, float], None] | None, reads_splits: bool
) -> Callable[..., None]:
    """One named domain check as a function of the domain and :func:`check_domain`'s
    options (``params`` aside: the domain is built already)."""

    def run(domain: Any, seed: int = 0, *, max_shared: float = 0.0) -> None:
        data = _loaded(domain, seed)
        if reads_splits:
            _splits_are_well_formed(domain, data, seed, max_shared)
        if check is not None:
            check(domain, data, seed, max_shared)

    return run


# -- feedback strategies


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


@dataclasses.dataclass
class _Round:
    """What a feedback strategy's round left, for the checks to look at."""

    strategy: Any
    teacher: Any
    original: dict[str, Any]  # the teacher's weights before the round
    shapes: dict[str, Any]  # its parameter names, shapes and dtypes before after_round
    before_round: dict[str, Any]  # its weights right before after_round
    value: Any  # what after_round returned


def _feedback_broke(strategy: Any) -> Callable[[str], Exception]:
    from cdkd_core.components.contracts import ContractError

    def broke(problem: str) -> Exception:
        return ContractError("feedback", strategy, problem)

    return broke


def _feedback_context_for(
    strategy: Any, ctx: Any, features: int, num_classes: int, examples: int
) -> Any:
    """``ctx``, else the tiny round's end whose ``ctx.predict`` refuses test data."""
    if ctx is not None:
        return ctx
    broke = _feedback_broke(strategy)

    def refuse(problem: str) -> None:
        test = "'test'" in problem
        raise broke(f"{problem}; test data never reach a feedback strategy" if test else problem)

    return _feedback_context(strategy, features, num_classes, examples, refuse)


def _feedback_round(
    strategy: Any,
    ctx: Any = None,
    *,
    features: int = 6,
    num_classes: int = 3,
    examples: int = 24,
) -> _Round:
    """Run ``strategy`` through a round as a run does (a live strategy's calls, then
    ``after_round``) and keep what the checks look at."""
    context = _feedback_context_for(strategy, ctx, features, num_classes, examples)
    teacher = context.teacher
    original = _weights(teacher)
    if strategy.live_teacher:
        _live_round(strategy, context, _feedback_broke(strategy))
    shapes = {k: (v.shape, v.dtype) for k, v in teacher.state_dict().items()}
    before_round = _weights(teacher)
    value = strategy.after_round(context)
    return _Round(strategy, teacher, original, shapes, before_round, value)


def _after_round_says_whether(done: _Round) -> None:
    """``after_round`` returns True/False (or None), not, say, a new teacher."""
    value = done.value
    if value is not None and not isinstance(value, bool) and type(value).__name__ != "bool_":
        raise _feedback_broke(done.strategy)(
            f"after_round returned a {type(value).__name__}; expected True or False "
            "(whether it changed ctx.teacher, which it changes in place: the run keeps "
            "ctx.teacher and ignores a returned model)"
        )


def _teacher_keeps_its_shapes(done: _Round) -> None:
    """The teacher keeps its parameter names and shapes."""
    state = done.teacher.state_dict()
    if {k: (v.shape, v.dtype) for k, v in state.items()} != done.shapes:
        raise _feedback_broke(done.strategy)(
            "after_round changed the teacher's parameter names or shapes; the run "
            "reloads and saves the teacher as it was built (change its weights only)"
        )


def _teacher_stays_finite(done: _Round) -> None:
    """The teacher's weights stay finite."""
    import torch

    state = done.teacher.state_dict()
    if not all(bool(torch.isfinite(v).all()) for v in state.values() if v.is_floating_point()):
        raise _feedback_broke(done.strategy)(
            "the teacher's weights are not finite after the strategy ran"
        )


def _teacher_change_is_reported(done: _Round) -> None:
    """A teacher changed by ``after_round`` is reported as changed (a live strategy's
    teacher aside)."""
    strategy = done.strategy
    if _changed(done.before_round, done.teacher) and not done.value and not strategy.live_teacher:
        raise _feedback_broke(strategy)(
            "after_round changed the teacher but returned False: its knowledge would "
            "not be extracted again (return True)"
        )


def _updates_teacher_is_kept(done: _Round) -> None:
    """A strategy with ``updates_teacher = False`` leaves the teacher's weights alone."""
    if not done.strategy.updates_teacher and _changed(done.original, done.teacher):
        raise _feedback_broke(done.strategy)(
            "changed the teacher's weights, but its updates_teacher is False (a run "
            "pairs it with teachers that cannot change)"
        )


#: The named checks of a round's end, in the order :func:`check_feedback` runs them.
_FEEDBACK_CHECKS: tuple[tuple[str, Callable[[_Round], None]], ...] = (
    ("check_after_round_says_whether", _after_round_says_whether),
    ("check_teacher_keeps_its_shapes", _teacher_keeps_its_shapes),
    ("check_teacher_stays_finite", _teacher_stays_finite),
    ("check_teacher_change_is_reported", _teacher_change_is_reported),
    ("check_updates_teacher_is_kept", _updates_teacher_is_kept),
)


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

    def run() -> bool:
        done = _feedback_round(
            strategy, ctx, features=features, num_classes=num_classes, examples=examples
        )
        for _, check in _FEEDBACK_CHECKS:
            check(done)
        return bool(done.value)

    return _asserting(run)


def _check_live_round(
    strategy: Any, ctx: Any = None, *, features: int = 6, num_classes: int = 3, examples: int = 24
) -> None:
    fresh = _fresh(strategy)
    context = _feedback_context_for(fresh, ctx, features, num_classes, examples)
    _live_round(fresh, context, _feedback_broke(fresh))


def _round_check(check: Callable[[_Round], None]) -> Callable[..., None]:
    """One named check of a round's end, as a function of the strategy and
    :func:`check_feedback`'s options; it runs the round on a fresh copy."""

    def run(strategy: Any, ctx: Any = None, **options: Any) -> None:
        check(_feedback_round(_fresh(strategy), ctx, **options))

    return run


# -- one test per check ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _NamedCheck:
    """A named check of one kind: ``run(component, **options)`` raises what the contract
    check raises; ``applies(component)`` says whether the component has the part it checks."""

    name: str
    run: Callable[..., Any]
    applies: Callable[[Any], bool] = lambda component: True


def _named_checks(kind: str) -> tuple[_NamedCheck, ...]:
    """The named checks of ``kind``, in the order its ``check_*`` function runs them."""
    if kind == "domains":
        return (
            _NamedCheck("check_load_returns_domain_data", _domain_check(None, False)),
            *(
                _NamedCheck(name, _domain_check(check, reads))
                for name, check, reads in _DOMAIN_CHECKS
            ),
        )
    if kind == "architectures":
        return (
            _NamedCheck("check_trunk", _check_trunk, lambda arch: bool(arch.provides_trunk)),
            _NamedCheck(
                "check_stem_output", _check_stem_output, lambda arch: bool(arch.modalities)
            ),
            _NamedCheck("check_head_output", _check_head_output),
        )
    if kind == "encoders":
        return (
            _NamedCheck("check_encoder_dim", _check_encoder_dim),
            _NamedCheck("check_encoder_state", _check_encoder_state),
            _NamedCheck("check_transform_output", _check_transform_output),
            _NamedCheck("check_state_restores_transform", _check_state_restores_transform),
        )
    if kind == "losses":
        return (
            _NamedCheck("check_loss_value", _check_loss_value),
            _NamedCheck("check_loss_is_finite", _check_loss_is_finite),
            _NamedCheck("check_loss_backpropagates", _check_loss_backpropagates),
        )
    return (
        _NamedCheck("check_live_round", _check_live_round, lambda s: bool(s.live_teacher)),
        *(_NamedCheck(name, _round_check(check)) for name, check in _FEEDBACK_CHECKS),
    )


class _BoundCheck:
    """One named check with the options of its component: ``check(component)`` runs it,
    raising ``AssertionError`` with the text a run would print; ``__name__`` is its name."""

    def __init__(self, check: _NamedCheck, options: Mapping[str, Any]) -> None:
        self.check, self.options, self.__name__ = check, dict(options), check.name

    def __call__(self, component: Any) -> None:
        _asserting(lambda: self.check.run(component, **self.options))

    def __repr__(self) -> str:
        return self.__name__


def _kind_of(component: Any) -> str:
    """The kind (``"domains"`` ...) of a component instance."""
    from cdkd_core.components.architecture import Architecture
    from cdkd_core.components.domain import Domain
    from cdkd_core.components.encoder import KnowledgeEncoder
    from cdkd_core.components.feedback import FeedbackStrategy
    from cdkd_core.components.loss import Loss

    bases = {
        "domains": Domain,
        "architectures": Architecture,
        "encoders": KnowledgeEncoder,
        "losses": Loss,
        "feedback": FeedbackStrategy,
    }
    for kind, base in bases.items():
        if isinstance(component, base):
            return kind
    raise TypeError(
        f"{component!r} is not a component (a Domain, Architecture, KnowledgeEncoder, Loss "
        "or FeedbackStrategy instance)"
    )


def _check_function(kind: str) -> Callable[..., Any]:
    return {
        "domains": check_domain,
        "architectures": check_architecture,
        "encoders": check_encoder,
        "losses": check_loss,
        "feedback": check_feedback,
    }[kind]


def component_checks(
    component: Any, options: Mapping[str, Any] | None = None
) -> Iterator[tuple[Any, Callable[[Any], None]]]:
    """The named checks of ``component``'s kind, one ``(component, check)`` pair each:
    ``check(component)`` runs one part of the kind's contract check (what :func:`check_domain`
    and the others run in one call) on a copy of the component of its own, and raises
    ``AssertionError`` with the text a run would print; ``check.__name__`` is its name.
    Checks of a part the component lacks (the trunk of a stem-only architecture, the live
    calls of a strategy that only acts between rounds) are left out.

    The checks of each kind:

    - domains: ``check_load_returns_domain_data``, ``check_splits_are_well_formed``,
      ``check_modality_and_task_are_named``, ``check_metrics_are_known``,
      ``check_load_is_reproducible``, ``check_splits_are_disjoint``
    - architectures: ``check_trunk``, ``check_stem_output`` (on a batch of the first
      modality: 13 columns, 20 steps x 4 features, 1 x 24 x 24 images or 16 token ids,
      unless ``inputs`` is given), ``check_head_output``
    - encoders: ``check_encoder_dim``, ``check_encoder_state``, ``check_transform_output``,
      ``check_state_restores_transform`` (fitted on two random domains of 48 features unless
      ``features`` and ``labels`` are given)
    - losses: ``check_loss_value``, ``check_loss_is_finite``, ``check_loss_backpropagates``
    - feedback: ``check_live_round``, ``check_after_round_says_whether``,
      ``check_teacher_keeps_its_shapes``, ``check_teacher_stays_finite``,
      ``check_teacher_change_is_reported``, ``check_updates_teacher_is_kept``

    Args:
        component: A component instance (built with its params).
        options: Keyword arguments of the kind's ``check_*`` function for every check
            (``{"max_shared": 0.01}``, ``{"inputs": images}``, ``{"knowledge_dim": None}``;
            not ``params``).

    Yields:
        ``(component, check)`` pairs, in the order the kind's ``check_*`` function runs them.

    Raises:
        TypeError: ``component`` is not a component, or an option is not one of the
            kind's check function's.

    Examples:
        >>> from cdkd_core.testing import component_checks, make_host
        >>> kd = make_host().get("losses", "kd").from_params({"temperature": 2.0})
        >>> [check.__name__ for _, check in component_checks(kd)]
        ['check_loss_value', 'check_loss_is_finite', 'check_loss_backpropagates']
        >>> for component, check in component_checks(kd):
        ...     check(component)  # passes: returns None
    """
    kind = _kind_of(component)
    options = dict(options or {})
    accepted = list(inspect.signature(_check_function(kind)).parameters)[1:]
    unknown = sorted(set(options) - set(accepted) | set(options) & {"params"})
    if unknown:
        raise TypeError(
            f"unknown option(s) {unknown} for the checks of {component.name!r}; "
            f"choose from {[a for a in accepted if a != 'params']}"
        )
    for check in _named_checks(kind):
        if check.applies(component):
            yield component, _BoundCheck(check, options)


ComponentEntry = (
    str | tuple[str, Mapping[str, Any]] | tuple[str, Mapping[str, Any], Mapping[str, Any]]
)
"""A component for :func:`parametrize_with_checks`: its registered name (built with its
default params), ``(name, params)``, or ``(name, params, options)`` with ``options`` the
keyword arguments of the kind's ``check_*`` function (see :func:`component_checks`); a
component instance works too.

Examples:
    >>> from cdkd_core.testing import ComponentEntry
    >>> entries: list[ComponentEntry] = [
    ...     "sklearn.iris",
    ...     ("mlp", {"width": 8}),
    ...     ("sklearn.wine", {"max_examples": 90}, {"seed": 3}),
    ... ]
"""

ExpectedFailures = Mapping[str, Mapping[str, str]] | Callable[[Any], Mapping[str, str]]
"""Checks :func:`parametrize_with_checks` expects to fail, each with the reason: a mapping
``{component name: {check name: reason}}``, or a function of the component instance
returning ``{check name: reason}`` (as scikit-learn's ``expected_failed_checks``).

Examples:
    >>> from cdkd_core.testing import ExpectedFailures
    >>> by_name: ExpectedFailures = {
    ...     "acme.scans": {"check_splits_are_disjoint": "the archive repeats some scans"},
    ... }
    >>> by_function: ExpectedFailures = lambda component: (
    ...     {"check_splits_are_disjoint": "raw rows repeat"} if component.config.raw else {}
    ... )
"""


def _entry_label(name: str, params: Mapping[str, Any]) -> str:
    """The component's part of a test id: its name, with its params if any."""
    if not params:
        return name
    return f"{name}({','.join(f'{k}={v!r}' for k, v in params.items())})"


def _resolve(entry: Any, host: Callable[[], PluginHost]) -> tuple[Any, str, str, dict[str, Any]]:
    """A :data:`ComponentEntry` (or instance) as ``(instance, name, label, options)``."""
    from cdkd_core.components.kinds import KINDS

    if not isinstance(entry, str | tuple):
        name = getattr(entry, "name", type(entry).__name__)
        return entry, name, name, {}
    name, params, options = (entry, {}, {}) if isinstance(entry, str) else (*entry, {})[:3]
    kinds = [kind for kind in KINDS if name in host().components(kind)]
    if len(kinds) != 1:
        found = "no component" if not kinds else f"a component of each of {kinds}"
        raise ValueError(
            f"{name!r} names {found} in the plugin host; load its plugin "
            "(parametrize_with_checks(..., plugins=[...])) or pass the instance"
        )
    instance = host().get(kinds[0], name).from_params(dict(params))
    return instance, name, _entry_label(name, params), dict(options)


def parametrize_with_checks(
    components: Iterable[ComponentEntry | Any],
    *,
    plugins: Iterable[PluginSpec] = (),
    expected_failed_checks: ExpectedFailures | None = None,
) -> pytest.MarkDecorator:
    """A ``pytest.mark.parametrize`` over every named check of every component (see
    :func:`component_checks`): one test per component and check, with an id such as
    ``medical.nuclei-check_splits_are_disjoint`` (so ``pytest -k splits_are_disjoint`` picks
    one check). The test takes ``component`` and ``check`` and calls ``check(component)``.

    Components are named as a config names them and built through a plugin host with the
    built-ins and ``plugins`` loaded in-process (installed plugins stay out, so the tests
    see exactly these). A check expected to fail is marked
    ``pytest.mark.xfail(strict=True, reason=...)``: the test fails if the check passes.

    Args:
        components: The components to check, each a :data:`ComponentEntry`: a registered
            name, ``(name, params)`` or ``(name, params, options)``; or an instance.
        plugins: The plugins whose components are named (:data:`PluginSpec`).
        expected_failed_checks: The checks expected to fail, with their reasons
            (:data:`ExpectedFailures`).

    Returns:
        The decorator for a test ``(component, check)``.

    Raises:
        ValueError: A name is not registered, or an expected failure names a check the
            component does not have.

    Examples:
        In the plugin's tests:

        ```python
        import cdkd_acme
        from cdkd_core.testing import parametrize_with_checks


        @parametrize_with_checks(
            ["acme.scans", ("acme.scans", {"max_examples": 200}), "acme_stem"],
            plugins=[("acme", cdkd_acme)],
            expected_failed_checks={
                "acme.scans": {"check_splits_are_disjoint": "the archive repeats scans"},
            },
        )
        def test_components_keep_their_contracts(component, check):
            check(component)
        ```

        >>> from cdkd_core.testing import parametrize_with_checks
        >>> mark = parametrize_with_checks(["sklearn.iris", ("kd", {"temperature": 2.0})])
        >>> [param.id for param in mark.args[1]][:2]
        ['sklearn.iris-check_load_returns_domain_data', 'sklearn.iris-check_splits_are_well_formed']
        >>> len(mark.args[1])
        9
    """
    plugins = list(plugins)
    made: list[PluginHost] = []

    def host() -> PluginHost:
        if not made:
            made.append(make_host(*plugins))
        return made[0]

    params = []
    for entry in components:
        component, name, label, options = _resolve(entry, host)
        if expected_failed_checks is None:
            expected: Mapping[str, str] = {}
        elif callable(expected_failed_checks):
            expected = expected_failed_checks(component)
        else:
            expected = expected_failed_checks.get(name, {})
        pairs = list(component_checks(component, options))
        unknown = sorted(set(expected) - {check.__name__ for _, check in pairs})
        if unknown:
            raise ValueError(
                f"expected_failed_checks names {unknown} for {label!r}, which has no such "
                f"check; its checks: {[check.__name__ for _, check in pairs]}"
            )
        for _, check in pairs:
            reason = expected.get(check.__name__)
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            params.append(
                pytest.param(component, check, id=f"{label}-{check.__name__}", marks=marks)
            )
    return pytest.mark.parametrize(("component", "check"), params)
