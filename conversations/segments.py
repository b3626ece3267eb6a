"""Segments: the named parts of a channel's figures a diagnosis also counts in (the funnel's filters).

A diagnosis counts in its channel's figures and, beside them, in one segment per tag :func:`tags` gives:

- ``s=<source>``: the source the person came with (「診断 NAME」, ``Conv.src``; the funnel's ``?source=``);
- ``x=<experiment>:<variant>``: each content experiment's variant it was assigned (``Conv.var``; ``?variant=``);
- ``v=<version>``: the content version it ran (``Conv.ver``; ``?version=``).

Tags are plain strings so that the figures (conversations/analytics.py) count any of them the same way,
and a new kind of filter needs no new storage. A tag never contains "|" or a newline.
"""

from __future__ import annotations

from collections.abc import Mapping

SOURCE = "s"
VARIANT = "x"
VERSION = "v"


def parse_variants(var: str) -> dict[str, str]:
    """``Conv.var`` ("exp:variant,exp2:variant") as a mapping experiment -> variant."""
    out: dict[str, str] = {}
    for pair in filter(None, var.split(",")):
        exp, _, variant = pair.partition(":")
        if exp and variant:
            out[exp] = variant
    return out


def format_variants(variants: Mapping[str, str]) -> str:
    """The inverse of :func:`parse_variants` (sorted by experiment, so equal mappings give equal text)."""
    return ",".join(f"{exp}:{variants[exp]}" for exp in sorted(variants))


def source_tag(source: str) -> str:
    return f"{SOURCE}={source}"


def variant_tag(experiment: str, variant: str) -> str:
    return f"{VARIANT}={experiment}:{variant}"


def version_tag(version: str) -> str:
    return f"{VERSION}={version}"


def tags(src: str = "", var: str = "", ver: str = "") -> tuple[str, ...]:
    """Every segment a diagnosis with this source, these variants and this version counts in."""
    out = [source_tag(src)] if src else []
    out += [variant_tag(exp, variant) for exp, variant in sorted(parse_variants(var).items())]
    if ver:
        out.append(version_tag(ver))
    return tuple(out)
