"""The package's modules import each other without a circle, and only downwards through the
layers of the flow (module-level imports only)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "mailer"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def top_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports run when the module loads: at top level, also inside top-level if/try blocks."""
    found: list[ast.Import | ast.ImportFrom] = []
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.If | ast.Try):
            pending += [*node.body, *node.orelse, *getattr(node, "finalbody", [])]
            pending += [s for h in getattr(node, "handlers", []) for s in h.body]
    return found


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in top_level_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
                continue
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([node.module] if node.module else []))
            targets.add(base)
            targets.update(f"{base}.{a.name}" for a in node.names)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


# Top to bottom. A module may import its own subpackage and any subpackage on a lower floor,
# never one on its own floor or above. "mailer" is the package's face (mailer/__init__.py).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("__main__",),
    ("cli",),
    ("web",),
    ("api",),
    ("schedule",),
    ("check",),
    ("send",),
    ("bounces",),
    ("builds",),
    ("message",),
    ("render", "partners"),
    ("transport", "subscribers", "content", "accounts", "webhooks"),
    ("audit", "backup", "events"),
    ("db",),
    ("config",),
    ("config_checks", "schema", "addresses"),
    ("models", "taxonomy", "clock", "errors", "fingerprint", "urls", "logs"),
    ("mailer",),
)


def subpackage(module: str) -> str:
    """mailer.send.store → send; mailer.config → config; mailer → mailer."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def arrows_up(graph: dict[str, set[str]]) -> list[str]:
    """Every import that does not point to a lower floor, as 'importer → imported'."""
    floor = {name: level for level, names in enumerate(LAYERS) for name in names}
    wrong: list[str] = []
    for module, targets in sorted(graph.items()):
        here = subpackage(module)
        for target in sorted(targets):
            there = subpackage(target)
            if there != here and floor[there] <= floor[here]:
                wrong.append(f"{module} → {target}")
    return wrong


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle as a path that ends where it starts, or [] when there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = 2
        path.pop()
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def test_the_checker_finds_a_circle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_the_package() -> None:
    graph = import_graph()
    assert "mailer.taxonomy" in graph["mailer.content.loader"]
    assert "mailer.content.loader" in graph["mailer.content.segments"]


def test_mailer_has_no_import_circle() -> None:
    cycle = find_cycle(import_graph())
    assert not cycle, "import circle: " + " → ".join(cycle)


def test_every_subpackage_has_a_floor() -> None:
    placed = {name for names in LAYERS for name in names}
    assert {subpackage(m) for m in import_graph()} <= placed


def test_the_direction_check_finds_an_arrow_up() -> None:
    assert arrows_up({"mailer.send.store": {"mailer.bounces.classify"},
                      "mailer.bounces.classify": set()}) == []
    assert arrows_up({"mailer.bounces.processing": {"mailer.send.store"},
                      "mailer.send.store": set()}) == ["mailer.bounces.processing → mailer.send.store"]
    assert arrows_up({"mailer.render.a": {"mailer.partners.b"}, "mailer.partners.b": set()}) != []


def test_imports_only_point_down() -> None:
    wrong = arrows_up(import_graph())
    assert not wrong, "imports that point up or sideways:\n" + "\n".join(wrong)
