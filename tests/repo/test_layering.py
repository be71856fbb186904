"""The layering rule (docs/ARCHITECTURE.md; the contracts are pyproject's ``[tool.importlinter]``): flows over
m2ugen_data over m2ugen_model, Prefect only behind flows, test doubles only in tests and benchmarks, no import
cycle at any level, and the declared cross-package imports made lazily. The checkers are shown to fail on a
small planted tree that breaks each rule once, so a passing run means something."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path
from paths import REPO

ROOT = REPO
# no cache: a stale .import_linter_cache once hid a package cycle that a fresh clone reported
LINT = ("import sys; from importlinter.cli import lint_imports; "
        "sys.exit(lint_imports(config_filename=sys.argv[1], no_cache=True))")
CONTRACTS = ("flows over m2ugen_data over m2ugen_model", "Prefect only behind flows",
             "test doubles only in tests and benchmarks", "no import cycles")
# package -> the packages it may import only inside functions (declared exceptions, or a lower layer that
# pulls in torch/transformers and must not load with the CLI)
LAZY_ONLY = {"m2ugen_data": ("m2ugen_model", "flows"), "m2ugen_model": ("m2ugen_data",)}


def lint(config: Path, cwd: Path) -> tuple[int, str]:
    """Run import-linter with ``config`` over the packages importable from ``cwd``: (exit code, report)."""
    env = {**os.environ, "COLUMNS": "200"}  # one contract per line in the report
    res = subprocess.run([sys.executable, "-c", LINT, str(config)], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=300)
    return res.returncode, res.stdout + res.stderr


def eager_imports(path: Path) -> set[str]:
    """Modules a file imports when it is imported: module level (and class bodies), not inside functions."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                found.add(child.module)
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return found


def eager_violations(root: Path) -> list[str]:
    """``file: module`` for each import that ``LAZY_ONLY`` says must sit inside a function."""
    out = []
    for package, lazy in LAZY_ONLY.items():
        for path in sorted((root / package).rglob("*.py")):
            for module in sorted(eager_imports(path)):
                if module.split(".")[0] in lazy:
                    out.append(f"{path.relative_to(root)}: {module}")
    return out


def broken(report: str) -> set[str]:
    return {name for name in CONTRACTS if re.search(re.escape(name) + r"\s+BROKEN", report)}


def test_the_tree_keeps_the_layering_contracts() -> None:
    code, report = lint(ROOT / "pyproject.toml", ROOT)
    assert code == 0 and not broken(report), report


def test_cross_package_imports_are_lazy() -> None:
    assert eager_violations(ROOT) == []


PLANTED = {
    "m2ugen_data/__init__.py": "",
    "m2ugen_data/a.py": "from m2ugen_data import b\n",  # a cycle: a <-> b
    "m2ugen_data/b.py": "from m2ugen_data import a\n",
    "m2ugen_data/runs_flows.py": "import prefect\n",  # Prefect outside flows
    "m2ugen_data/uses_a_double.py": "from m2ugen_data.testing import fake\n",  # a test double in production
    "m2ugen_data/testing/__init__.py": "",
    "m2ugen_data/testing/fake.py": "",
    "m2ugen_data/demo.py": "def main():\n    import flows.build\n",  # the declared entry points
    "m2ugen_data/cli/__init__.py": "",
    "m2ugen_data/cli/serve.py": "def serve():\n    import flows.build\n",
    "m2ugen_model/__init__.py": "",
    "m2ugen_model/model.py": "import m2ugen_data.b\n",  # the model over the pipeline, and eagerly
    "m2ugen_model/eval/__init__.py": "",
    "m2ugen_model/eval/audio.py": "def kl():\n    import m2ugen_data.a\n",  # the declared, lazy exceptions
    "m2ugen_model/eval/adherence.py": "def measure():\n    import m2ugen_data.a\n",
    "m2ugen_model/testing/__init__.py": "",
    "flows/__init__.py": "",
    "flows/build.py": "import prefect\nimport m2ugen_data.a\n",
}


def test_the_checkers_fail_on_a_planted_violation_of_each_rule(tmp_path: Path) -> None:
    for name, text in PLANTED.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())  # the same contracts
    code, report = lint(tmp_path / "pyproject.toml", tmp_path)
    assert code != 0 and broken(report) == set(CONTRACTS), report
    assert re.search(r"\.(a -> \.b|b -> \.a) \(1 import\)", report), report  # the cycle is named
    assert "m2ugen_data.runs_flows -> prefect" in report and "m2ugen_data.uses_a_double" in report, report
    assert eager_violations(tmp_path) == ["m2ugen_model/model.py: m2ugen_data.b"]
