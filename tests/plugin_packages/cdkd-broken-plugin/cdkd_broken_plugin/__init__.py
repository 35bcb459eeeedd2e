"""A plugin that fails at import."""

raise ImportError("cdkd_broken_plugin needs a library that is not installed")
