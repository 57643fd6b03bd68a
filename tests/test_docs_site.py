"""The API pages as a reader sees them: the site built as CI builds it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs")
pytest.importorskip("mkdocstrings_handlers.python")

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return {str(p.relative_to(out)): p.read_text() for p in out.rglob("*.html")}


def test_sphinx_roles_become_links_not_text(site):
    """mkdocstrings printed the docstrings' roles verbatim (270 of them, as
    ':func:~optax_lode.lode_schedule'); the docs' griffe extension links them."""
    roles = re.compile(r":(?:func|meth|class|attr|data|mod|exc):")
    shown = {page: roles.findall(html) for page, html in site.items()}
    assert not {page: found for page, found in shown.items() if found}
    runs = site["runs/index.html"]
    # A role naming a member from its class's docstring, and one across pages.
    assert re.search(r'href="#optax_lode\.runs\.Trajectories\.from_arrays"', runs)
    assert re.search(r'href="\.\./model/#optax_lode\.model\.fit"', runs)


def test_every_example_renders_as_code():
    """griffe's Google parser knows "Examples:" only: an "Example:" section
    became an admonition whose >>> prompts Markdown read as blockquotes."""
    singular = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in (ROOT / "optax_lode").rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if line.strip() == "Example:"
    ]
    assert not singular


def test_examples_sections_hold_highlighted_doctests(site):
    html = "".join(site.values())
    sections = html.count('doc-section-title">Examples:</span>')
    coded = len(
        re.findall(
            r'doc-section-title">Examples:</span></p>\s*<div class="highlight">'
            r"<pre><span></span><code><span class=\"gp\">&gt;&gt;&gt; ",
            html,
        )
    )
    assert sections > 30 and coded == sections
