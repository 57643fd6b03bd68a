"""A griffe extension: the docstrings' Sphinx roles as links in the API pages.

The docstrings cross-reference with Sphinx roles (``:func:`~optax_lode.fit```),
which read well in ``help()`` and editors; mkdocstrings does not know them and
printed them verbatim. Each becomes an optional autorefs link: the object's
page where it is rendered, plain code where it is not (a private helper), so a
reference never breaks the strict build. Loaded by ``mkdocs.yml``.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:func|meth|class|attr|data|mod|exc):`(~?)([\w.]+)`")


def _path(member: griffe.Object | griffe.Alias) -> str:
    """Where ``member`` is defined (an import's target), or, for an import
    from outside the package, the path it names."""
    try:
        return member.canonical_path
    except (griffe.AliasResolutionError, griffe.CyclicAliasError):
        return member.target_path


def _identifier(obj: griffe.Object, name: str) -> str:
    """The full path of ``name`` as written in ``obj``'s docstring: absolute,
    or relative to ``obj`` (a class's docstring names its members bare) or
    to one of its enclosing scopes (a method names its class's)."""
    if name.startswith("optax_lode."):
        try:  # where it is defined: the page renders it under that path too
            return obj.package[name.partition(".")[2]].canonical_path
        except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
            return name
    head, _, rest = name.partition(".")
    scope: griffe.Object | None = obj
    while scope is not None:
        if head in scope.members:
            return ".".join(filter(None, (_path(scope.members[head]), rest)))
        scope = scope.parent
    return name


def _link(obj: griffe.Object, match: re.Match) -> str:
    short, name = match.groups()
    shown = name.rsplit(".", 1)[-1] if short else name
    return (
        f'<autoref identifier="{_identifier(obj, name)}" optional>'
        f"<code>{shown}</code></autoref>"
    )


def _rewrite(obj: griffe.Object) -> None:
    doc = obj.docstring
    if doc is not None and ":`" in doc.value:
        doc.value = _ROLE.sub(lambda m: _link(obj, m), doc.value)
    for member in obj.members.values():
        if not member.is_alias:
            _rewrite(member)


class SphinxRoles(griffe.Extension):
    """Rewrites every Sphinx role of the package's docstrings once it is
    loaded (a class's members exist only then)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        _rewrite(pkg)
