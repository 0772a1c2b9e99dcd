"""A user's own Strategy named on the command line or in tradelab.yaml: `FILE.py:Class` or
`module:Class`.

A file is imported once per version of it: settings, the command line and the Lab each look
the class up, and the module's top level (its imports, a print) should run once, not three times.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from functools import lru_cache
from pathlib import Path
from types import ModuleType

from tradelab.errors import InvalidInputError
from tradelab.runner.strategy import Strategy


def strategy_class(spec: str) -> type[Strategy]:
    """The Strategy subclass `spec` names: `path/to/file.py:Class` or `package.module:Class`
    (imported from the current directory too). What is not found is refused naming it."""
    where, _, class_name = spec.rpartition(":")
    try:
        if where.endswith(".py"):
            path = Path(where)
            if not path.is_file():
                raise InvalidInputError(
                    f"strategy {spec!r}: no file {where!r} (looked from {Path.cwd()})"
                )
            stat = path.stat()
            module = _file_module(str(path.resolve()), stat.st_mtime_ns, stat.st_size)
        else:
            if "" not in sys.path:
                sys.path.insert(0, "")  # a module beside the user, as `python -m` finds it
            module = importlib.import_module(where)
    except InvalidInputError:
        raise
    except (Exception, SystemExit) as exc:  # the user's own code: whatever it raised, named
        # (SystemExit too: a module calling sys.exit() at import would end the command
        # silently with its code.)
        raise InvalidInputError(
            f"strategy {spec!r}: {where!r} failed to import: {type(exc).__name__}: {exc}"
        ) from None
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise InvalidInputError(
            f"strategy {spec!r}: {where!r} has no Strategy subclass named {class_name!r}"
        )
    return cls


@lru_cache(maxsize=32)
def _file_module(path: str, mtime_ns: int, size: int) -> ModuleType:
    """The module of the file at `path` as it is at (`mtime_ns`, `size`): an edited file is
    imported again."""
    module_spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module
