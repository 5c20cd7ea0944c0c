"""MkDocs hook: render the Sphinx roles left in tsengine's docstrings as code, linked when possible.

The docstrings are Google style but refer to other objects the Sphinx way
(``:class:`~tsengine.errors.TsEngineError```, ``:meth:`Deployment.predict```).
mkdocstrings renders such a role as the role's name followed by inline code;
this hook turns it into the code alone (``TsEngineError``, the last dotted part
when the target starts with ``~``), linked to the object's anchor when the page
documents it.  A lone ``::`` paragraph (reStructuredText's literal-block marker)
is dropped.  Only HTML produced from docstrings is affected: the pages' own
Markdown never contains these roles.
"""

from __future__ import annotations

import re
from typing import Any

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|exc|obj|const):<code>(?P<target>[^<]+)</code>")
_LITERAL_MARKER = re.compile(r"<p>::</p>\s*")
_ANCHOR = re.compile(r'\bid="(?P<id>[A-Za-z_][\w.]*)"')


def _target_id(target: str, anchors: set[str]) -> str | None:
    """The anchor a role points at: the full path, or a suffix match (``Deployment.predict``)."""
    if target in anchors:
        return target
    suffix = "." + target
    matches = sorted(a for a in anchors if a.endswith(suffix))
    return matches[0] if len(matches) == 1 else None


def on_page_content(html: str, **_kwargs: Any) -> str:
    """Rewrite Sphinx roles in the rendered page."""
    if ":<code>" not in html and "<p>::</p>" not in html:
        return html
    anchors = {m["id"] for m in _ANCHOR.finditer(html)}

    def replace(match: re.Match[str]) -> str:
        target = match["target"].strip()
        short = target.startswith("~")
        target = target.lstrip("~").removesuffix("()")
        label = target.rsplit(".", 1)[-1] if short else target
        anchor = _target_id(target, anchors)
        code = f"<code>{label}</code>"
        return f'<a href="#{anchor}">{code}</a>' if anchor else code

    html = _ROLE.sub(replace, html)
    return _LITERAL_MARKER.sub("", html)
