"""The documentation cannot drift: the configuration reference lists every key, and no relative link is broken.

``mkdocs build --strict`` (CI) checks the links and anchors between the pages of
``docs/``; these tests cover what it does not see: README.md and bench/README.md,
which GitHub renders, and the generated reference page's coverage of the config.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GENERATED = {ROOT / "docs" / "reference" / "config.md"}  # added to the site by the MkDocs hook, not a file


def _generator():
    spec = importlib.util.spec_from_file_location("gen_config_reference", ROOT / "docs" / "gen_config_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_lists_every_config_key():
    from textclf.pipeline.config import Config
    from textclf.pipeline.spec import ClaimSpec, PipelineSpec, TaskSpec

    page = _generator().render()
    documented = set(re.findall(r"^\| `([^`]+)` \|", page, flags=re.MULTILINE))
    missing = [key for key in Config().flat() if key not in documented]
    assert not missing, f"docs/gen_config_reference.py does not list {missing}"
    for model in (PipelineSpec, TaskSpec, ClaimSpec):
        assert set(model.model_fields) <= documented, model.__name__


def test_reference_rows_come_from_the_models():
    """Defaults, bounds and allowed values are read from the fields, not written by hand."""
    from textclf.core.metrics import epoch_metric_names
    from textclf.models.registry import ENCODERS

    gen = _generator()
    rows: dict[str, str] = {}
    for m in re.finditer(r"^\| `([^`]+)` \|.*$", gen.render(), flags=re.MULTILINE):
        rows.setdefault(m.group(1), m.group(0))  # the config tables come first; the tune tables repeat some keys
    assert "≤ 10000" in rows["train.epochs"] and "`10`" in rows["train.epochs"]
    assert "`last` \\| `mean` \\| `max` \\| `attention`" in rows["encoder.pooling"]
    assert all(f"`{cell}`" in rows["encoder.cell"] for cell in ENCODERS)
    assert all(f"`{m}`" in rows["train.early_stopping_metric"] for m in epoch_metric_names())
    # a field without a description takes the comment params.yaml has beside its key
    from textclf.pipeline.config import Config

    _, comments = gen.params_yaml()
    undescribed = [
        (key, field) for key, field, _ in gen.leaf_rows(Config) if not field.description and comments.get(key)
    ]
    assert undescribed
    for key, _field in undescribed:
        assert " ".join(comments[key].split()).replace("|", "\\|") in rows[key], key


def test_params_yaml_comments_continue_over_indented_lines(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(
        "# header\nkind: neural   # top\n\ntrain:   # the trainer\n  lr: 0.1   # first\n"
        "            # second\n  seed: 1\n",
        encoding="utf-8",
    )
    values, comments = _generator().params_yaml(params)
    assert values == {"kind": "neural", "train.lr": 0.1, "train.seed": 1}
    assert comments == {"kind": "top", "train": "the trainer", "train.lr": "first second"}


# --------------------------------------------------------------------------- links

_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _prose(text: str) -> str:
    """The Markdown without fenced code blocks and code spans (links there are not links)."""
    text = re.sub(r"^(```|~~~).*?^\1", "", text, flags=re.MULTILINE | re.DOTALL)
    return re.sub(r"`[^`\n]*`", "", text)


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", _prose(path.read_text(encoding="utf-8")), flags=re.MULTILINE)
    return {github_slug(h) for h in headings}


def broken_links(path: Path, check_anchors: bool) -> list[str]:
    """Relative links of one Markdown file whose target file (or heading) does not exist."""
    problems = []
    for target in _LINK.findall(_prose(path.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, flags=re.IGNORECASE):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if dest in GENERATED:
            continue
        if not dest.exists():
            problems.append(f"{path.relative_to(ROOT)}: {target} (no such file)")
        elif check_anchors and anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            problems.append(f"{path.relative_to(ROOT)}: {target} (no such heading in {dest.name})")
    return problems


def _markdown_files() -> list[Path]:
    return [ROOT / "README.md", ROOT / "bench" / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


@pytest.mark.parametrize("path", _markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path):
    # Anchors inside docs/ follow MkDocs' slugs and are checked by `mkdocs build --strict`;
    # the two READMEs are read on GitHub, so theirs are checked here with GitHub's.
    assert broken_links(path, check_anchors=path.parent != ROOT / "docs") == []


def test_link_check_finds_a_broken_link(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "other.md").write_text("# Other page\n\n## A section's title\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](other.md) [ok](other.md#a-sections-title) [web](https://example.org/x) `[code](gone.md)`\n"
        "[gone](gone.md) [bad anchor](other.md#no-such)\n```\n[fenced](gone.md)\n```\n",
        encoding="utf-8",
    )
    assert broken_links(page, check_anchors=True) == [
        "page.md: gone.md (no such file)",
        "page.md: other.md#no-such (no such heading in other.md)",
    ]


def test_readme_keeps_the_commands_ci_runs():
    """.ci/run runs the README's install and test commands; the README must still give them."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert 'pip install -e ".[dev]"' in readme and "python -m pytest" in readme
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert 'pip install -q -e ".[dev]"' in ci and "python -m pytest" in ci and "mkdocs build --strict" in ci
