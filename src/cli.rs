//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Health checks for self-hosted applications, exported as Prometheus metrics.
///
/// With no config, runs the built-in `host` pack. Enable the guide packs with
/// `--pack invoiceninja --var invoiceninja.root=/var/www/invoiceninja` or in a
/// config file. Exit codes: 0 all passed, 1 a check failed, 2 bad usage or config.
#[derive(Debug, Parser)]
#[command(name = "healthprobe", version, about, long_about)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Agent config file (healthprobe.yaml).
    #[arg(
        long,
        short = 'c',
        global = true,
        env = "HEALTHPROBE_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,
    /// Directory of pack files to add (its packs are enabled); repeatable.
    #[arg(long = "checks", global = true, value_name = "DIR")]
    pub checks: Vec<PathBuf>,
    /// Enable a pack (built-in or from --checks); repeatable. With `check`
    /// and `list`, also narrows the output to these packs.
    #[arg(long, global = true, value_name = "NAME")]
    pub pack: Vec<String>,
    /// Set a pack var: KEY=VALUE for every pack that has it, or PACK.KEY=VALUE; repeatable.
    #[arg(long, global = true, value_name = "[PACK.]KEY=VALUE")]
    pub var: Vec<String>,
    /// Log level (error, warn, info, debug, trace) or a tracing filter.
    #[arg(long, global = true, env = "HEALTHPROBE_LOG", default_value = "info", value_parser = log_filter)]
    pub log_level: String,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent: schedule every enabled check and serve /metrics.
    Run {
        /// Address to listen on (default 127.0.0.1:9464).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// TLS and basic auth for the HTTP server: a web-config file in the
        /// format of Prometheus' exporters (overrides `web_config_file` of
        /// the agent config).
        #[arg(long = "web.config.file", value_name = "FILE")]
        web_config_file: Option<PathBuf>,
    },
    /// Run every enabled check once, now, and print a report.
    Check {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Also print what each probe saw.
        #[arg(long, short = 'v')]
        verbose: bool,
    },
    /// Load and validate the config and packs; print every error.
    Validate,
    /// List packs and checks.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Print the JSON Schema of pack files (or of the agent config), for editors.
    Schema {
        /// The schema of healthprobe.yaml instead of pack files.
        #[arg(long)]
        agent: bool,
    },
}

/// Checks a `--log-level`: a level, or a tracing filter such as
/// `info,healthprobe::checks=debug`. A misspelt level is an error rather
/// than a filter that silently matches nothing.
fn log_filter(s: &str) -> Result<String, String> {
    const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];
    let bare_word = |d: &str| !d.contains(['=', ':', '[']) && !d.is_empty();
    for directive in s.split(',') {
        let d = directive.trim();
        if bare_word(d) && !LEVELS.contains(&d.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "`{d}` is not a level (error, warn, info, debug, trace, off) nor a filter such as `healthprobe=debug`"
            ));
        }
    }
    tracing_subscriber::EnvFilter::try_new(s)
        .map(|_| s.to_string())
        .map_err(|e| format!("not a log filter: {e}"))
}
