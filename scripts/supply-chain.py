#!/usr/bin/env python3
"""Licenses, duplicate versions, wildcards and sources of what the published crates depend on,
checked against the policy in deny.toml (cargo-deny's format; `cargo deny check licenses bans
sources` reads the same file) over `cargo metadata`, so CI installs nothing.

Usage: scripts/supply-chain.py            exit 1 when a rule is broken, saying which and why

The graph: from each publishable workspace member (not `publish = false`), its normal and build
dependencies (dev-dependencies are left out, as `[graph] exclude-dev` says), with every feature
(`all-features`), resolved for the platforms of `[graph] targets` (`cargo metadata
--filter-platform`).
- licenses: each package's SPDX `license` must be satisfiable with `[licenses] allow`: an OR takes
  any alternative, an AND needs all, `A WITH exception` passes when it or `A` is allowed; the legacy
  `/` is read as OR. A package without an SPDX `license` fails.
- bans: a crate present in several versions fails unless all versions but one are listed in
  `[bans] skip` (`"name@version"`); a skip entry that no longer matches anything fails too, so the
  list stays true. A `*` requirement in a workspace member fails (`wildcards = "deny"`), except a
  path dev-dependency under `allow-wildcard-paths = true` (cargo strips it when packaging).
- sources: crates.io (`[sources] allow-registry`) or git repositories of `allow-git` only.
"""
import json
import re
import subprocess
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CRATES_IO = {"https://github.com/rust-lang/crates.io-index", "https://index.crates.io/"}


def metadata(target: str) -> dict:
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--all-features", "--locked",
         "--filter-platform", target],
        cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def spdx_allowed(expression: str, allowed: set) -> bool:
    """Whether some choice of the expression's OR-alternatives uses allowed licenses only."""
    tokens = re.findall(r"\(|\)|[A-Za-z0-9.+\-]+", expression.replace("/", " OR "))
    pos = 0

    def peek():
        return tokens[pos] if pos < len(tokens) else None

    def take():
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def atom() -> bool:
        token = take()
        if token == "(":
            value = disjunction()
            if take() != ")":
                raise ValueError(f"unbalanced parentheses in {expression!r}")
            return value
        if peek() == "WITH":
            take()
            exception = take()
            return f"{token} WITH {exception}" in allowed or token in allowed
        return token in allowed

    def conjunction() -> bool:
        value = atom()
        while peek() == "AND":
            take()
            value = atom() and value
        return value

    def disjunction() -> bool:
        value = conjunction()
        while peek() == "OR":
            take()
            value = conjunction() or value
        return value

    result = disjunction()
    if pos != len(tokens):
        raise ValueError(f"cannot read {expression!r}")
    return result


def main() -> int:
    policy = tomllib.loads((ROOT / "deny.toml").read_text())
    graph = policy.get("graph", {})
    targets = graph.get("targets", ["x86_64-unknown-linux-gnu"])
    allowed_licenses = set(policy["licenses"]["allow"])
    bans = policy.get("bans", {})
    skip = {entry["crate"] if isinstance(entry, dict) else entry for entry in bans.get("skip", [])}
    sources = policy.get("sources", {})
    registries = set(sources.get("allow-registry", [])) | set()
    if registries & CRATES_IO:
        registries |= CRATES_IO
    git = set(sources.get("allow-git", []))
    kinds = {None, "build"} if graph.get("exclude-dev", True) else {None, "build", "dev"}

    errors: list = []
    used_skips: set = set()
    for target in targets:
        meta = metadata(target)
        packages = {p["id"]: p for p in meta["packages"]}
        nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
        members = set(meta["workspace_members"])
        roots = [m for m in members if packages[m]["publish"] != []]
        seen: set = set()
        stack = list(roots)
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            for dep in nodes[current]["deps"]:
                if any(k["kind"] in kinds for k in dep["dep_kinds"]):
                    stack.append(dep["pkg"])

        versions = defaultdict(set)
        for pid in seen:
            p = packages[pid]
            name = f"{p['name']}@{p['version']}"
            versions[p["name"]].add(p["version"])
            license = p.get("license")
            if not license:
                errors.append(f"license: {name} has no SPDX `license` field")
            elif not spdx_allowed(license, allowed_licenses):
                errors.append(f"license: {name} is {license!r}, not within [licenses] allow")
            source = p.get("source")
            if source is None:
                if pid not in members:
                    errors.append(f"source: {name} is a path dependency outside the workspace")
            elif source.startswith(("registry+", "sparse+")):
                if source.split("+", 1)[1] not in registries:
                    errors.append(f"source: {name} comes from the registry {source}")
            elif source.startswith("git+"):
                repo = source[4:].split("?")[0].split("#")[0]
                if repo not in git:
                    errors.append(f"source: {name} comes from git {repo}")
            else:
                errors.append(f"source: {name} comes from {source}")
        for member in roots:
            for dep in packages[member]["dependencies"]:
                if dep["req"].strip() == "*" and not (
                        bans.get("allow-wildcard-paths", False) and dep.get("kind") == "dev"
                        and dep.get("path")):
                    errors.append(f"wildcard: {packages[member]['name']} depends on {dep['name']} = \"*\"")

        if bans.get("multiple-versions", "warn") == "deny":
            for name, found in sorted(versions.items()):
                left = {v for v in found if f"{name}@{v}" not in skip}
                used_skips |= {f"{name}@{v}" for v in found if f"{name}@{v}" in skip}
                if len(found) > 1 and len(left) > 1:
                    errors.append(f"duplicate: {name} in versions {', '.join(sorted(found))}; "
                                  "list all but one in deny.toml [bans] skip, with the reason")
        print(f"{target}: {len(seen)} packages from {len(roots)} published crates")

    for stale in sorted(skip - used_skips):
        errors.append(f"duplicate: the skip entry {stale} matches nothing now; remove it")
    for error in errors:
        print(error)
    if errors:
        return 1
    print("licenses, duplicates, wildcards and sources: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
