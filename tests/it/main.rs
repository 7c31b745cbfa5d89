//! Integration tests: one binary, one module per area.

mod command;
mod file;
mod probe_util;
mod process;
