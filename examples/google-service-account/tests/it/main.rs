//! The tests of the example: one binary, a module per topic.

mod process;
mod receiver;
