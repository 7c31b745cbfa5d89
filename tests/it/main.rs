//! The integration tests, in one binary.

mod config_errors;
mod schema;
