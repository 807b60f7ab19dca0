"""Read the Python pickles of torchvision's CIFAR format without running their code.

A pickle can call any importable function while it loads, so a downloaded or shared
``data_batch_1`` could execute anything with plain ``pickle.load``. CIFAR batches only
hold dicts, lists, strings and numpy arrays, so :class:`CifarUnpickler` resolves just the
few globals that rebuild a numpy array and refuses every other one.
"""

from __future__ import annotations

import codecs
import importlib
import pickle
from pathlib import Path
from typing import Any

from nas.errors import EdgenasError

#: The only globals a CIFAR batch needs: numpy's array reconstruction (under numpy 1's
#: and numpy 2's module names) and ``_codecs.encode``, which protocol-2 pickles use to
#: store ``bytes`` (a pure function; torch's ``weights_only`` loader allows it too).
ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }
)


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle names a global outside :data:`ALLOWED_GLOBALS`."""


class CifarUnpickler(pickle.Unpickler):
    """An unpickler that builds only numpy arrays and plain containers."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_GLOBALS:
            raise RefusedGlobal(f"refused global {module}.{name}")
        if module == "_codecs":
            return codecs.encode
        if module.startswith("numpy.core") or module.startswith("numpy._core"):
            # numpy 2 renamed numpy.core to numpy._core; old files name the old module
            try:
                return getattr(importlib.import_module("numpy._core.multiarray"), name)
            except ImportError:
                return getattr(importlib.import_module("numpy.core.multiarray"), name)
        return getattr(importlib.import_module(module), name)


def load_cifar_pickle(path: Path) -> dict[str, Any]:
    """The dict stored in one CIFAR pickle, keys as ``str``; a one-line error otherwise."""
    try:
        with open(path, "rb") as fh:
            data = CifarUnpickler(fh, encoding="latin1").load()
    except FileNotFoundError:
        raise EdgenasError(f"{path} is missing: the CIFAR directory is incomplete") from None
    except RefusedGlobal as exc:
        raise EdgenasError(
            f"{path} is not a genuine CIFAR file ({exc}); nothing was executed: "
            "replace it with the original archive's file"
        ) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise EdgenasError(f"{path} is truncated or corrupt ({type(exc).__name__}): re-extract it") from None
    if not isinstance(data, dict):
        raise EdgenasError(f"{path} holds a {type(data).__name__}, not a CIFAR dict")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in data.items()}
