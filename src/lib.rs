//! healthprobe: health checks for self-hosted applications, exported as
//! Prometheus metrics.
//!
//! # Layout
//!
//! - [`config`]: YAML with positions, `${VAR}` interpolation, `.env` files,
//!   the config types (which generate the JSON Schema) and the loader, which
//!   collects every error with file:line:column and field path.
//! - [`checks`]: one file per check kind behind the [`checks::Check`] trait and
//!   one closed enum of kinds; [`checks::runner`] runs one check under its hard
//!   timeout and turns panics into results.
//! - [`scheduler`]: a task per check, jitter, global concurrency limit.
//! - [`store`]: the latest result of every check, with the text of its
//!   series written when it ran; scrapes only read it.
//! - [`exposition`]: `/metrics` (each check's series copied from the store
//!   family by family, the agent's own metrics through the `prometheus`
//!   crate).
//! - [`server`]: the HTTP endpoints, on hyper.
//! - [`agent`]: the running agent that ties store, scheduler and server.
//! - [`view`], [`report`], [`status_page`]: what people and programs read.
//! - [`redact`]: secrets never leave.
//! - [`web_config`]: TLS and basic auth for the server (exporter-toolkit's web-config file).
//! - [`cli`]: the command line.

pub mod agent;
pub mod checks;
pub mod cli;
pub mod config;
pub mod exposition;
pub mod modules;
pub mod redact;
pub mod report;
pub mod scheduler;
pub mod server;
pub mod status_page;
pub mod store;
pub mod support;
pub mod view;
pub mod watch;
pub mod web_config;
