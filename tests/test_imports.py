"""Module boundaries: the import graph of collab/ has no cycle (imports inside functions
included), collab/ never imports configs/ or experiments/, and models/ and data/ import nothing
else of collab/ (only each other)."""
import ast
import os

ROOT = os.path.join(os.path.dirname(__file__), "..", "collab")


def _module_name(path: str) -> str:
  rel = os.path.relpath(path, os.path.dirname(ROOT))[:-len(".py")].split(os.sep)
  return ".".join(rel[:-1] if rel[-1] == "__init__" else rel)


def import_graph() -> dict[str, set[str]]:
  """{module: modules it imports}, every import statement anywhere in the file."""
  files = [os.path.join(d, n) for d, _, ns in os.walk(ROOT) for n in ns if n.endswith(".py")]
  modules = {_module_name(f): f for f in files}
  graph = {}
  for name, path in modules.items():
    with open(path) as f:
      tree = ast.parse(f.read(), path)
    deps = set()
    for node in ast.walk(tree):
      if isinstance(node, ast.Import):
        deps.update(a.name for a in node.names)
      elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
        deps.add(node.module)
        deps.update(f"{node.module}.{a.name}" for a in node.names)
    graph[name] = {d for d in deps if d in modules or d.split(".")[0] in ("configs",
                                                                          "experiments")}
  return graph


def _cycle(graph):
  """A cycle as a list of modules, or None (depth-first search)."""
  state, stack = {}, []

  def visit(node):
    state[node] = "open"
    stack.append(node)
    for dep in sorted(graph.get(node, ())):
      if state.get(dep) == "open":
        return stack[stack.index(dep):] + [dep]
      if dep not in state:
        found = visit(dep)
        if found:
          return found
    stack.pop()
    state[node] = "done"
    return None

  for node in sorted(graph):
    if node not in state:
      found = visit(node)
      if found:
        return found
  return None


def test_no_import_cycle():
  graph = {k: {d for d in v if d.startswith("collab")} for k, v in import_graph().items()}
  assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_a_cycle_is_found():
  assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
  assert _cycle({"a": {"b"}, "b": set()}) is None


def test_collab_never_imports_configs_or_experiments():
  bad = {m: sorted(d for d in deps if d.split(".")[0] in ("configs", "experiments"))
         for m, deps in import_graph().items()}
  assert not {m: d for m, d in bad.items() if d}


def test_models_and_data_import_nothing_else_of_collab():
  for name, deps in import_graph().items():
    if name.startswith(("collab.models", "collab.data")):
      # collab.errors and collab.files (importing nothing of collab) are usable everywhere.
      others = {d for d in deps if d.startswith("collab.")
                and not d.startswith(("collab.models", "collab.data", "collab.errors",
                                      "collab.files"))}
      assert not others, (name, others)
