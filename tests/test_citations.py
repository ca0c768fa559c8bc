"""Every provider citation in the code leads to a section of ``docs/providers/``.

Code, emulators and tests justify provider behaviour by citing a section of the provider's
document, written ``exact-online.md §1.5`` (or ``docs/providers/exact-online.md §1.5``). Later
citations on the same line may drop the name (``exact-online.md §1.5, §2``) and ranges name
both ends (``exact-online.md §3.7 to §3.11``, ``bexio.md §2-§4``, also with an en dash). A
citation whose document is not named on its line, or whose section has no heading ``## §n …``
or ``### §n …`` in that document, fails with its file and line. Sections of standards
(``RFC 6749 §4.1.2``) are not provider citations, and neither is text the product shows
(string literals other than docstrings).

The repository is self-contained: no file may point at reference material outside it.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "providers"
#: Where citations live.
SCANNED = ("portal", "jobs", "sandbox", "tests", "bench", "proof", "scripts")
SUFFIXES = {".py", ".md", ".html", ".js", ".sh", ".txt", ".toml", ".yml", ".yaml", ".cfg", ".ini"}
#: Generated or third-party folders (ignored by git).
SKIPPED_PARTS = {"__pycache__", "vendor", "node_modules", "out", "test-results"}

SECTION = "\N{SECTION SIGN}"
EN_DASH = "\N{EN DASH}"
#: ``[name.md] §n[.m…]``, optionally followed by `` to `` / ``-`` / an en dash and ``[§]n[.m…]``.
CITATION = re.compile(
    rf"(?:(?:docs/providers/)?(?P<doc>[a-z][a-z0-9-]*)\.md\s+)?{SECTION}\s?(?P<num>\d+(?:\.\d+)*)"
    rf"(?:\s*(?:to|-|{EN_DASH})\s*{SECTION}?\s?(?P<end>\d+(?:\.\d+)*))?"
)
#: A standard's own sections, written right before the sign: ``RFC 6749 §4.1.2``.
STANDARD = re.compile(r"\bRFC\s*\d+\s*$")
HEADING = re.compile(rf"^#{{2,3}} {SECTION}(?P<num>\d+(?:\.\d+)*) \S")
LINK = re.compile(r"\]\(https://[^)\s]+\)|<https://[^>\s]+>")
#: Paths of reference material kept beside, not inside, the repository.
OUTSIDE = re.compile(r"\.\./shared\b|/work/shared\b|\bshared/provider|\bprovider-fixtures/")


def scanned_files() -> Iterator[Path]:
    """Yield the text files of the scanned folders, this one included."""
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and path.suffix in SUFFIXES and not SKIPPED_PARTS & set(path.relative_to(ROOT).parts):
                yield path


def product_text(path: Path, source: str) -> dict[int, list[tuple[int, int]]]:
    """Return, per line, the byte spans of string literals that are not docstrings (Python only)."""
    if path.suffix != ".py":
        return {}
    tree = ast.parse(source)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    spans: dict[int, list[tuple[int, int]]] = {}
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and node.end_lineno == node.lineno
            and node.end_col_offset is not None
        ):
            spans.setdefault(node.lineno, []).append((node.col_offset, node.end_col_offset))
    return spans


def citations(path: Path) -> Iterator[tuple[int, str | None, str]]:
    """Yield (line, document or None, section) for every provider citation in ``path``."""
    source = path.read_text(encoding="utf-8")
    if SECTION not in source:
        return
    shown = product_text(path, source)
    for number, line in enumerate(source.splitlines(), 1):
        current: str | None = None
        for match in CITATION.finditer(line):
            if STANDARD.search(line[: match.start()]):
                continue
            offset = len(line[: match.start("num")].encode())
            if any(start <= offset < end for start, end in shown.get(number, ())):
                continue
            current = match["doc"] or current
            for section in filter(None, (match["num"], match["end"])):
                yield number, current, section


def headings() -> dict[str, set[str]]:
    """Return document name → its section numbers."""
    return {
        doc.stem: {m["num"] for line in doc.read_text(encoding="utf-8").splitlines() if (m := HEADING.match(line))}
        for doc in sorted(DOCS.glob("*.md"))
    }


def test_every_citation_names_a_document_and_resolves_to_one_of_its_sections() -> None:
    sections = headings()
    assert sections, f"no provider documents in {DOCS.relative_to(ROOT)}"
    problems, count = [], 0
    for path in scanned_files():
        for line, doc, section in citations(path):
            count += 1
            where = f"{path.relative_to(ROOT)}:{line}"
            if doc is None:
                hint = f"write e.g. bexio.md {SECTION}{section}"
                problems.append(f"{where}: {SECTION}{section} names no document ({hint})")
            elif doc not in sections:
                problems.append(f"{where}: {doc}.md is not in docs/providers/")
            elif section not in sections[doc]:
                problems.append(f"{where}: {doc}.md has no heading {SECTION}{section}")
    assert count > 100, f"only {count} citations found: is the pattern still right?"
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("doc", sorted(p.name for p in DOCS.glob("*.md")))
def test_every_section_links_to_the_vendors_public_documentation(doc: str) -> None:
    text = (DOCS / doc).read_text(encoding="utf-8")
    parts = re.split(rf"^(?=#{{2,3}} {SECTION})", text, flags=re.MULTILINE)[1:]
    assert parts, f"{doc} has no {SECTION} sections"
    unlinked = []
    for part in parts:
        heading, _, body = part.partition("\n")
        # A section whose only content is subsections is linked through them.
        own = re.split(rf"^#{{2,3}} {SECTION}", body, maxsplit=1, flags=re.MULTILINE)[0]
        if not LINK.search(own) and own.strip():
            unlinked.append(heading)
    assert not unlinked, f"{doc}: sections without a link: {unlinked}"


def test_no_file_points_outside_the_repository() -> None:
    top = [ROOT / name for name in ("README.md", "Makefile", "pyproject.toml", "app.py")]
    problems = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in [*scanned_files(), *top, *sorted(DOCS.glob("*.md"))]
        if path != Path(__file__).resolve()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert not problems, "\n".join(problems)
