"""The packages follow the data flow: a lower layer never imports a higher one, and product
code never imports the benchmarks' package (``assistant.eval``)."""

import ast
from pathlib import Path

ASSISTANT = Path(__file__).resolve().parents[1] / "assistant"
# each package and what it may import besides itself and the shared top-level modules
# (settings, models, text); runtime wires the loaded models together for all of them
MAY_IMPORT = {
    "speech": set(),
    "retrieval": {"speech", "runtime"},
    "index": {"speech", "retrieval", "runtime"},
    "answer": {"speech", "retrieval", "runtime"},
    "runtime": {"speech", "retrieval", "index", "answer"},
    "interfaces": {"speech", "retrieval", "index", "answer", "runtime"},
    "eval": {"speech", "retrieval", "index", "answer", "runtime"},
    "training": {"speech", "retrieval", "runtime", "eval"},
}
SHARED = {"settings", "models", "text"}
# `s2r eval`, `s2r bench build` and `s2r train` load their code on demand, in their own commands
ON_DEMAND = {("interfaces", "eval"), ("interfaces", "training")}


def imported_layers(path: Path) -> set[tuple[str, bool]]:
    """(the assistant package imported, whether at module level) for each import."""
    tree = ast.parse(path.read_text())
    top_level = {id(node) for node in tree.body}
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "assistant" and len(parts) > 1:
                found.add((parts[1], id(node) in top_level))
    return found


def test_no_layer_imports_a_higher_one():
    wrong = []
    for path in sorted(ASSISTANT.rglob("*.py")):
        relative = path.relative_to(ASSISTANT)
        layer = relative.parts[0].removesuffix(".py")
        if layer in SHARED:
            allowed = SHARED
        elif layer == "__main__":
            allowed = {"interfaces"}
        elif layer == "__init__":
            continue  # the public API names its classes as strings, loaded on first use
        else:
            allowed = MAY_IMPORT[layer] | SHARED | {layer}
        for imported, module_level in imported_layers(path):
            on_demand_ok = (layer, imported) in ON_DEMAND and not module_level
            if imported not in allowed and not on_demand_ok:
                wrong.append(f"{relative} imports assistant.{imported}")
    assert not wrong, "\n".join(wrong)


def test_assistant_keeps_a_few_top_level_modules():
    modules = [p.name for p in ASSISTANT.glob("*.py")]
    assert len(modules) <= 8, modules


def test_the_public_api_loads_each_name_where_it_lives():
    import assistant

    for name in ("Settings", "Runtime", "Retriever", "Answerer"):
        assert getattr(assistant, name).__name__ == name
