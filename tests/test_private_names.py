"""No private name of another package outside training/compat.py (issue 27).

A private name (``_x``) of another package can change in any release without notice; the one
module allowed to use them lists each with the versions it was checked on and a test
(tests/training/test_compat.py). This test reads the code (ast) of cxrviewer/, training/, bench/
and scripts/ and fails on: an import of another package's private module or name
(``import highdicom._standard_utils``, ``from keras.src... import``), an attribute ``obj._x``
or ``getattr(obj, "_x")`` / ``setattr`` / ``hasattr`` whose name no module of ours defines.
A name of ours that happens to be another package's too is not caught (the scan does not know
types): reviews still matter.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCANNED = ("cxrviewer", "training", "bench", "scripts")
#: the one module allowed to touch private names of other packages
GUARDED = {Path("training/compat.py")}
#: documented, public names that start with an underscore
PUBLIC = {
    "_exit",  # os._exit: Python's documented exit without clean-up
    "_MEIPASS",  # sys._MEIPASS: PyInstaller's documented bundle folder
    "_asdict", "_replace", "_fields", "_make",  # namedtuple's documented API
}
OUR_PACKAGES = {"cxrviewer", "training", "tests", "common", "helpers", "orthancserver", "tinymodel", "dicomfactory"}
#: modules that are another package's internals without an underscore in their name
INTERNAL_MODULES = ("keras.src",)
#: private names of other packages that our code once reached into: refused even where a name
#: of ours is spelt the same (the scan does not know types; ``ProcessPoolExecutor._processes``
#: hid behind the node's own ``self._processes``), so a name of ours never looks like one of them
KNOWN_FOREIGN = {"_processes", "_run_loop_delay", "_reactor_checkpoint", "_character_set",
                 "_reading_validation_mode", "_maybe_symbolic_build", "_content"}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__")) and name not in PUBLIC


def _files() -> list[Path]:
    return sorted(p for d in SCANNED for p in (REPO / d).rglob("*.py"))


def _own_names(trees: dict[Path, ast.AST]) -> set[str]:
    """Every name our code defines: functions, classes, module and local names, arguments,
    attributes it assigns."""
    own: set[str] = set()
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                own.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                own.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and \
                    isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                own.add(node.attr)
            elif isinstance(node, ast.arg):
                own.add(node.arg)
            elif isinstance(node, ast.alias) and node.asname:
                own.add(node.asname)
    return own


def _foreign(module: str) -> bool:
    return module.split(".")[0] not in OUR_PACKAGES


def violations(files: list[Path]) -> list[str]:
    trees = {path: ast.parse(path.read_text(encoding="utf-8"), str(path)) for path in files}
    own = _own_names(trees)
    found = []
    for path, tree in trees.items():
        rel = path.relative_to(REPO) if path.is_relative_to(REPO) else path
        if rel in GUARDED:
            continue
        for node in ast.walk(tree):
            where = f"{rel}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if _foreign(alias.name) and (any(_private(p) for p in alias.name.split("."))
                                                 or alias.name.startswith(INTERNAL_MODULES)):
                        found.append(f"{where}: import {alias.name}")
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and _foreign(node.module):
                if any(_private(p) for p in node.module.split(".")) or node.module.startswith(INTERNAL_MODULES):
                    found.append(f"{where}: from {node.module} import ...")
                found += [f"{where}: from {node.module} import {a.name}" for a in node.names if _private(a.name)]
            elif isinstance(node, ast.Attribute) and _private(node.attr) and (node.attr not in own
                                                                               or node.attr in KNOWN_FOREIGN):
                found.append(f"{where}: .{node.attr}")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                    node.func.id in ("getattr", "setattr", "hasattr", "delattr") and len(node.args) > 1 and \
                    isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str) and \
                    _private(node.args[1].value) and (node.args[1].value not in own
                                                      or node.args[1].value in KNOWN_FOREIGN):
                found.append(f"{where}: {node.func.id}(..., {node.args[1].value!r})")
    return found


def test_no_private_name_of_another_package_outside_the_guarded_module():
    found = violations(_files())
    assert found == [], (
        "private names of other packages used outside training/compat.py (use a public API, or add "
        "the touch point there with the versions checked and a canary test):\n" + "\n".join(found)
    )


def test_the_scan_finds_what_it_looks_for(tmp_path):
    """The scan itself: each kind of use is caught in a module outside the guarded one."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import highdicom._standard_utils\n"
        "from keras.src.backend.tensorflow import trainer\n"
        "from pydicom.filewriter import _correct_ambiguous\n"
        "def f(ds, dul, pool):\n"
        "    dul._run_loop_delay = 0.005\n"
        "    pool._processes = None\n"
        "    return ds._character_set, getattr(dul, '_reactor_checkpoint', None), os._exit\n"
    )
    found = [line.split(": ", 1)[1] for line in violations([*_files(), probe]) if line.startswith(str(probe))]
    assert sorted(found) == sorted([
        "import highdicom._standard_utils", "from keras.src.backend.tensorflow import ...",
        "from pydicom.filewriter import _correct_ambiguous", "._run_loop_delay", "._processes",
        "._character_set", "getattr(..., '_reactor_checkpoint')",
    ]), found
