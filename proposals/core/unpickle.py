"""Restricted unpickler for VGGSounder prediction pickles (fallback while ``benchmark.io`` has none).

Only plain containers, numbers, strings and numpy arrays/scalars can be built; any other global
is refused with the name it asked for.
"""
from __future__ import annotations

import io
import pickle
from typing import Any

_ALLOWED = {
    ("builtins", "dict"), ("builtins", "list"), ("builtins", "tuple"), ("builtins", "set"),
    ("builtins", "frozenset"), ("builtins", "str"), ("builtins", "bytes"), ("builtins", "int"),
    ("builtins", "float"), ("builtins", "bool"), ("builtins", "complex"),
    ("collections", "OrderedDict"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
}


class UnsafePickleError(ValueError):
    pass


class _Restricted(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"refused to load {module}.{name} from the pickle: only plain containers, numbers, "
            f"strings and numpy arrays are allowed")


def restricted_load(path_or_fileobj) -> Any:
    if hasattr(path_or_fileobj, "read"):
        data = path_or_fileobj.read()
    else:
        with open(path_or_fileobj, "rb") as fh:
            data = fh.read()
    try:
        return _Restricted(io.BytesIO(data)).load()
    except UnsafePickleError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoding problem is a bad file
        raise UnsafePickleError(f"not a readable pickle: {exc}") from None
