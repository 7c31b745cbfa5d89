//! Helpers shared by several check kinds (users, TLS, run-as), so that no kind
//! repeats another.

pub mod blocking;
pub mod database;
pub mod net;
pub mod paths;
pub mod runas;
pub mod secret;
pub mod signals;
#[cfg(test)]
pub mod testing;
pub mod tls;
pub mod units;
pub mod users;
