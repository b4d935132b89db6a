"""Every citation of the documentation resolves inside the repository.

The method specification lives in docs/ (docs/METHODS.md, docs/DPAP.md, docs/SDSNN.md) and
code, presets, tests, benchmarks and experiments cite it as ``docs/NAME.md#anchor``. This test
scans those trees and checks that

* every ``docs/NAME.md`` path exists and every ``#anchor`` is defined in that file (an explicit
  ``<a id="...">`` or a heading's GitHub slug);
* every relative Markdown link of a document (``[text](DPAP.md#dpap-reserve)``,
  ``[text](#anchor)``) resolves to a file inside the repository and an anchor in it;
* nothing cites a specification outside the repository: the former shared documents by name,
  a path to the shared folder, or a bare section number / decision letter of them;
* no citation names a section by its title (``docs/NAME.md, "Title"``) instead of its anchor.

This file itself is not scanned (its patterns would match themselves); the self-tests below
show that a broken anchor, a missing file and an outside citation are each reported.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCANNED_DIRS = ("src", "docs", "tests", "benchmarks", "experiments", "scripts")
SCANNED_FILES = ("README.md", "pyproject.toml")
SUFFIXES = {".py", ".md", ".yaml", ".yml", ".sh", ".toml", ".txt", ".cfg", ".ini"}
SKIPPED_PARTS = {"__pycache__", ".pytest_cache", ".ruff_cache", "results", "runs"}

# docs/NAME.md or docs/sub/NAME.md, optionally #anchor; not part of a longer path
DOC_PATH = re.compile(r"(?<![\w./-])docs/((?:[\w-]+/)*[\w.-]+\.md)(?:#([\w-]+))?")
# [text](target) in Markdown; the target is taken up to a closing parenthesis or a space
MD_LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")
EXPLICIT_ANCHOR = re.compile(r"""<a\s+(?:id|name)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")

# Citations of the specification that used to live outside the repository. Assembled from
# parts so that no single literal here would be mistaken for one.
_SPEC = "METHOD"
OUTSIDE = [
    (re.compile(_SPEC + r"(?:\.md)?(?:,?\s+(?:section\s+)?)\d"), "a section number of the "
     "outside method specification"),
    (re.compile(r"\b" + _SPEC + r"\.md\b"), "the outside method specification"),
    (re.compile(r"\b" + "PRODUCT" + r"\.md\b"), "the outside product document"),
    (re.compile(r"\b" + "DATA_AND" + r"_ENV\b"), "the outside data/environment document"),
    (re.compile(r"\b" + "ANCHORS" + r"(?:\.md\b|\s+\d)"), "the outside survey document"),
    (re.compile("/work/" + "shared"), "a path outside the repository"),
    (re.compile(r"\.\./" + "shared/"), "a path outside the repository"),
    (re.compile("shared/" + "docs"), "a path outside the repository"),
    # "(B1)", ", A12)", "(A6, A7)": the outside specification's decision letters
    (re.compile(r"(?:\(|,\s)[ABC]\d{1,2}(?=[),;])"), "a decision letter of the outside "
     "specification"),
    # docs/NAME.md, "Some heading": a section named in words breaks silently when renamed
    (re.compile(r"docs/[\w/.-]+\.md,?\s+[\"\u201c]"), "a section by its title"),
]


def github_slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading (inline code, emphasis and links reduced to text,
    lower case, punctuation other than ``-`` and ``_`` dropped, spaces to hyphens)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # [text](url) -> text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML, e.g. an anchor tag
    text = html.unescape(text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors_of(path: Path) -> set[str]:
    """Anchors a Markdown file defines: explicit ``<a id>`` / ``<a name>`` and heading slugs."""
    text = path.read_text(encoding="utf-8")
    found = set(EXPLICIT_ANCHOR.findall(text))
    counts: dict[str, int] = {}
    in_code = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continue
        match = None if in_code else HEADING.match(line)
        if match:
            slug = github_slug(match.group(2))
            n = counts.get(slug, 0)
            counts[slug] = n + 1
            found.add(slug if n == 0 else f"{slug}-{n}")
    return found


def scanned_files(root: Path) -> Iterable[Path]:
    this = Path(__file__).resolve()
    candidates = [root / name for name in SCANNED_FILES]
    for folder in SCANNED_DIRS:
        if (root / folder).is_dir():
            candidates += sorted((root / folder).rglob("*"))
    for path in candidates:
        if not path.is_file() or path.suffix not in SUFFIXES or path.resolve() == this:
            continue
        if SKIPPED_PARTS.intersection(path.relative_to(root).parts):
            continue
        yield path


class Checker:
    """Collects problems; ``anchors`` caches the anchors of each target file."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.problems: list[str] = []
        self._anchors: dict[Path, set[str]] = {}
        self.citations = 0

    def _target(self, where: str, target: Path, anchor: str | None, cited: str) -> None:
        self.citations += 1
        target = target.resolve()
        if not target.is_relative_to(self.root):
            self.problems.append(f"{where}: {cited!r} points outside the repository")
            return
        if not target.is_file():
            self.problems.append(f"{where}: {cited!r}: no such file "
                                 f"{target.relative_to(self.root)}")
            return
        if anchor is None or target.suffix != ".md":
            return
        if target not in self._anchors:
            self._anchors[target] = anchors_of(target)
        if anchor not in self._anchors[target]:
            self.problems.append(f"{where}: {cited!r}: {target.relative_to(self.root)} has no "
                                 f"anchor #{anchor}")

    def check_file(self, path: Path) -> None:
        rel = path.relative_to(self.root)
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            where = f"{rel}:{number}"
            for pattern, what in OUTSIDE:
                hit = pattern.search(line)
                if hit:
                    self.problems.append(f"{where}: {hit.group(0).strip()!r} cites {what}; cite "
                                         "an anchor in docs/ instead")
            for match in DOC_PATH.finditer(line):
                self._target(where, self.root / "docs" / match.group(1), match.group(2),
                             match.group(0))
            if path.suffix == ".md":
                for match in MD_LINK.finditer(line):
                    self._markdown_link(where, path, match.group(1))

    def _markdown_link(self, where: str, path: Path, link: str) -> None:
        if re.match(r"^[a-z][a-z0-9+.-]*:", link, re.IGNORECASE):  # http:, mailto:, ...
            return
        file_part, _, anchor = link.partition("#")
        target = path if not file_part else (path.parent / file_part)
        self._target(where, target, anchor or None, link)


def find_problems(root: Path = ROOT) -> tuple[list[str], int]:
    """All problems under ``root`` and the number of citations checked."""
    checker = Checker(root)
    for path in scanned_files(checker.root):
        checker.check_file(path)
    return checker.problems, checker.citations


# --------------------------------------------------------------------------------------------
# The repository
# --------------------------------------------------------------------------------------------
def test_every_docs_citation_resolves_inside_the_repository():
    problems, citations = find_problems()
    assert not problems, "\n".join(problems)
    assert citations > 50  # the scan really sees the citations (src, presets, docs, tests)


def test_the_method_specification_is_in_the_repository():
    for name in ("METHODS.md", "DPAP.md", "SDSNN.md"):
        assert (ROOT / "docs" / name).is_file(), name
    anchors = anchors_of(ROOT / "docs" / "DPAP.md")
    assert {"dpap-reserve", "dpap-variants", "dpap-deviations"} <= anchors
    anchors = anchors_of(ROOT / "docs" / "SDSNN.md")
    assert {"sdsnn-ranges", "sdsnn-variants", "sdsnn-deviations"} <= anchors


# --------------------------------------------------------------------------------------------
# The checker itself can fail
# --------------------------------------------------------------------------------------------
@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    (tmp_path / "docs").mkdir()
    (tmp_path / "src").mkdir()
    (tmp_path / "docs" / "GUIDE.md").write_text(
        '# Guide\n\n<a id="rule"></a>\n## The `rule`: one formula\n\n'
        'See [below](#the-rule-one-formula).\n',
        encoding="utf-8",
    )
    return tmp_path


def _problems(root: Path, source: str, name: str = "src/mod.py") -> list[str]:
    (root / name).write_text(source, encoding="utf-8")
    return find_problems(root)[0]


def test_checker_accepts_explicit_anchors_and_heading_slugs(tree: Path):
    assert _problems(tree, "# docs/GUIDE.md#rule and docs/GUIDE.md#the-rule-one-formula\n") == []


def test_checker_reports_a_broken_anchor(tree: Path):
    problems = _problems(tree, "# see docs/GUIDE.md#no-such-anchor\n")
    assert len(problems) == 1 and "no anchor #no-such-anchor" in problems[0]
    assert problems[0].startswith("src/mod.py:1:")


def test_checker_reports_a_missing_document(tree: Path):
    problems = _problems(tree, "# see docs/MISSING.md#rule\n")
    assert len(problems) == 1 and "no such file" in problems[0]


def test_checker_reports_broken_markdown_links(tree: Path):
    problems = _problems(tree, "[a](GUIDE.md#gone) [b](GUIDE.md#rule) [c](../../elsewhere.md)\n",
                         "docs/OTHER.md")
    assert len(problems) == 2, problems
    assert "no anchor #gone" in problems[0]
    assert "outside the repository" in problems[1]


@pytest.mark.parametrize("line", [
    "# the reserve rule (" + _SPEC + " 2.6)",
    "# constants of " + _SPEC + ".md section 3",
    "# see /work/" + "shared/docs/x.md",
    "# the conv-range defect (B1)",
    '# "Product decisions" of ' + "PRODUCT" + ".md",
    '# the default mode (docs/GUIDE.md, "The rule")',
])
def test_checker_reports_citations_outside_the_repository(tree: Path, line: str):
    problems = _problems(tree, line + "\n")
    assert problems and "instead" in problems[0], problems
