//! Helpers shared by several check kinds (users, TLS, run-as), so that no kind
//! repeats another.

pub mod net;
pub mod tls;
pub mod users;
