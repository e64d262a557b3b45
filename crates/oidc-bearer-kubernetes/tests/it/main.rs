//! The integration tests of `oidc-bearer-kubernetes`: one binary, a module per topic.

mod support;

mod duplicate_members;
mod kubernetes;
mod object_binding;
mod tokenreview;
