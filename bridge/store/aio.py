"""SQLAlchemy's asyncio engine, imported without the async ORM session the store never uses.

``sqlalchemy.ext.asyncio``'s package module imports ``AsyncSession``, and with it the whole of
``sqlalchemy.orm``: about 6 MB resident in a bridge that only runs Core statements. Its
``engine`` module needs none of that. So the package module is created without running its
body, and runs it in full only if something asks it for a name it does not have yet (Alembic,
a test, a future ORM user): every other importer still sees the complete package.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

_PACKAGE = "sqlalchemy.ext.asyncio"


def _defer_package() -> None:
    if _PACKAGE in sys.modules:
        return  # already imported in full: nothing to save
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or spec.loader is None:
        return  # let the import below fail with the library's own message
    package = importlib.util.module_from_spec(spec)

    def complete(name: str) -> Any:
        if importlib.util.find_spec(f"{_PACKAGE}.{name}") is not None:
            # ``from . import exc`` inside the package asks for a submodule: let the import
            # system load just that one.
            raise AttributeError(name)
        del package.__getattr__
        spec.loader.exec_module(package)  # type: ignore[union-attr]
        return getattr(package, name)

    package.__getattr__ = complete  # type: ignore[method-assign]
    sys.modules[_PACKAGE] = package


_defer_package()

from sqlalchemy.ext.asyncio.engine import (  # noqa: E402 - after the package is in place
    AsyncConnection,
    AsyncEngine,
    create_async_engine,
)

__all__ = ["AsyncConnection", "AsyncEngine", "create_async_engine"]
