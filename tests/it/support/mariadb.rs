//! MariaDB (`mariadbd --no-defaults`, as root) on 127.0.0.1.
//!
//! The system tables are made once per test binary by `mariadb-install-db`
//! into a template directory (with the database [`DATABASE`] and the TCP user
//! [`USER`]@127.0.0.1 identified by [`PASSWORD`]); each instance starts from a
//! copy of it. Root connects without a password over the unix socket only.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use tempfile::TempDir;

use super::process::{ServerProcess, at_exit, run, try_run};
use super::{READY_TIMEOUT, free_port, require_binary, shared_instance, tempdir};

pub const USER: &str = "app";
pub const PASSWORD: &str = "app-Pw-42";
pub const DATABASE: &str = "app";

/// Options for [`Mariadb::start_with`].
#[derive(Debug, Clone, Default)]
pub struct MariadbOptions {
    /// Extra `mariadbd` arguments, e.g. `--ssl-cert=...`.
    pub extra_args: Vec<String>,
}

pub struct Mariadb {
    proc: Option<ServerProcess>,
    port: u16,
    options: MariadbOptions,
    dir: TempDir,
}

impl Mariadb {
    /// A private instance (it may be stopped, killed and started again).
    pub fn start() -> Mariadb {
        Self::start_with(MariadbOptions::default())
    }

    pub fn start_with(options: MariadbOptions) -> Mariadb {
        let template = template();
        let dir = tempdir("mariadb");
        run(
            Command::new("cp")
                .arg("-a")
                .arg(template.join("data"))
                .arg(dir.path().join("data")),
            Duration::from_secs(60),
        );
        std::fs::create_dir(dir.path().join("tmp")).unwrap();
        let mut db = Mariadb {
            proc: None,
            port: free_port(),
            options,
            dir,
        };
        db.start_again();
        db
    }

    /// One instance shared by the whole test binary; do not stop it.
    pub fn shared() -> &'static Mariadb {
        static SHARED: OnceLock<Result<Mariadb, String>> = OnceLock::new();
        shared_instance(&SHARED, "MariaDB", || {
            at_exit(|| {
                if let Some(Ok(db)) = SHARED.get() {
                    db.shutdown_at_exit();
                }
            });
            Mariadb::start()
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

    pub fn socket_path(&self) -> PathBuf {
        self.dir.path().join("mariadb.sock")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("mariadbd.log")
    }

    /// `mysql://app:PASSWORD@127.0.0.1:PORT/app`
    pub fn tcp_url(&self) -> String {
        format!(
            "mysql://{USER}:{PASSWORD}@127.0.0.1:{}/{DATABASE}",
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

    /// PID of the running server.
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(ServerProcess::pid)
    }

    pub fn is_running(&self) -> bool {
        self.proc.as_ref().is_some_and(ServerProcess::is_running)
    }

    /// Run SQL as root over the socket (`mariadb --batch --skip-column-names`);
    /// returns stdout, tab-separated. Panics on error.
    pub fn exec_sql(&self, sql: &str) -> String {
        self.try_exec_sql(sql).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_exec_sql(&self, sql: &str) -> Result<String, String> {
        client_sql(&self.socket_path(), sql)
    }

    /// Graceful shutdown (SIGTERM, up to 60 s).
    pub fn stop(&mut self) {
        if let Some(p) = self.proc.take() {
            p.stop(libc::SIGTERM, Duration::from_secs(60));
        }
    }

    /// Crash it: SIGKILL.
    pub fn kill(&mut self) {
        if let Some(p) = self.proc.take() {
            p.kill();
        }
    }

    /// Start (again) on the same data directory and port; waits until ready.
    pub fn start_again(&mut self) {
        self.stop();
        let d = self.dir.path();
        let mut cmd = Command::new(require_binary("mariadbd"));
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", d.join("data").display()))
            .arg(format!("--socket={}", self.socket_path().display()))
            .arg(format!("--pid-file={}", d.join("mariadbd.pid").display()))
            .arg(format!("--tmpdir={}", d.join("tmp").display()))
            .arg(format!("--port={}", self.port))
            .args(server_args())
            .args(&self.options.extra_args)
            .current_dir(d);
        let proc = ServerProcess::spawn("mariadbd", cmd, &self.log_path());
        let socket = self.socket_path();
        proc.wait_ready(READY_TIMEOUT, || client_sql(&socket, "select 1").map(drop));
        self.proc = Some(proc);
    }

    fn shutdown_at_exit(&self) {
        if let Some(p) = &self.proc {
            p.stop(libc::SIGTERM, Duration::from_secs(20));
        }
        let _ = std::fs::remove_dir_all(self.dir.path());
    }
}

fn server_args() -> [&'static str; 10] {
    [
        "--user=root",
        "--bind-address=127.0.0.1",
        "--skip-name-resolve",
        "--innodb-buffer-pool-size=32M",
        "--innodb-log-file-size=16M",
        "--innodb-flush-log-at-trx-commit=2",
        "--innodb-flush-method=fsync",
        "--max-connections=200",
        "--character-set-server=utf8mb4",
        "--collation-server=utf8mb4_general_ci",
    ]
}

fn client_sql(socket: &Path, sql: &str) -> Result<String, String> {
    try_run(
        Command::new(require_binary("mariadb"))
            .arg("--no-defaults")
            .arg(format!("--socket={}", socket.display()))
            .args([
                "-uroot",
                "--batch",
                "--skip-column-names",
                "--connect-timeout=5",
            ])
            .arg("-e")
            .arg(sql),
        Duration::from_secs(60),
    )
}

/// The template data directory, made once per test binary.
fn template() -> &'static Path {
    static TEMPLATE: OnceLock<Result<TempDir, String>> = OnceLock::new();
    shared_instance(&TEMPLATE, "MariaDB template", || {
        let started = std::time::Instant::now();
        let dir = tempdir("mariadb-tmpl");
        let d = dir.path();
        let install = require_binary("mariadb-install-db");
        let log = d.join("install.log");
        let out = super::process::output_with_timeout(
            Command::new(&install)
                .arg("--no-defaults")
                .arg(format!("--datadir={}", d.join("data").display()))
                .args([
                    "--user=root",
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                    "--innodb-log-file-size=16M",
                ])
                .current_dir(d),
            READY_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("mariadb-install-db: {e}"));
        std::fs::write(
            &log,
            [out.stdout.as_slice(), out.stderr.as_slice()].concat(),
        )
        .unwrap();
        if !out.status.success() {
            panic!(
                "mariadb-install-db failed with {}:\n{}",
                out.status,
                super::process::log_tail(&log, 40)
            );
        }
        std::fs::create_dir(d.join("tmp")).unwrap();
        let socket = d.join("setup.sock");
        let mut cmd = Command::new(require_binary("mariadbd"));
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", d.join("data").display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--pid-file={}", d.join("setup.pid").display()))
            .arg(format!("--tmpdir={}", d.join("tmp").display()))
            .arg("--skip-networking")
            .args(server_args())
            .current_dir(d);
        let proc = ServerProcess::spawn("mariadbd (template setup)", cmd, &d.join("setup.log"));
        proc.wait_ready(READY_TIMEOUT, || client_sql(&socket, "select 1").map(drop));
        client_sql(
            &socket,
            &format!(
                "CREATE DATABASE `{DATABASE}`; \
                 CREATE USER '{USER}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'; \
                 GRANT ALL PRIVILEGES ON `{DATABASE}`.* TO '{USER}'@'127.0.0.1'; \
                 GRANT PROCESS, REPLICATION CLIENT ON *.* TO '{USER}'@'127.0.0.1';"
            ),
        )
        .unwrap_or_else(|e| panic!("MariaDB template setup: {e}"));
        let status = proc.stop(libc::SIGTERM, Duration::from_secs(60));
        assert!(
            status.success(),
            "mariadbd (template setup) exited with {status}:\n{}",
            proc.log_tail(40)
        );
        eprintln!(
            "[support] MariaDB template made in {:.2}s",
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
