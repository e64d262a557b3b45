//! End-to-end tests live in `tests/`.

/// The README's recipes, compiled (and run where they need no network) as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeRecipes;
