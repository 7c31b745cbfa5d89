//! Integration tests: one binary, one module per area.

mod file;
mod probe_util;
