"""What a plugin's tests need from the core's inside: :func:`stem_architecture`,
:func:`prepare_domains`, :func:`export_formats`, :func:`export_run`,
:func:`load_run_student`. Each imports the core module it stands for when called.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from cdkd_core.host.plugin_host import PluginHost


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
