#!/usr/bin/env python3
"""Count the public declarations of a crate's source, as issue 25 defines them.

Usage: scripts/count-pub.py [crates/oidc-bearer/src] [--list] [--max N]

How it counts (a textual count, no compiler involved):
- Every `.rs` file under the source directory, minus the files of modules declared under
  `#[cfg(test)]` (`#[cfg(test)] mod tests;` excludes `tests.rs` / `tests/`).
- Comments (`//`, `///`, `//!`, `/* */`) and string literals are blanked first, so examples in
  docs do not count.
- Any item preceded by `#[cfg(test)]` (a `mod tests { .. }`, a test-only fn) is removed with its
  braces.
- A declaration is the keyword `pub` (not `pub(crate)`, `pub(super)`, `pub(self)`,
  `pub(in ..)`) followed by an item keyword: fn (also const/async/unsafe fn), struct, enum,
  union, trait, type, const, static, mod, use, and `#[macro_export] macro_rules!` for macros.
  One `pub use` statement counts once, however many names it re-exports (`pub use a::{B, C};`
  is one declaration). Struct fields and enum variants are not declarations; trait methods and
  associated items of a trait (written without `pub`) are not counted.
- Items in private modules still count when written `pub` (the crate denies `unreachable_pub`,
  so such items are re-exported somewhere).
Prints the total and a count per kind; `--list` prints each declaration; `--max N` exits 1 when
the total exceeds N.
"""
import argparse
import re
import sys
from pathlib import Path

ITEM = re.compile(
    r"\bpub\s+(?:(?:const|async|unsafe|extern\s+\"[^\"]*\")\s+)*"
    r"(fn|struct|enum|union|trait|type|const|static|mod|use)\b(\s+\w+)?"
)
CFG_TEST = re.compile(r"#\[cfg\(test\)\]")
MACRO = re.compile(r"#\[macro_export\]\s*(?:#\[[^\]]*\]\s*)*macro_rules!\s*(\w+)")


def blank(src: str) -> str:
    """Comments and string/char literals replaced by spaces (newlines kept)."""
    out, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif src.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", src[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', src[i:]) and not (i and (src[i - 1].isalnum() or src[i - 1] == "_")):
            hashes = re.match(r"r(#*)\"", src[i:]).group(1)
            end = src.find('"' + hashes, i + 2 + len(hashes))
            j = n if end < 0 else end + 1 + len(hashes)
            out.append(re.sub(r"[^\n]", " ", src[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            j += 1
            out.append(re.sub(r"[^\n]", " ", src[i:j]))
            i = j
        elif c == "'" and re.match(r"'(\\.|[^\\'])'|'\\u\{[0-9a-fA-F]+\}'|'\\x..'", src[i:]):
            m = re.match(r"'(\\.|[^\\'])'|'\\u\{[0-9a-fA-F]+\}'|'\\x..'", src[i:])
            out.append(" " * len(m.group(0)))
            i += len(m.group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def item_end(src: str, start: int) -> int:
    """End of the item starting at `start`: its matching `}` or its `;`, whichever closes it."""
    depth = 0
    for j in range(start, len(src)):
        ch = src[j]
        if ch in "{([":
            depth += 1
        elif ch in "})]":
            depth -= 1
            if depth == 0 and ch == "}":
                return j + 1
        elif ch == ";" and depth == 0:
            return j + 1
    return len(src)


def strip_cfg_test(src: str, path: Path, excluded: set) -> str:
    while True:
        m = CFG_TEST.search(src)
        if not m:
            return src
        # skip further attributes, then cut the item
        k = m.end()
        while True:
            a = re.match(r"\s*#\[", src[k:])
            if not a:
                break
            k = item_end(src, k + a.end() - 1)  # the attribute's brackets
        end = item_end(src, k)
        decl = re.match(r"\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", src[k:end])
        if decl:
            name = decl.group(1)
            base = path.parent if path.name in ("mod.rs", "lib.rs") else path.with_suffix("")
            excluded.add(base / f"{name}.rs")
            excluded.add(base / name)
        src = src[: m.start()] + re.sub(r"[^\n]", " ", src[m.start() : end]) + src[end:]


def main() -> int:
    parser = argparse.ArgumentParser(description="Count a crate's public declarations.")
    parser.add_argument("root", nargs="?", default="crates/oidc-bearer/src")
    parser.add_argument("--list", action="store_true", help="print each declaration")
    parser.add_argument("--max", type=int, help="exit 1 when the count exceeds this")
    options = parser.parse_args()
    root, limit = Path(options.root), options.max
    files = sorted(root.rglob("*.rs"))
    excluded: set = set()
    texts = {}
    for f in files:
        texts[f] = strip_cfg_test(blank(f.read_text()), f, excluded)
    found = []
    for f in files:
        if f in excluded or any(p in excluded for p in f.parents):
            continue
        text = texts[f]
        for m in ITEM.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            found.append((m.group(1), f"{f}:{line}", (m.group(2) or "").strip()))
        for m in MACRO.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            found.append(("macro", f"{f}:{line}", m.group(1)))
    kinds: dict = {}
    for kind, _, _ in found:
        kinds[kind] = kinds.get(kind, 0) + 1
    if options.list:
        for kind, where, name in found:
            print(f"{kind:7} {name:40} {where}")
    print(f"{len(found)} public declarations in {root}: "
          + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])))
    if limit is not None and len(found) > limit:
        print(f"more than {limit}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
