#!/usr/bin/env python3
"""Checks the shape of a crate's module tree: no file over a line limit, and no cycle among
its modules (module A naming module B while B names A, directly or through others).

A module naming its own ancestor or descendant is not counted (a parent declares its
children; a child may use the types its parent defines): the check is about modules that
should not know each other. Paths are read from the code with comments stripped:
`crate::a::b`, `super::x`, `self::y` and grouped `use` trees.

Usage: check-modules.py CRATE_SRC_DIR MAX_LINES
"""

import re
import sys
from pathlib import Path

PATH = re.compile(r"\b(crate|super|self)((?:::\w+)+)(::\{)?")


def module_of(src: Path, file: Path) -> tuple[str, ...]:
    parts = list(file.relative_to(src).with_suffix("").parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts.pop()
    return tuple(parts)


def strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def expand_group(text: str, start: int) -> list[str]:
    """The paths inside a `{...}` use group opening at `start` (just after the brace)."""
    depth, i, item, items = 1, start, "", []
    while i < len(text) and depth:
        c = text[i]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        if depth == 1 and c == ",":
            items.append(item)
            item = ""
        elif depth >= 1 and not (depth == 1 and c == "{"):
            item += c
        i += 1
    items.append(item)
    paths = []
    for item in items:
        item = item.strip()
        if not item:
            continue
        head = re.match(r"(\w+(?:::\w+)*)(?:::\{(.*)\})?", item, flags=re.S)
        if not head:
            continue
        paths.append(head.group(1))
        if head.group(2) is not None:
            paths.extend(head.group(1) + "::" + p for p in expand_group(head.group(2) + "}", 0))
    return paths


def referenced(module: tuple[str, ...], text: str, known: set) -> set:
    found = set()
    for m in PATH.finditer(text):
        root, rest, group = m.group(1), m.group(2), m.group(3)
        tails = [rest.strip(":")]
        if group:
            tails = [tails[0] + "::" + p for p in expand_group(text, m.end())]
        for tail in tails:
            names = [n for n in tail.split("::") if n]
            if root == "crate":
                base = ()
            elif root == "super":
                base = module[:-1]
                while names and names[0] == "super":
                    names.pop(0)
                    base = base[:-1]
            else:
                base = module
            path = base + tuple(names)
            # The longest prefix that is a module of this crate.
            while path and path not in known:
                path = path[:-1]
            if path:
                found.add(path)
    return found


def related(a: tuple, b: tuple) -> bool:
    return a[: len(b)] == b or b[: len(a)] == a


def main() -> int:
    src, max_lines = Path(sys.argv[1]), int(sys.argv[2])
    files = sorted(p for p in src.rglob("*.rs") if "bin" not in p.relative_to(src).parts)
    status = 0
    for file in files:
        lines = file.read_text().count("\n")
        if lines > max_lines:
            print(f"modules: {file} has {lines} lines (at most {max_lines})", file=sys.stderr)
            status = 1
    modules = {module_of(src, f): f for f in files}
    known = set(modules)
    edges = {
        m: {n for n in referenced(m, strip_comments(f.read_text()), known) if not related(m, n)}
        for m, f in modules.items()
    }
    # Depth-first search for a back edge; report each cycle once.
    state, stack, cycles = {}, [], set()

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for n in sorted(edges[m]):
            if state.get(n) == "open":
                cycle = stack[stack.index(n):] + [n]
                cycles.add(" -> ".join("::".join(c) or "crate" for c in cycle))
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = "done"

    for m in sorted(modules):
        if m not in state:
            visit(m)
    for cycle in sorted(cycles):
        print(f"modules: import cycle in {src}: {cycle}", file=sys.stderr)
        status = 1
    if status == 0:
        print(f"modules: {src}: {len(modules)} modules, no cycle, none over {max_lines} lines")
    return status


if __name__ == "__main__":
    sys.exit(main())
