"""Cache identity includes the textclf code a stage runs: an edit recomputes what it touches and nothing else.

A copy of the package is put first on PYTHONPATH, and ``textclf train`` runs
from it after each edit: with nothing edited every stage is a hit; a change of
behaviour in the report's verdicts (code no stage runs) keeps every entry; a
comment, a docstring or a reformatting of the recurrent encoder keeps every
entry too; a changed constant there retrains the model but keeps the generated
corpus; one in a corpus generator makes both again. The import graph the keys
hash (:mod:`textclf.core.code`, a regular expression) is checked against
Python's own parser on the whole package.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from textclf.core.code import _modules, import_closure, imports_of

PACKAGE = Path(__file__).resolve().parents[1] / "textclf"


def _parsed_imports(source: bytes, modules) -> tuple[set[str], set[str]]:
    """What imports_of should find, from the syntax tree: (all textclf imports, those run on import of the module)."""
    tree = ast.parse(source)

    def found(node) -> set[str]:
        if isinstance(node, ast.Import):
            return {a.name for a in node.names if a.name.split(".")[0] == "textclf"}
        if (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and node.module
            and node.module.split(".")[0] == "textclf"
        ):
            return {node.module} | {
                f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules
            }
        return set()

    def runs_on_import(
        body,
    ) -> set[str]:  # module level, into if/try blocks, not into functions, classes or TYPE_CHECKING
        out = set()
        for node in body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            out |= found(node)
            for field in ("body", "orelse", "finalbody", "handlers"):
                if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and isinstance(
                    getattr(node, field, None), list
                ):
                    out |= runs_on_import(getattr(node, field))
        return out

    return set().union(*(found(n) for n in ast.walk(tree))), runs_on_import(tree.body)


def test_the_import_graph_the_keys_hash_is_what_python_would_import():
    modules = _modules()
    for name, source in modules.items():
        every, top = imports_of(source, modules)
        parsed_every, parsed_top = _parsed_imports(source, modules)
        assert every >= parsed_every, f"{name}: the regular expression misses {parsed_every - every}"
        assert top >= parsed_top, (
            f"{name}: imports run on import that are not found at module level: {parsed_top - top}"
        )
    # The closure is the code a stage can run only while nothing is imported by a computed name. The one
    # exception is the extension registries, whose outside code plugin_fingerprint() puts into every key
    # (tests/test_extending.py::test_a_plugins_code_is_part_of_every_cache_key).
    dynamic = [
        name for name, source in modules.items() if re.search(rb"import_module\(|__import__\(|entry_points\(", source)
    ]
    assert set(dynamic) <= {"textclf.core.registry", "textclf.core.code", "textclf.data.sources"}, (
        f"dynamic imports escape the import graph the cache keys hash: {dynamic}"
    )
    # Functions' imports count (a function may run); a package's lazy ones only where it is imported by name.
    trains = import_closure("textclf.pipeline.model_stages")
    assert {
        "textclf.training.trainer",
        "textclf.models.recurrent",
        "textclf.pipeline.transfer",
        "textclf.analysis.plots",
    } <= trains
    assert not trains & {
        "textclf.analysis.verdicts",
        "textclf.analysis.report",
        "textclf.cli.main",
        "textclf.tracking.runs",
        "textclf.pipeline.experiment",
    }
    assert "textclf.training.trainer" not in import_closure("textclf.pipeline.data_stages")


def test_a_stage_whose_compute_is_outside_its_code_is_refused(tmp_path):
    from textclf.core.cache import StageCache
    from textclf.pipeline.stage import run_stage

    def compute(tmp):  # defined in this test module, which no stage's code imports
        return None

    with pytest.raises(RuntimeError, match="outside textclf.pipeline.data_stages's imports"):
        run_stage(StageCache(tmp_path), "prepare", {"a": 1}, [], compute=compute, load=lambda p: p)


def test_code_identity_ignores_comments_docstrings_and_layout_but_not_behaviour():
    from textclf.core.code import behaviour_of

    base = b'"""Module doc."""\nimport math\n\nLIMIT = 3\n\n\ndef f(x):\n    """Doc."""\n    return math.floor(x) + LIMIT  # why\n'
    same = [
        base.replace(b"Module doc.", b"Another doc."),
        base.replace(b"# why", b"# a longer reason"),
        base.replace(b'    """Doc."""\n', b""),  # a docstring removed
        base.replace(b"\n\n\n", b"\n\n") + b"\n# trailing\n",
        base.replace(b"math.floor(x) + LIMIT", b"math.floor( x )+LIMIT"),
    ]
    for edited in same:
        assert behaviour_of(edited) == behaviour_of(base), edited
    changed = [
        base.replace(b"LIMIT = 3", b"LIMIT = 4"),
        base.replace(b"math.floor", b"math.ceil"),
        base.replace(b"return", b"x = -x\n    return"),
        base.replace(b"# why", b"") + b"s = 'not a docstring'\n",
    ]
    for edited in changed:
        assert behaviour_of(edited) != behaviour_of(base), edited


def test_behaviour_hashes_remembered_by_one_process_are_those_another_computes(tmp_path):
    import hashlib

    from textclf.core import code

    memo = tmp_path / ".code-behaviour.json"
    expected = code.code_fingerprint.__wrapped__("textclf.core.errors")  # parsed, nothing remembered yet
    try:
        code._behaviour_hash.cache_clear()
        code.remember_in(memo)
        assert code.code_fingerprint.__wrapped__("textclf.core.errors") == expected
        remembered = json.loads(memo.read_text())  # one file: raw source hash -> behaviour hash
        source = code._modules()["textclf.core.errors"]
        assert remembered[hashlib.sha256(source).hexdigest()] == hashlib.sha256(code.behaviour_of(source)).hexdigest()
        # a later process reads it instead of parsing: a (deliberately) wrong entry would show through
        code._behaviour_hash.cache_clear()
        code.remember_in(tmp_path / "other.json")
        memo.write_text(json.dumps({hashlib.sha256(source).hexdigest(): "0" * 64}))
        code.remember_in(memo)
        assert code.code_fingerprint.__wrapped__("textclf.core.errors") != expected
    finally:
        code._behaviour_hash.cache_clear()
        code.remember_in(tmp_path / "unused.json")


def _train(copy_root: Path, cache: Path, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(copy_root), "TEXTCLF_CACHE_DIR": str(cache)}
    args = [
        "--set",
        "data.source=builtin:reviews",
        "--set",
        "data.options={size: 200}",
        "--set",
        "train.epochs=1",
        "--set",
        "encoder.hidden_size=4",
        "--set",
        "embedding.dim=4",
        "--set",
        "train.num_threads=1",
        "--set",
        "evaluate.latency_samples=0",
    ]
    res = subprocess.run(
        [sys.executable, "-m", "textclf", "train", "-q", "--no-track", *args, "--metrics-out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.slow
def test_an_edit_recomputes_the_stages_whose_code_it_touches_and_no_other(tmp_path):
    root = tmp_path / "site"
    shutil.copytree(PACKAGE, root / "textclf", ignore=shutil.ignore_patterns("__pycache__"))
    probe = subprocess.run(
        [sys.executable, "-c", "import textclf; print(textclf.__file__)"],
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.stdout.strip().startswith(str(root)), probe  # the copy is what runs
    cache = tmp_path / "cache"

    def corpora() -> int:
        return len(list((cache / "datasets" / "builtin").glob("*.parquet")))

    def edit(relative: str) -> None:  # a new module-level constant: the code behaves differently
        path = root / "textclf" / relative
        path.write_text(path.read_text() + "\n_EDITED = 1\n")

    def reword(relative: str) -> None:  # a comment, a docstring and the layout change; the behaviour does not
        path = root / "textclf" / relative
        source = path.read_text()
        first_docstring = source.index('"""') + 3
        source = source[:first_docstring] + "Reworded. " + source[first_docstring:]
        path.write_text(source.replace("\n\n\n", "\n\n\n\n") + "\n# a comment that changes nothing the code does\n")

    first = _train(root, cache, tmp_path / "a.json")
    assert not first["cached"] and corpora() == 1
    # Two edits that must both keep every stage a hit, in one run (a key can only change with an edit, so a
    # hit after both is a hit after either, and after none): a change to a module no stage runs (the
    # diagnostics verdicts), and documentation only in the encoder's module.
    edit("analysis/verdicts.py")
    reword("models/recurrent.py")
    unchanged = _train(root, cache, tmp_path / "b.json")
    assert unchanged["cached"] and unchanged["model_dir"] == first["model_dir"] and corpora() == 1
    edit("models/recurrent.py")
    model_fix = _train(root, cache, tmp_path / "d.json")
    assert not model_fix["cached"] and model_fix["model_dir"] != first["model_dir"]
    assert corpora() == 1  # the corpus generator did not change: its corpus is reused
    edit("data/corpora/reviews.py")
    corpus_fix = _train(root, cache, tmp_path / "e.json")
    assert not corpus_fix["cached"] and corpus_fix["model_dir"] != model_fix["model_dir"]
    assert corpora() == 2  # the built-in corpus is generated again


def test_every_stage_the_package_keys_names_its_code():
    # key_of("<stage>", ...) / run_stage(cache, "<stage>", ...) anywhere in the package: each stage must be in
    # STAGE_CODE (a missing one fails only when that stage runs, e.g. a tuning study).
    from textclf.pipeline.stage import STAGE_CODE

    named = set()
    for source in _modules().values():
        named |= {m.decode() for m in re.findall(rb'(?:key_of|run_stage)\(\s*(?:cache,\s*)?"([\w-]+)"', source)}
    assert {"prepare", "tokenize", "embed", "train", "evaluate", "cost", "tfidf", "tune"} <= named
    assert named <= set(STAGE_CODE), f"stages without code in STAGE_CODE: {named - set(STAGE_CODE)}"
    for module in set(STAGE_CODE.values()):
        import_closure(module)  # each is a module of the package
