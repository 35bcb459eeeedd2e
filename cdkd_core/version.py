"""cdkd's version (one place: the package's ``__version__`` and the built-ins' plugin
version read it)."""

__version__ = "0.1.0"
