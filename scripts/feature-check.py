#!/usr/bin/env python3
"""Each feature of the core, Kubernetes, client and shared crates builds, alone and all together, without a
warning under clippy: what `cargo hack clippy --each-feature --no-dev-deps --at-least-one-of
aws-lc-rs,rust-crypto` does, without installing cargo-hack (1 min 50 s to build on CI's machine).

Usage: scripts/feature-check.py [crate ...]      (default: the core, Kubernetes, client and shared
                                                  crates)

For each crate: no feature, each feature alone and every feature at once (`default` aside), each set
closed over the features it implies (`ml-dsa` enables `aws-lc-rs`). A crate with a crypto backend
feature (`aws-lc-rs`, `rust-crypto`) builds only with one (a compile error says to pick one, on
purpose), so a set without one is checked once with each backend instead. Each distinct set is
linted once: `cargo clippy -p <crate> --lib --no-default-features --features <set> -- -D
warnings`. Only the library is checked, so dev-dependencies neither build nor unify features
(cargo-hack's `--no-dev-deps`). Features here are additive and independent of each other but for
the backends (the powerset, 26 sets, cost CI 43 s for nothing the backends' pairs do not show).
Exit 1 at the first set that does not build or warns (an import unused under some features, say).
"""
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
    crates = sys.argv[1:] or ["oidc-bearer", "oidc-bearer-kubernetes", "oidc-bearer-registry",
                              "oidc-bearer-client", "oidc-bearer-shared"]
    start = time.monotonic()
    checked = 0
    for crate in crates:
        features = features_of(crate)
        names = sorted(f for f in features if f != "default")
        backends = sorted(BACKENDS & set(features))
        sets = []
        for chosen in [(), *((name,) for name in names), tuple(names)]:
            enabled = closure(chosen, features)
            # A set without a backend: once with each (none for a crate without backend features).
            options = [enabled] if enabled & BACKENDS or not backends else [
                closure((*chosen, backend), features) for backend in backends]
            sets.extend(o for o in options if o not in sets)
        for enabled in sets:
            combo = ",".join(sorted(enabled))
            print(f"== {crate} --no-default-features --features {combo}", flush=True)
            result = subprocess.run(
                ["cargo", "clippy", "-q", "-p", crate, "--lib", "--no-default-features",
                 "--features", combo, "--message-format", "short", "--", "-D", "warnings"],
                cwd=ROOT, capture_output=True, text=True)
            sys.stdout.write(result.stderr)
            if result.returncode != 0:
                print(f"{crate} does not build with features {combo}")
                return 1
            if "warning:" in result.stderr:
                print(f"{crate} warns with features {combo} (CI denies warnings)")
                return 1
            checked += 1
    print(f"{checked} feature sets build ({time.monotonic() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
