"""ARCHITECTURE.md's module map is read from the code and must match it; no module outgrows 400 lines."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "architecture.py"
sys.path.insert(0, str(SCRIPT.parent))
import architecture  # noqa: E402


def test_the_documented_module_map_is_the_codes():
    result = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_no_module_is_over_400_lines():
    assert [(m.name, m.lines) for m in architecture.modules() if m.lines > 400] == []


def test_the_map_reads_jobs_and_separates_type_only_imports(tmp_path):
    package = tmp_path / "seal_lightning"
    (package / "sub").mkdir(parents=True)
    (package / "sub" / "__init__.py").write_text('"""A sub-package. More words."""\n')
    (package / "leaf.py").write_text('"""Does one thing.\n\nDetails."""\n')
    (package / "user.py").write_text(
        '"""Uses the leaf."""\nfrom typing import TYPE_CHECKING\n\nfrom seal_lightning.leaf import x\n'
        "if TYPE_CHECKING:\n    from seal_lightning.sub import y\n    from seal_lightning.leaf import z\n"
    )
    found = {m.name: m for m in architecture.modules(package)}
    assert (found["leaf"].job, found["sub"].job, found["user"].job) == (
        "Does one thing",
        "A sub-package",
        "Uses the leaf",
    )
    assert (found["user"].imports, found["user"].type_imports) == (("leaf",), ("sub",))
    assert "| `user` | Uses the leaf | 7 | leaf, (sub) |" in architecture.table(list(found.values()))
