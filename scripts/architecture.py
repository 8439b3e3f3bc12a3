"""The module map in ARCHITECTURE.md, read from the code: each module's one job (its docstring's first
sentence), its size and the project modules it imports, so the map cannot drift from the code.

    python scripts/architecture.py           # print the table
    python scripts/architecture.py --write   # rewrite it in ARCHITECTURE.md
    python scripts/architecture.py --check   # exit 1 if ARCHITECTURE.md's table is not the code's

tests/test_architecture.py runs the check.
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "seal_lightning"
DOCUMENT = REPO / "ARCHITECTURE.md"
START, END = "<!-- module map: scripts/architecture.py --write -->", "<!-- end of module map -->"


@dataclass(frozen=True)
class Module:
    name: str  # dotted, without the package: "sampling.vllm"
    job: str
    lines: int
    imports: tuple[str, ...]  # project modules it uses at run time
    type_imports: tuple[str, ...]  # project modules it names in annotations only (under TYPE_CHECKING)


def modules(package: Path = PACKAGE) -> list[Module]:
    found = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package).with_suffix("")
        if relative.name == "__main__":
            continue
        name = ".".join(relative.parts).removesuffix(".__init__").removesuffix("__init__") or "(package)"
        text = path.read_text()
        tree = ast.parse(text)
        runtime, typing_only = project_imports(tree)
        found.append(Module(name, first_sentence(ast.get_docstring(tree) or ""), len(text.splitlines()),
                            runtime, typing_only))  # fmt: skip
    return found


def first_sentence(docstring: str) -> str:
    paragraph = " ".join(docstring.split("\n\n")[0].split())
    return paragraph.partition(". ")[0].rstrip(".")


def project_imports(tree: ast.Module) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(run-time imports, annotation-only imports) of seal_lightning modules, without the package prefix."""
    typing_nodes = {
        id(child)
        for node in tree.body
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for child in ast.walk(node)
    }
    runtime, typing_only = set(), set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("seal_lightning"):
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names if alias.name.startswith("seal_lightning")]
        for name in names:
            short = name.removeprefix("seal_lightning").removeprefix(".") or "(package)"
            (typing_only if id(node) in typing_nodes else runtime).add(short)
    return tuple(sorted(runtime)), tuple(sorted(typing_only - runtime))


def table(found: list[Module]) -> str:
    rows = ["| module | its one job | lines | imports (types only in parentheses) |", "|---|---|---|---|"]
    for module in found:
        uses = ", ".join([*module.imports, *(f"({name})" for name in module.type_imports)])
        rows.append(f"| `{module.name}` | {module.job} | {module.lines} | {uses} |")
    return "\n".join(rows)


def documented() -> str:
    text = DOCUMENT.read_text()
    return text[text.index(START) + len(START) : text.index(END)].strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    current = table(modules())
    if args.write:
        text = DOCUMENT.read_text()
        DOCUMENT.write_text(text[: text.index(START) + len(START)] + "\n" + current + "\n" + text[text.index(END) :])
    elif args.check:
        if documented() != current:
            print("ARCHITECTURE.md's module map is not the code's: python scripts/architecture.py --write")
            return 1
    else:
        print(current)
    return 0


if __name__ == "__main__":
    sys.exit(main())
