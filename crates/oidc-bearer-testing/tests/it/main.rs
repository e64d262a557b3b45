//! The integration tests of `oidc-bearer-testing`: one binary, a module per topic.

mod issuer;
mod tokenreview;
