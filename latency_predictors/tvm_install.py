"""Importing TVM, an optional extra: one place that says how to install it when it is missing."""

from __future__ import annotations

from typing import Any

from latency_predictors.errors import ProfilingError


def require_tvm() -> Any:
    """Import TVM, or say which extra installs it."""
    try:
        import tvm
    except ImportError:
        raise ProfilingError(
            "Apache TVM is not installed; install it with: pip install 'edgenas[tvm]'"
        ) from None
    return tvm
