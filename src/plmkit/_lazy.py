"""Package attributes that load on first use (PEP 562), shared by the package roots.

``plmkit`` and ``plmkit.data`` export names whose modules import torch; loading them lazily keeps
``import plmkit.cli`` (every command's start) free of torch until a command needs it, so that a
Ctrl-C during start-up is handled by plmkit rather than inside a library's import.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_attributes(package: str, table: dict[str, str], namespace: dict[str, Any]
                    ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: name → submodule in ``table``, cached in ``namespace``."""

    def __getattr__(name: str) -> Any:
        if name not in table:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{table[name]}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(table))

    return __getattr__, __dir__
