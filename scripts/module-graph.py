#!/usr/bin/env python3
"""Prints which of pinlb's top-level modules use which, and fails on an import cycle.

    scripts/module-graph.py          the graph, one module a line, lowest layer first
    scripts/module-graph.py --dot    the same as Graphviz

A module `a` uses `b` when code under src/a (or src/a.rs) names `crate::b` outside
comments and tests (`tests.rs` files, and everything from a file's first `#[cfg(test)]`,
where pinlb keeps its unit tests). `main.rs` is the binary and may use anything; `lib.rs`
only lists modules and builds the server.
"""
import re
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
CRATE_PATH = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")
# `use crate::{a, b::c}` names several modules at once.
CRATE_GROUP = re.compile(r"\bcrate::\{([^}]*)\}")


def top_module(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".rs")


def code_lines(text: str):
    in_block = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped == "#[cfg(test)]":
            return
        if in_block:
            if "*/" in stripped:
                in_block = False
            continue
        if stripped.startswith("/*"):
            in_block = "*/" not in stripped
            continue
        yield line.split("//", 1)[0]


def graph():
    modules = {top_module(p) for p in SRC.rglob("*.rs")} - {"main", "lib"}
    uses = {m: set() for m in modules}
    for path in SRC.rglob("*.rs"):
        me = top_module(path)
        if me not in uses or path.name == "tests.rs":
            continue
        for line in code_lines(path.read_text()):
            names = set(CRATE_PATH.findall(line))
            for group in CRATE_GROUP.findall(line):
                names.update(n.strip().split("::")[0] for n in group.split(","))
            uses[me].update(n for n in names if n in modules and n != me)
    return uses


def cycle(uses):
    """One import cycle as a list of modules, or None."""
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for n in sorted(uses[m]):
            if state.get(n) == "open":
                return stack[stack.index(n):] + [n]
            if n not in state:
                found = visit(n)
                if found:
                    return found
        stack.pop()
        state[m] = "done"
        return None

    for m in sorted(uses):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def layers(uses):
    """Modules ordered so that each comes after everything it uses."""
    order, placed = [], set()
    while len(placed) < len(uses):
        ready = sorted(m for m in uses if m not in placed and uses[m] <= placed)
        if not ready:
            break
        order.extend(ready)
        placed.update(ready)
    return order


def main():
    uses = graph()
    found = cycle(uses)
    if "--dot" in sys.argv:
        print("digraph pinlb {")
        for m in sorted(uses):
            for n in sorted(uses[m]):
                print(f'  "{m}" -> "{n}";')
        print("}")
    else:
        for m in layers(uses):
            print(f"{m:<10} uses {', '.join(sorted(uses[m])) or '-'}")
    if found:
        print("import cycle: " + " -> ".join(found), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
