"""`tradelab config`'s output: settings written back as a documented tradelab.yaml, every key
with its doc and what it allows as a comment. The output is itself a valid settings file."""

from __future__ import annotations

import textwrap
from dataclasses import fields

import yaml

from tradelab.lab_config import NO_STRATEGY
from tradelab.runner.strategy_names import strategy_class_named
from tradelab.settings import SET_ELSEWHERE, Settings, allowed, load_settings, section_keys

_HEADER = """\
tradelab.yaml: the settings of a tradelab session, one section per part.
Written by `tradelab config`, which prints the effective settings (defaults, then a
--config file); command-line flags override the file. Keys not given keep their defaults;
an unknown key or a bad value is an error naming it. null means "not set" (no limit)."""


def dump_settings(settings: Settings | None = None) -> str:
    """`settings` (default: the defaults) as a tradelab.yaml: every key, its doc as a comment."""
    settings = settings if settings is not None else load_settings()
    lines = [line for text in _HEADER.split("\n") for line in _comment(text, "")] + [""]
    for field in fields(Settings):
        section = field.name
        obj = getattr(settings, section)
        lines += [*_comment(type(obj).__doc__ or "", ""), f"{section}:"]
        for key in section_keys(section):
            parameter = type(obj).param[key]
            lines += _comment(f"{parameter.doc or ''} [{allowed(parameter)}]", "  ")
            if section == "lab" and key == "strategy_params":
                for line in _strategy_doc(settings.lab.strategy):
                    lines += _comment(line, "  ")
            value = yaml.safe_dump(
                {key: getattr(obj, key)}, default_flow_style=False, sort_keys=False
            )
            lines += ["  " + line for line in value.rstrip("\n").split("\n")]
        for key, source in SET_ELSEWHERE.get(section, {}).items():
            lines += _comment(f"({key} comes from {source})", "  ")
        lines.append("")
    return "\n".join(lines)


def _strategy_doc(strategy: str) -> list[str]:
    if strategy == NO_STRATEGY:
        return ["(strategy 'none' takes no parameters)"]
    cls = strategy_class_named(strategy)
    return [f"{strategy} takes:"] + [
        f"  {name}: {cls.param[name].doc or ''} [{allowed(cls.param[name])}; default "
        f"{cls.param[name].default!r}]"
        for name in cls.param
        if name != "name"
    ]


def _comment(text: str, indent: str) -> list[str]:
    """`text` as YAML comment lines of at most 96 characters; a leading indent is kept."""
    lead = text[: len(text) - len(text.lstrip(" "))]
    wrapped = textwrap.wrap(" ".join(text.split()), 96 - len(indent) - 2 - len(lead)) or [""]
    return [f"{indent}# {lead}{line}".rstrip() for line in wrapped]
