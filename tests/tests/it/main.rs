//! The end-to-end tests: one binary, a module per topic (`log_flood` runs alone: its log limit is
//! per process).

mod support;

mod dpop;
mod grpc;
mod http;
mod policy;
mod registry_layer;
mod reliability;
mod soak;
