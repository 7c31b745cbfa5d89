//! The `healthprobe` binary: parses the command line and runs one verb.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use healthprobe::agent::Agent;
use healthprobe::checks::runner::execute;
use healthprobe::cli::{Cli, Command, Common, Format, LogFormat};
use healthprobe::config::{self, Loaded, Options};
use healthprobe::report;
use healthprobe::view::{CheckView, PackView, State};

fn main() -> ExitCode {
    tune_the_allocator();
    let cli = Cli::parse();
    init_logging(&cli.common);
    // A panicking check becomes an `internal_error` result (see the runner);
    // here it is also logged once, through the redacting logger.
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(at, "panic: {}", healthprobe::redact::redact(&what));
    }));
    healthprobe::support::tls::ensure_default_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("healthprobe: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(dispatch(cli))
}

/// glibc's malloc, tuned for a long-running agent with a few threads.
///
/// The mmap threshold: glibc raises it each time a large mmapped block is
/// freed (up to 32 MiB), after which the `/metrics` page (~13 MB with
/// 10,000 checks) and large response bodies come from the heap, where freed
/// blocks fragment and are not given back: under 20 concurrent scrapers the
/// soak test saw RSS climb from 250 MiB to 750 MiB in two minutes without
/// levelling off. A fixed threshold keeps blocks of 1 MiB and more in their
/// own mappings, returned to the system when freed (RSS stayed at ~265 MiB).
///
/// The arenas: glibc gives threads up to 8 arenas per core, each keeping
/// the pages it has touched. The agent's threads are the runtime's workers
/// (one per core) and the blocking pool; as many arenas as cores, at most
/// four, cut the RSS of 10,000 scheduled checks from 115 to 103 MB and the
/// on-demand peak by 1 MB, at the same CPU per probe (BENCHMARKS.md). A
/// `MALLOC_ARENA_MAX` in the environment still wins.
fn tune_the_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let arenas = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 4));
        // SAFETY: mallopt only sets tunables, before any thread is started.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
            if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
                libc::mallopt(libc::M_ARENA_MAX, arenas as libc::c_int);
            }
        }
    }
}

fn init_logging(common: &Common) {
    // `--log-level` was checked by the parser (cli::log_filter).
    let filter = tracing_subscriber::EnvFilter::try_new(&common.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour codes only for a person at a terminal: journald, `docker logs`
    // and log files would show them as `[2m...[0m` noise.
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(healthprobe::redact::RedactingStderr);
    match common.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn options(common: &Common, listen: Option<String>) -> Options {
    Options {
        config: common.config.clone(),
        checks_dirs: common.checks.clone(),
        packs: common.pack.clone(),
        vars: common.var.clone(),
        listen,
        no_builtin: false,
    }
}

/// Loads the config or prints every error (exit code 2).
fn load_or_report(opts: &Options) -> Result<Loaded, ExitCode> {
    config::load(opts).map_err(|errors| {
        let mut err = std::io::stderr().lock();
        for e in &errors.0 {
            let _ = writeln!(err, "{}", healthprobe::redact::redact(&e.to_string()));
        }
        let _ = writeln!(
            err,
            "healthprobe: {} configuration error{} found",
            errors.0.len(),
            if errors.0.len() == 1 { "" } else { "s" }
        );
        ExitCode::from(2)
    })
}

/// Loads a web-config file or prints every error (exit code 2).
fn load_web_or_report(
    path: &std::path::Path,
) -> Result<Arc<healthprobe::web_config::Web>, ExitCode> {
    healthprobe::web_config::Web::load(path).map_err(|errors| {
        let mut err = std::io::stderr().lock();
        for e in &errors {
            let _ = writeln!(err, "{}", healthprobe::redact::redact(&e.to_string()));
        }
        let _ = writeln!(
            err,
            "healthprobe: {} error{} in the web config",
            errors.len(),
            plural(errors.len())
        );
        ExitCode::from(2)
    })
}

async fn dispatch(cli: Cli) -> ExitCode {
    let common = cli.common;
    match cli.command {
        Command::Run {
            listen,
            web_config_file,
        } => {
            let opts = options(&common, listen);
            let loaded = match load_or_report(&opts) {
                Ok(loaded) => loaded,
                Err(code) => return code,
            };
            let web = match web_config_file.or(loaded.web_config_file.clone()) {
                None => None,
                Some(path) => match load_web_or_report(&path) {
                    Ok(web) => Some(web),
                    Err(code) => return code,
                },
            };
            run(loaded, opts, web).await
        }
        Command::Check { format, verbose } => match load_or_report(&options(&common, None)) {
            Ok(loaded) => check(loaded, &common.pack, format, verbose).await,
            Err(code) => code,
        },
        Command::Validate => match load_or_report(&options(&common, None)) {
            Ok(loaded) => {
                if let Some(path) = &loaded.web_config_file
                    && let Err(code) = load_web_or_report(path)
                {
                    return code;
                }
                let packs = loaded.packs.iter().filter(|p| p.enabled).count();
                println!(
                    "Config is valid: {} pack{} enabled, {} check{} scheduled, {} switched off.",
                    packs,
                    plural(packs),
                    loaded.checks.len(),
                    plural(loaded.checks.len()),
                    loaded.skipped.len()
                );
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::List { format } => match load_or_report(&options(&common, None)) {
            Ok(loaded) => list(&loaded, &common.pack, format),
            Err(code) => code,
        },
        Command::Schema { agent } => {
            let schema = if agent {
                config::agent_schema()
            } else {
                config::pack_schema()
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&schema).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

async fn run(
    loaded: Loaded,
    opts: Options,
    web: Option<Arc<healthprobe::web_config::Web>>,
) -> ExitCode {
    let listen = loaded.listen.clone();
    let listener = match tokio::net::TcpListener::bind(&listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("healthprobe: cannot listen on {listen}: {e}");
            return ExitCode::from(2);
        }
    };
    let checks = loaded.checks.len();
    let mut watched: Vec<std::path::PathBuf> = opts.config.iter().cloned().collect();
    watched.extend(opts.checks_dirs.iter().cloned());
    watched.extend(loaded.checks_dirs.iter().cloned());
    let agent = Agent::with_options(loaded, opts);
    let triggers = healthprobe::watch::Triggers::new(&watched);
    agent.start();
    tokio::spawn(triggers.run(agent.clone()));
    let local = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or(listen);
    let scheme = if web.as_ref().is_some_and(|w| w.tls_on()) {
        "https"
    } else {
        "http"
    };
    tracing::info!(address = %local, checks, "healthprobe is listening; metrics at {scheme}://{local}/metrics");
    let server = tokio::spawn(healthprobe::server::serve_with(
        listener,
        agent.clone(),
        web,
        agent.stop_token(),
    ));
    wait_for_signal().await;
    tracing::info!("shutting down");
    agent.shutdown().await;
    let _ = server.await;
    ExitCode::SUCCESS
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

async fn check(loaded: Loaded, only: &[String], format: Format, verbose: bool) -> ExitCode {
    let shown = |pack: &str| only.is_empty() || only.iter().any(|p| p == pack);
    let packs: Vec<PackView> = PackView::of_loaded(&loaded)
        .into_iter()
        .filter(|p| shown(&p.name))
        .collect();
    let checks: Vec<_> = loaded
        .checks
        .into_iter()
        .filter(|c| shown(&c.meta.pack))
        .collect();
    let total = checks.len();
    // Progress goes to stderr, and only when a person watches it.
    let progress = std::io::stderr().is_terminal() && format == Format::Text;
    let sem = Arc::new(tokio::sync::Semaphore::new(loaded.concurrency));
    let mut set = tokio::task::JoinSet::new();
    for c in checks {
        let sem = sem.clone();
        set.spawn(async move {
            let _permit = sem.acquire_owned().await;
            let probe = Arc::new(c.probe);
            let record = execute(probe, c.meta.timeout, verbose).await;
            CheckView::of(&c.meta, Some(&record))
        });
    }
    if progress {
        eprint!("checking 0/{total}...");
    }
    let mut views = Vec::with_capacity(total);
    let mut failed_so_far = 0;
    while let Some(r) = set.join_next().await {
        match r {
            Ok(v) => {
                if v.state == State::Failing {
                    failed_so_far += 1;
                }
                if progress {
                    let failed = if failed_so_far > 0 {
                        format!(", {failed_so_far} failed")
                    } else {
                        String::new()
                    };
                    eprint!(
                        "\r\x1b[2Kchecking {}/{total}{failed}... (done: {})",
                        views.len() + 1,
                        v.id
                    );
                }
                views.push(v);
            }
            Err(e) => tracing::error!(error = %e, "a check task failed"),
        }
    }
    if progress {
        eprint!("\r\x1b[2K");
    }
    views.sort_by_key(CheckView::sort_key);
    let failed = views.iter().any(|v| v.state == State::Failing);
    let mut out = std::io::stdout().lock();
    let written = match format {
        Format::Json => report::json(&views, &mut out),
        Format::Text => report::text(&views, &packs, report::Style::detect(), verbose, &mut out),
    };
    if written.is_err() {
        return ExitCode::from(2);
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn list(loaded: &Loaded, only: &[String], format: Format) -> ExitCode {
    let shown = |pack: &str| only.is_empty() || only.iter().any(|p| p == pack);
    if format == Format::Json {
        let packs: Vec<_> = loaded.packs.iter().filter(|p| shown(&p.name)).map(|p| {
            serde_json::json!({
                "pack": p.name, "title": p.title, "guide": p.guide, "source": p.source, "enabled": p.enabled,
                "checks": loaded.checks.iter().filter(|c| c.meta.pack == p.name).map(|c| serde_json::json!({
                    "name": c.meta.name, "kind": c.meta.kind.as_str(), "interval_seconds": c.meta.interval.as_secs_f64(),
                    "timeout_seconds": c.meta.timeout.as_secs_f64(), "severity": c.meta.severity.as_str(), "title": c.meta.title,
                })).collect::<Vec<_>>(),
                "skipped": loaded.skipped.iter().filter(|s| s.pack == p.name).map(|s| serde_json::json!({"name": s.name, "why": healthprobe::redact::redact(&s.why)})).collect::<Vec<_>>(),
            })
        }).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&packs).unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    for p in loaded.packs.iter().filter(|p| shown(&p.name)) {
        let state = if p.enabled {
            "enabled"
        } else {
            "available (enable with --pack or in the config)"
        };
        println!(
            "{} - {} [{}]\n  from {}",
            p.name,
            if p.title.is_empty() { "-" } else { &p.title },
            state,
            p.source
        );
        for c in loaded.checks.iter().filter(|c| c.meta.pack == p.name) {
            println!(
                "  {:<28} {:<10} every {:<6} {:<8} {}",
                c.meta.name,
                c.meta.kind.as_str(),
                humantime::format_duration(c.meta.interval).to_string(),
                c.meta.severity.as_str(),
                c.meta.title
            );
        }
        for s in loaded.skipped.iter().filter(|s| s.pack == p.name) {
            println!(
                "  {:<28} off: {}",
                s.name,
                healthprobe::redact::redact(&s.why)
            );
        }
        println!();
    }
    ExitCode::SUCCESS
}
