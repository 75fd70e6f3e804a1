"""medcurate.fingerprint: the import scan behind each step's code digest."""

from __future__ import annotations

from medcurate import fingerprint


def test_the_statement_walk_finds_every_import_the_full_walk_finds():
    """Imports are statements, so walking statement bodies only (fast, on every Snakemake start)
    must find exactly what ast.walk finds, in every module of the package; the snippet covers
    imports under try/except/else/finally, with, for/while-else, match and class bodies."""
    import ast

    snippet = (
        "import a\n"
        "def f():\n    try:\n        import b\n    except E:\n        import c\n    else:\n        import d\n"
        "    finally:\n        from . import e\n"
        "class K:\n    with x:\n        import g\n    for i in y:\n        pass\n    else:\n        import h\n"
        "while z:\n    pass\nelse:\n    import i\n"
        "match v:\n    case 1:\n        import j\n"
        "if TYPE_CHECKING: import k\n"
    )
    sources = [snippet] + [p.read_text(encoding="utf-8") for p in sorted(fingerprint.PACKAGE.rglob("*.py"))]
    for text in sources:
        tree = ast.parse(text)
        full = [ast.dump(n) for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
        fast = [ast.dump(n) for n in fingerprint._statements(tree.body) if isinstance(n, (ast.Import, ast.ImportFrom))]
        assert sorted(fast) == sorted(full)
    assert len([n for n in fingerprint._statements(ast.parse(snippet).body) if isinstance(n, (ast.Import, ast.ImportFrom))]) == 10
