"""The code a DVC stage runs, derived from its imports: what its `deps:` in dvc.yaml must list.

A stage's results depend on every project module its command imports, directly or not,
at module level or inside a function (mlflow-style lazy imports count). Importing a
module also runs its packages' `__init__.py`. dvc.yaml keeps the list by hand, so that
the stage graph stays readable in one file; `tests/test_code_deps.py` compares the two,
so a stage cannot silently miss a module and report stale results after a code change.
"""
from __future__ import annotations

import ast
from pathlib import Path

PROJECT_PACKAGES = ("pipelines", "seqgan_core")


def _module_file(root: Path, module: str) -> Path | None:
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _package_inits(root: Path, module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts)) if (root.joinpath(*parts[:i]) / "__init__.py").is_file()]


def _imports(root: Path, module: str, path: Path) -> set[str]:
    """Project modules that `module` (at `path`) imports anywhere in its body."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            # `from package import name` may name a submodule
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return {m for m in found if m.split(".")[0] in PROJECT_PACKAGES and _module_file(root, m) is not None}


def code_closure(module: str, root: str | Path = ".") -> set[str]:
    """Repository-relative paths of every project source file that running `module` imports."""
    root = Path(root)
    todo, seen = [module], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(_package_inits(root, name))
        todo.extend(_imports(root, name, _module_file(root, name)))
    return {_module_file(root, name).relative_to(root).as_posix() for name in seen}


def stage_module(cmd: str) -> str | None:
    """The module of a stage command `python -m <module> ...`."""
    words = cmd.split()
    return words[words.index("-m") + 1] if "-m" in words[:-1] else None


def missing_and_extra(cmd: str, deps: list[str], root: str | Path = ".") -> tuple[set[str], set[str]]:
    """(source files the stage runs that no dep covers, listed source files it does not run).
    A dep may be a file or a whole folder (`seqgan_core`: every stage imports the package's
    `__init__`, which imports nearly all of it)."""
    module = stage_module(cmd)
    if module is None:
        return set(), set()
    needed = code_closure(module, root)
    folders = tuple(f"{d.rstrip('/')}/" for d in deps if (Path(root) / d).is_dir())
    listed = {d for d in deps if d.endswith(".py") and d.split("/")[0] in PROJECT_PACKAGES}
    return {f for f in needed - listed if not f.startswith(folders)}, listed - needed
