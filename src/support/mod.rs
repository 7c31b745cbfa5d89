//! Helpers shared by several check kinds (users, TLS, run-as), so that no kind
//! repeats another.

pub mod paths;
pub mod users;
