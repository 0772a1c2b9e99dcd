"""Reading a settings file's YAML strictly: dates stay text (checked with the other values,
naming their key), `1e6` is a number as in YAML 1.2, and a key given twice is an error (YAML
would keep the last, silently). No threads."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tradelab.errors import InvalidInputError


class _DatesAsText(yaml.SafeLoader):
    """YAML without its implicit timestamps: `2025-13-40` stays text, checked (naming its key)
    with the settings' other values, instead of failing inside the YAML parser. `1e6` is a
    number, as in YAML 1.2 and JSON (YAML 1.1, PyYAML's, reads it as text: only `1.0e+6`)."""


_DatesAsText.yaml_implicit_resolvers = {
    first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _mapping_without_repeats(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    """A mapping whose keys are unique: YAML keeps the last of a repeated key, silently."""
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, list | dict):
            continue  # unhashable: construct_mapping refuses it, naming where
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"{key!r} is given twice (YAML would keep the last)",
                key_node.start_mark,
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_DatesAsText.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_repeats
)
# YAML 1.2's exponent floats (1e5, 2.5e5, 1.0E3), which PyYAML's YAML 1.1 reads as text
# unless written with a dot and a signed exponent (1.0e+5).
_DatesAsText.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+.0123456789"),
)


def read_yaml(path: str | Path) -> Any:
    """The YAML document in `path` (None for an empty file); an unreadable or invalid file is
    an InvalidInputError naming it."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(f"config file {str(path)!r} cannot be read: {exc}") from None
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"config file {str(path)!r} is not UTF-8 text (byte {exc.start}): is it a YAML file?"
        ) from None
    try:
        return yaml.load(text, Loader=_DatesAsText)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"config file {str(path)!r} is not valid YAML: {exc}") from None
    except RecursionError:  # PyYAML recurses once per level: a config is a few levels deep
        raise InvalidInputError(
            f"config file {str(path)!r} is nested too deeply to be a tradelab config (its "
            "sections hold settings, a level or two deep)"
        ) from None
