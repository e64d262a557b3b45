#!/usr/bin/env python3
"""Package the published crates together and check that each compiles from its package alone.

Usage: scripts/package-check.py            exit 1 when a crate does not package or does not compile
                                           from its package

What `cargo package -p <each>` does, at a fraction of its cost on CI (CPU time, same machine and
load: 223 s with cargo's verification, 9 s this way):
1. `cargo package --no-verify` of the seven crates together: the manifests and `include` lists are
   checked, the `.crate` files written to `target/package/` (the CLI's with the Cargo.lock cargo
   derives for it).
2. The `.crate` files are unpacked side by side into `target/package/check/`, a throwaway workspace
   whose `[patch.crates-io]` points each crate at its sibling's unpacked package: a dependent builds
   against what would be published, never against the repository.
3. `cargo check -p <crate>` for each crate on its own, so that its features are resolved alone (a
   crate that only built because another workspace member turned a dependency's feature on fails
   here), with lib and bins as cargo's verification builds them, and with the repository's profiles
   and target directory: the dependencies compiled by the clippy, doc and feature steps are reused.

Where it differs from cargo's own verification: `check` instead of `build`, so code generation and
linking of the packaged sources are not redone. The files are the repository's (a missing file, a
module or an `include_str!` outside the `include` list, fails the check), and the workspace test
step generates code for and links the same sources; what cargo's `build` added was a second
compilation, in its default dev profile (full debug info, nothing shared with the other steps), of
every dependency of every crate: 110 s of CI's 471 s.
"""
import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# In dependency order, as `cargo package` lists them.
CRATES = ["oidc-bearer-shared", "oidc-bearer", "oidc-bearer-kubernetes", "oidc-bearer-registry",
          "oidc-bearer-testing", "oidc-bearer-client", "oidc-bearer-cli"]


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise ValueError(f"cannot write {value!r} as TOML")


def toml_tables(prefix: str, table: dict) -> list:
    """`table` as TOML: its plain keys under `[prefix]`, then each sub-table under its own header."""
    plain = [f"{k} = {toml_value(v)}" for k, v in table.items() if not isinstance(v, dict)]
    lines = [f"[{prefix}]", *plain, ""] if plain else []
    for key, sub in table.items():
        if isinstance(sub, dict):
            lines += toml_tables(f'{prefix}.{toml_value(key) if not key.isidentifier() else key}', sub)
    return lines


def main() -> int:
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    version = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["package"]["version"]
    packages = [arg for crate in CRATES for arg in ("-p", crate)]
    # --offline: the steps before this one have fetched every dependency's index entry; online,
    # cargo updates the index once per package (11 s of network waits on CI's machine) to derive
    # the CLI's Cargo.lock from the repository's and to warn about yanked versions.
    subprocess.run(["cargo", "package", "--offline", "--no-verify", "--allow-dirty", *packages],
                   cwd=ROOT, check=True)

    check = target / "package" / "check"
    shutil.rmtree(check, ignore_errors=True)
    check.mkdir(parents=True)
    for crate in CRATES:
        with tarfile.open(target / "package" / f"{crate}-{version}.crate") as archive:
            archive.extractall(check, filter="data")
    # The archive's fixed timestamps are older than the last run's artifacts: cargo would take the
    # sources for unchanged and report the last run's result. Now, so that they are compiled anew.
    for path in check.rglob("*"):
        os.utime(path)
    # The repository's profiles, so that the dependencies' artifacts are shared with the other steps.
    profiles = tomllib.loads((ROOT / "Cargo.toml").read_text()).get("profile", {})
    manifest = [
        "# Written by scripts/package-check.py: the packages as published, side by side.",
        "[workspace]", 'resolver = "3"',
        "members = [" + ", ".join(f'"{c}-{version}"' for c in CRATES) + "]", "",
        "[patch.crates-io]", *(f'{c} = {{ path = "{c}-{version}" }}' for c in CRATES), "",
        *toml_tables("profile", profiles),
    ]
    (check / "Cargo.toml").write_text("\n".join(manifest) + "\n")
    # The repository's versions of every dependency (what the packages were tested with).
    shutil.copy(ROOT / "Cargo.lock", check / "Cargo.lock")

    for crate in CRATES:
        print(f"== {crate}, from its package", flush=True)
        result = subprocess.run(
            ["cargo", "check", "-q", "-p", crate, "--message-format", "short"],
            cwd=check, env={**os.environ, "CARGO_TARGET_DIR": str(target)})
        if result.returncode != 0:
            print(f"{crate} does not compile from its package (target/package/check/{crate}-{version})")
            return 1
    print(f"{len(CRATES)} packages compile, each from its own contents")
    return 0


if __name__ == "__main__":
    sys.exit(main())
