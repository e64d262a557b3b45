//! The tests of the example: one binary, a module per topic.

mod against_a_server;
mod identities;
