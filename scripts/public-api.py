#!/usr/bin/env python3
"""The public API of the published crates, as sorted lists of paths, checked against snapshots.

Usage:
  scripts/public-api.py            check: exit 1 (and print the difference) when a crate's surface
                                   differs from crates/<crate>/public-api.txt
  scripts/public-api.py --bless    rewrite the snapshots (commit them with the change that grows or
                                   shrinks the surface: a reviewed decision)

How: `cargo rustdoc --lib -- -Z unstable-options --output-format json` (rustdoc run with
RUSTC_BOOTSTRAP=1, so that a stable toolchain accepts the flag) for each library crate, with the features docs.rs builds, then a
walk from the crate root through public modules and re-exports. One line per
  - item: `mod`, `struct`, `enum`, `trait`, `fn`, `const`, `static`, `type`, `macro`, by the path a
    user writes (a re-export is listed where it is re-exported, under its public name);
  - member: a struct's public fields, an enum's variants, the methods and associated items of
    inherent impls, the items of a public trait;
  - trait impl: `impl <Trait> for <Type>` for every explicit impl of a named trait on a public type
    (auto traits and blanket impls left out), so that dropping `Clone` or `Deserialize` shows.
Items hidden from the docs (`#[doc(hidden)]`, the sealed hooks) are not part of the surface.
Signatures are not compared: a changed signature of an existing item is left to review.
`oidc-bearer-cli` is a binary without a library: it has no API surface to list.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# crate -> the features docs.rs builds (see each Cargo.toml's [package.metadata.docs.rs])
CRATES = {
    "oidc-bearer-shared": ["--features", "fetch"],
    "oidc-bearer": ["--features", "aws-lc-rs,axum,metrics,ml-dsa"],
    "oidc-bearer-kubernetes": [],
    "oidc-bearer-registry": [],
    "oidc-bearer-client": ["--features", "metadata,dpop"],
    "oidc-bearer-testing": [],
}
ITEM_KINDS = {"module", "struct", "enum", "trait", "function", "constant", "static", "type_alias",
              "macro", "union", "trait_alias"}
SHORT = {"module": "mod", "function": "fn", "constant": "const", "type_alias": "type"}


def rustdoc_json(krate: str, features: list) -> dict:
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    # RUSTC_BOOTSTRAP=1 for rustdoc alone, through a wrapper: set for the whole cargo command, it
    # would change every dependency's fingerprint, and the next ordinary build would redo them all
    # (a minute and more per switch, measured).
    wrapper = target / "rustdoc-json.sh"
    wrapper.parent.mkdir(parents=True, exist_ok=True)
    wrapper.write_text(f'#!/bin/sh\nRUSTC_BOOTSTRAP=1 exec {os.environ.get("RUSTDOC", "rustdoc")} "$@"\n')
    wrapper.chmod(0o755)
    env = dict(os.environ, RUSTDOC=str(wrapper))
    cmd = ["cargo", "rustdoc", "-q", "-p", krate, "--lib", *features, "--",
           "-Z", "unstable-options", "--output-format", "json"]
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)
    return json.loads((target / "doc" / (krate.replace("-", "_") + ".json")).read_text())


def type_name(ty: dict, paths: dict) -> str:
    """A short rendering of an impl's `for` type: enough to tell which type it is."""
    if "resolved_path" in ty:
        return ty["resolved_path"]["path"].split("::")[-1]
    if "generic" in ty:
        return ty["generic"]
    if "borrowed_ref" in ty:
        return "&" + type_name(ty["borrowed_ref"]["type"], paths)
    return next(iter(ty))


def surface(doc: dict) -> list:
    index, paths = doc["index"], doc["paths"]
    lines: set = set()
    seen: set = set()

    def trait_path(trait: dict) -> str:
        known = paths.get(str(trait["id"]))
        if known and known["crate_id"] == 0:
            return "::".join(known["path"])
        return trait["path"].split("::")[-1] if known is None else known["path"][-1]

    def impls(item_id: int, owner: str, impl_ids: list) -> None:
        for impl_id in impl_ids:
            imp = index.get(str(impl_id))
            if imp is None:
                continue
            inner = imp["inner"]["impl"]
            if inner["is_synthetic"] or inner["blanket_impl"] is not None:
                continue
            if inner["trait"] is None:
                for member in inner["items"]:
                    m = index.get(str(member))
                    if m and m["visibility"] == "public":
                        kind = next(iter(m["inner"]))
                        lines.add(f"{SHORT.get(kind, kind)} {owner}::{m['name']}")
            else:
                negative = "!" if inner["is_negative"] else ""
                lines.add(f"impl {negative}{trait_path(inner['trait'])} for {owner}")

    def visit(item_id: int, path: str) -> None:
        item = index.get(str(item_id))
        if item is None:  # an item of another crate, re-exported
            lines.add(f"use {path}")
            return
        kind = next(iter(item["inner"]))
        if kind == "use":
            use = item["inner"]["use"]
            if use["id"] is None:
                lines.add(f"use {path} = {use['source']}")
            elif use["is_glob"]:
                target = index.get(str(use["id"]))
                for child in (target or {}).get("inner", {}).get("module", {}).get("items", []):
                    c = index.get(str(child))
                    if c and c["visibility"] == "public":
                        visit(child, f"{path.rsplit('::', 1)[0]}::{c['name'] or ''}")
            else:
                target = index.get(str(use["id"]))
                if target is None:
                    lines.add(f"use {path} = {use['source']}")
                else:
                    visit(use["id"], path)
            return
        if kind not in ITEM_KINDS:
            return
        lines.add(f"{SHORT.get(kind, kind)} {path}")
        key = (item_id, path)
        if key in seen:
            return
        seen.add(key)
        inner = item["inner"][kind]
        if kind == "module":
            for child in inner["items"]:
                c = index.get(str(child))
                if c is None:
                    continue
                if c["visibility"] != "public":
                    continue
                name = c["name"] if c["name"] is not None else c["inner"].get("use", {}).get("name")
                visit(child, f"{path}::{name}")
        elif kind == "struct":
            shape = inner["kind"]  # "unit", {"plain": {"fields": [..]}} or {"tuple": [..]}
            if isinstance(shape, str):
                fields = []
            elif "plain" in shape:
                fields = shape["plain"]["fields"]
            else:
                fields = shape["tuple"]
            for field in fields:
                f = index.get(str(field)) if field is not None else None
                if f and f["visibility"] == "public":
                    lines.add(f"field {path}::{f['name']}")
            impls(item_id, path, inner["impls"])
        elif kind == "enum":
            for variant in inner["variants"]:
                lines.add(f"variant {path}::{index[str(variant)]['name']}")
            impls(item_id, path, inner["impls"])
        elif kind == "union":
            impls(item_id, path, inner["impls"])
        elif kind == "trait":
            for member in inner["items"]:
                m = index.get(str(member))
                if m:
                    mkind = next(iter(m["inner"]))
                    lines.add(f"trait-{SHORT.get(mkind, mkind)} {path}::{m['name']}")

    root = index[str(doc["root"])]
    visit(doc["root"], root["name"])
    return sorted(lines)


def main() -> int:
    bless = "--bless" in sys.argv[1:]
    failed = False
    for krate, features in CRATES.items():
        current = surface(rustdoc_json(krate, features))
        snapshot = ROOT / "crates" / krate / "public-api.txt"
        text = "\n".join(current) + "\n"
        if bless:
            snapshot.write_text(text)
            print(f"{krate}: {len(current)} lines written to {snapshot.relative_to(ROOT)}")
            continue
        before = snapshot.read_text().splitlines() if snapshot.exists() else []
        added = sorted(set(current) - set(before))
        removed = sorted(set(before) - set(current))
        if added or removed:
            failed = True
            print(f"{krate}: the public API differs from {snapshot.relative_to(ROOT)}:")
            for line in removed:
                print(f"  - {line}")
            for line in added:
                print(f"  + {line}")
        else:
            print(f"{krate}: public API unchanged ({len(current)} lines)")
    if failed:
        print("If the change is intended, run `python3 scripts/public-api.py --bless` and commit the "
              "snapshots with it.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
