//! PostgreSQL (`postgres` run directly, as the `postgres` user) on
//! 127.0.0.1.
//!
//! `initdb` runs once per test binary into a template directory, which also
//! gets the login role [`USER`] with [`PASSWORD`] (SCRAM) owning the database
//! [`DATABASE`]. pg_hba: trust over the unix socket, scram-sha-256 over TCP.
//! Each instance starts from a copy of the template. `fsync` is off: killing
//! the server keeps committed data (it is in the OS page cache), a machine
//! crash would not.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use tempfile::TempDir;

use super::process::{ServerProcess, at_exit, run, try_run};
use super::{READY_TIMEOUT, free_port, shared_instance, tempdir};

pub const USER: &str = "app";
pub const PASSWORD: &str = "app-Pw-42";
pub const DATABASE: &str = "app";

const PG_HBA: &str = "\
local all all trust
host all all 127.0.0.1/32 scram-sha-256
host all all ::1/128 scram-sha-256
";

/// Options for [`Postgres::start_with`].
#[derive(Debug, Clone, Default)]
pub struct PostgresOptions {
    /// Extra server settings, passed as `-c NAME=VALUE`.
    pub settings: Vec<(String, String)>,
}

pub struct Postgres {
    proc: Option<ServerProcess>,
    port: u16,
    options: PostgresOptions,
    dir: TempDir,
}

/// The directory of the newest installed PostgreSQL's binaries
/// (`/usr/lib/postgresql/N/bin`).
pub fn bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, bin)) => bin,
        None => super::missing("PostgreSQL (/usr/lib/postgresql/*/bin/postgres)"),
    }
}

fn pg_bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    if !path.exists() {
        super::missing(&format!("PostgreSQL's `{name}`"));
    }
    path
}

fn postgres_ids() -> (u32, u32) {
    let user = nix::unistd::User::from_name("postgres")
        .ok()
        .flatten()
        .unwrap_or_else(|| super::missing("the `postgres` system user (package postgresql)"));
    (user.uid.as_raw(), user.gid.as_raw())
}

fn chown_postgres(path: &Path) {
    let (uid, gid) = postgres_ids();
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown postgres {}: {e}", path.display()));
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// A command running as the `postgres` user.
fn as_postgres(program: &Path) -> Command {
    let (uid, gid) = postgres_ids();
    let mut cmd = Command::new(program);
    cmd.uid(uid).gid(gid).env("HOME", "/var/lib/postgresql");
    cmd
}

fn server_command(data: &Path, socket_dir: &Path, port: u16, listen: &str) -> Command {
    let mut cmd = as_postgres(&pg_bin("postgres"));
    cmd.arg("-D")
        .arg(data)
        .arg("-p")
        .arg(port.to_string())
        .arg("-k")
        .arg(socket_dir)
        .arg("-c")
        .arg(format!("listen_addresses={listen}"));
    for setting in [
        "fsync=off",
        // Not posix: a killed server would leave segments in /dev/shm.
        "dynamic_shared_memory_type=mmap",
        "full_page_writes=off",
        "shared_buffers=16MB",
        "max_connections=100",
        "logging_collector=off",
        "log_destination=stderr",
        "unix_socket_permissions=0777",
    ] {
        cmd.arg("-c").arg(setting);
    }
    cmd
}

fn client_sql(socket_dir: &Path, port: u16, db: &str, sql: &str) -> Result<String, String> {
    try_run(
        Command::new(pg_bin("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(socket_dir)
            .arg("-p")
            .arg(port.to_string())
            .args(["-U", "postgres", "-d", db, "-c", sql])
            .env("PGCONNECT_TIMEOUT", "5"),
        Duration::from_secs(60),
    )
}

fn is_ready(socket_dir: &Path, port: u16) -> Result<(), String> {
    try_run(
        Command::new(pg_bin("pg_isready"))
            .arg("-h")
            .arg(socket_dir)
            .arg("-p")
            .arg(port.to_string())
            .args(["-d", "postgres", "-U", "postgres", "-t", "2"]),
        Duration::from_secs(10),
    )
    .map(drop)
}

impl Postgres {
    /// A private instance (it may be stopped, killed and started again).
    pub fn start() -> Postgres {
        Self::start_with(PostgresOptions::default())
    }

    pub fn start_with(options: PostgresOptions) -> Postgres {
        let template = template();
        let dir = tempdir("pg");
        chmod(dir.path(), 0o755);
        run(
            Command::new("cp")
                .arg("-a")
                .arg(template.join("data"))
                .arg(dir.path().join("data")),
            Duration::from_secs(60),
        );
        let sock = dir.path().join("sock");
        std::fs::create_dir(&sock).unwrap();
        chown_postgres(&sock);
        let mut pg = Postgres {
            proc: None,
            port: free_port(),
            options,
            dir,
        };
        pg.start_again();
        pg
    }

    /// One instance shared by the whole test binary; do not stop it.
    pub fn shared() -> &'static Postgres {
        static SHARED: OnceLock<Result<Postgres, String>> = OnceLock::new();
        shared_instance(&SHARED, "PostgreSQL", || {
            at_exit(|| {
                if let Some(Ok(pg)) = SHARED.get() {
                    pg.shutdown_at_exit();
                }
            });
            Postgres::start()
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The directory holding the unix socket `.s.PGSQL.<port>`.
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    pub fn socket_path(&self) -> PathBuf {
        self.socket_dir().join(format!(".s.PGSQL.{}", self.port))
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// `postgres://app:PASSWORD@127.0.0.1:PORT/app` (tokio-postgres accepts it).
    pub fn tcp_url(&self) -> String {
        format!(
            "postgres://{USER}:{PASSWORD}@127.0.0.1:{}/{DATABASE}",
            self.port
        )
    }

    pub fn user(&self) -> &'static str {
        USER
    }

    pub fn password(&self) -> &'static str {
        PASSWORD
    }

    pub fn database(&self) -> &'static str {
        DATABASE
    }

    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(ServerProcess::pid)
    }

    pub fn is_running(&self) -> bool {
        self.proc.as_ref().is_some_and(ServerProcess::is_running)
    }

    /// Run SQL with `psql` as the superuser `postgres` on database `app`;
    /// returns unaligned tuples-only output (`|`-separated). Panics on error.
    pub fn psql(&self, sql: &str) -> String {
        self.try_psql_db(DATABASE, sql)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`Postgres::psql`] on another database.
    pub fn psql_db(&self, db: &str, sql: &str) -> String {
        self.try_psql_db(db, sql).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_psql_db(&self, db: &str, sql: &str) -> Result<String, String> {
        client_sql(&self.socket_dir(), self.port, db, sql)
    }

    /// Copy a file (e.g. a TLS key) into the instance directory, owned by
    /// `postgres` with mode 0600, and return its path (for `settings`).
    pub fn install_file(&self, src: &Path, name: &str) -> PathBuf {
        let dst = self.dir.path().join(name);
        std::fs::copy(src, &dst).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
        chown_postgres(&dst);
        chmod(&dst, 0o600);
        dst
    }

    /// Fast shutdown (SIGINT, up to 60 s).
    pub fn stop(&mut self) {
        if let Some(p) = self.proc.take() {
            p.stop(libc::SIGINT, Duration::from_secs(60));
        }
    }

    /// Crash it: SIGKILL to the postmaster and its backends.
    pub fn kill(&mut self) {
        if let Some(p) = self.proc.take() {
            p.kill();
        }
    }

    /// Start (again) on the same data directory and port; waits until ready.
    pub fn start_again(&mut self) {
        self.stop();
        let d = self.dir.path();
        let mut cmd = server_command(&d.join("data"), &self.socket_dir(), self.port, "127.0.0.1");
        for (name, value) in &self.options.settings {
            cmd.arg("-c").arg(format!("{name}={value}"));
        }
        cmd.current_dir(d);
        let proc = ServerProcess::spawn("postgres", cmd, &self.log_path());
        let (sock, port) = (self.socket_dir(), self.port);
        proc.wait_ready(READY_TIMEOUT, || {
            is_ready(&sock, port)?;
            std::net::TcpStream::connect(("127.0.0.1", port))
                .map(drop)
                .map_err(|e| format!("TCP connect: {e}"))
        });
        self.proc = Some(proc);
    }

    fn shutdown_at_exit(&self) {
        if let Some(p) = &self.proc {
            p.stop(libc::SIGINT, Duration::from_secs(20));
        }
        let _ = std::fs::remove_dir_all(self.dir.path());
    }
}

/// The template cluster, made once per test binary.
fn template() -> &'static Path {
    static TEMPLATE: OnceLock<Result<TempDir, String>> = OnceLock::new();
    shared_instance(&TEMPLATE, "PostgreSQL template", || {
        let started = std::time::Instant::now();
        let dir = tempdir("pg-tmpl");
        let d = dir.path();
        chmod(d, 0o755);
        let data = d.join("data");
        std::fs::create_dir(&data).unwrap();
        chown_postgres(&data);
        chmod(&data, 0o700);
        let sock = d.join("sock");
        std::fs::create_dir(&sock).unwrap();
        chown_postgres(&sock);
        run(
            as_postgres(&pg_bin("initdb"))
                .arg("-D")
                .arg(&data)
                .args([
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "--locale=C",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ])
                .current_dir(d),
            READY_TIMEOUT,
        );
        let hba = data.join("pg_hba.conf");
        std::fs::write(&hba, PG_HBA).unwrap();
        chown_postgres(&hba);
        let port = free_port();
        let mut cmd = server_command(&data, &sock, port, "");
        cmd.current_dir(d);
        let proc = ServerProcess::spawn("postgres (template setup)", cmd, &d.join("setup.log"));
        proc.wait_ready(READY_TIMEOUT, || is_ready(&sock, port));
        for sql in [
            format!("CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}'"),
            format!("CREATE DATABASE {DATABASE} OWNER {USER}"),
            format!("GRANT pg_monitor TO {USER}"),
        ] {
            client_sql(&sock, port, "postgres", &sql)
                .unwrap_or_else(|e| panic!("PostgreSQL template setup: {e}"));
        }
        let status = proc.stop(libc::SIGINT, Duration::from_secs(60));
        assert!(
            status.success(),
            "postgres (template setup) exited with {status}:\n{}",
            proc.log_tail(40)
        );
        eprintln!(
            "[support] PostgreSQL template made in {:.2}s",
            started.elapsed().as_secs_f64()
        );
        at_exit(|| {
            if let Some(Ok(dir)) = TEMPLATE.get() {
                let _ = std::fs::remove_dir_all(dir.path());
            }
        });
        dir
    })
    .path()
}
