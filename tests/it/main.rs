//! healthprobe's integration tests: one test binary (`cargo test --test it`).
//!
//! Layout:
//! - `support/`: real servers started by the tests on 127.0.0.1 in temporary
//!   directories (MariaDB, PostgreSQL, dockerd, nginx, an aiosmtpd SMTP
//!   server, Prometheus), TLS material made with `openssl`, process and HTTP
//!   helpers. See `support/mod.rs` for the conventions (`start`, `shared`,
//!   `stop`, `kill`, `start_again`, `Drop`).
//! - `support_smoke`: one short test per server proving the support code
//!   starts the real thing (`cargo test --test it support`).
//! - Further modules hold the feature tests; add each as `mod name;` here.
//!
//! Prerequisites come from `tests/install-deps.sh` (Debian packages and the
//! Python venv at `$HP_VENV`, default `~/.cache/healthprobe/venv`); the
//! project's single test command is `tests/run`. The tests run as root.

mod support;
mod support_smoke;

mod binary;
mod cli;
mod command;
mod config_errors;
mod config_file;
mod docker;
mod e2e;
mod faults;
mod file;
mod heartbeat;
mod host;
mod http;
mod log;
mod migrations;
mod modules;
mod mysql;
mod pack_invoiceninja;
mod pack_mastodon;
mod pack_openhands;
mod pack_util;
mod postgres;
mod probe_util;
mod probes;
mod process;
mod reload;
mod schema;
mod secrets;
mod server;
mod smtp;
mod status_page;
mod tcp;
mod web_config;
