#!/usr/bin/env python3
"""Every feature combination of the core and client crates builds: what
`cargo hack check --feature-powerset --no-dev-deps --at-least-one-of aws-lc-rs,rust-crypto` does,
without installing cargo-hack (1 min 50 s to build on CI's machine).

Usage: scripts/feature-check.py [crate ...]      (default: the core, client and shared crates)

For each crate, every subset of its features (`default` aside) that enables a crypto backend
(`aws-lc-rs` or `rust-crypto`, directly or through a feature that implies one, such as `ml-dsa`;
without one a compile error says to pick one, on purpose; a crate with neither feature, the shared
one, has every subset checked) is checked once per distinct set of enabled features: `cargo check -p <crate> --lib --no-default-features --features <set>`. Only the
library is checked, so dev-dependencies neither build nor unify features (cargo-hack's
`--no-dev-deps`). Exit 1 at the first combination that does not build or warns (an import unused
under some features, say).
"""
import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = {"aws-lc-rs", "rust-crypto"}


def features_of(crate: str) -> dict:
    meta = json.loads(subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"],
        cwd=ROOT, check=True, capture_output=True, text=True).stdout)
    return next(p for p in meta["packages"] if p["name"] == crate)["features"]


def closure(chosen, features: dict) -> frozenset:
    """The crate's own features that `chosen` enables (`ml-dsa` enables `aws-lc-rs`)."""
    enabled, stack = set(), list(chosen)
    while stack:
        name = stack.pop()
        if name in enabled:
            continue
        enabled.add(name)
        stack.extend(f for f in features.get(name, []) if f in features)
    return frozenset(enabled)


def main() -> int:
    crates = sys.argv[1:] or ["oidc-bearer", "oidc-bearer-client", "oidc-bearer-shared"]
    start = time.monotonic()
    checked = 0
    for crate in crates:
        features = features_of(crate)
        names = sorted(f for f in features if f != "default")
        sets = []
        for size in range(len(names) + 1):
            for chosen in itertools.combinations(names, size):
                enabled = closure(chosen, features)
                needs_backend = bool(BACKENDS & set(features))
                if (enabled & BACKENDS or not needs_backend) and enabled not in sets:
                    sets.append(enabled)
        for enabled in sets:
            combo = ",".join(sorted(enabled))
            print(f"== {crate} --no-default-features --features {combo}", flush=True)
            result = subprocess.run(
                ["cargo", "check", "-q", "-p", crate, "--lib", "--no-default-features",
                 "--features", combo, "--message-format", "short"],
                cwd=ROOT, capture_output=True, text=True)
            sys.stdout.write(result.stderr)
            if result.returncode != 0:
                print(f"{crate} does not build with features {combo}")
                return 1
            if "warning:" in result.stderr:
                print(f"{crate} warns with features {combo} (CI denies warnings)")
                return 1
            checked += 1
    print(f"{checked} feature combinations build ({time.monotonic() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
