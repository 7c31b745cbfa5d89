//! Integration tests: one binary, one module per area.

mod command;
mod file;
mod host;
mod probe_util;
mod process;
