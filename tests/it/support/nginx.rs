//! nginx on 127.0.0.1, single process (`daemon off; master_process off;`,
//! so no worker can outlive it), every path inside a temp dir.
//!
//! The configuration is generated around the text you give; in that text
//! `@PORT@` is replaced by the port and `@DIR@` by the instance directory.
//!
//! ```ignore
//! let n = Nginx::start(r#"location / { add_header X-Test yes always; return 200 "ok\n"; }"#);
//! let resp = http::get(&n.url("/")).unwrap();
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use super::certs::KeyPair;
use super::process::ServerProcess;
use super::{READY_TIMEOUT, free_port, require_binary, tempdir};

/// Options for [`Nginx::start_with`].
#[derive(Debug, Clone, Default)]
pub struct NginxOptions {
    /// Body of the one `server { }` block, after its `listen` line.
    pub server: String,
    /// Extra text inside `http { }` (e.g. more `server` blocks, upstreams).
    pub http: String,
    /// Extra text at the top level (main context).
    pub main: String,
    /// Listen with TLS using this certificate chain and key.
    pub tls: Option<KeyPair>,
}

pub struct Nginx {
    proc: Option<ServerProcess>,
    port: u16,
    tls: bool,
    dir: TempDir,
}

impl Nginx {
    /// nginx with this `server { }` body.
    pub fn start(server_body: &str) -> Nginx {
        Self::start_with(NginxOptions {
            server: server_body.to_string(),
            ..Default::default()
        })
    }

    pub fn start_with(options: NginxOptions) -> Nginx {
        let dir = tempdir("nginx");
        let port = free_port();
        let d = dir.path();
        std::fs::create_dir_all(d.join("tmp")).unwrap();
        std::fs::create_dir_all(d.join("html")).unwrap();
        let subst = |text: &str| {
            text.replace("@PORT@", &port.to_string())
                .replace("@DIR@", &d.to_string_lossy())
        };
        let (listen, tls_lines) = match &options.tls {
            Some(kp) => (
                format!("listen 127.0.0.1:{port} ssl;"),
                format!(
                    "ssl_certificate {};\n        ssl_certificate_key {};",
                    kp.chain.display(),
                    kp.key.display()
                ),
            ),
            None => (format!("listen 127.0.0.1:{port};"), String::new()),
        };
        let dir_s = d.display();
        let conf = format!(
            "daemon off;
master_process off;
worker_processes 1;
pid {dir_s}/nginx.pid;
error_log {dir_s}/error.log info;
{main}
events {{ worker_connections 512; }}
http {{
    access_log {dir_s}/access.log;
    client_body_temp_path {dir_s}/tmp/client_body;
    proxy_temp_path {dir_s}/tmp/proxy;
    fastcgi_temp_path {dir_s}/tmp/fastcgi;
    uwsgi_temp_path {dir_s}/tmp/uwsgi;
    scgi_temp_path {dir_s}/tmp/scgi;
    default_type application/octet-stream;
    server {{
        {listen}
        server_name localhost;
        root {dir_s}/html;
        {tls_lines}
{server}
    }}
{http}
}}
",
            main = subst(&options.main),
            server = subst(&options.server),
            http = subst(&options.http),
        );
        std::fs::write(d.join("nginx.conf"), conf).unwrap();
        let nginx = require_binary("nginx");
        let test = super::process::output_with_timeout(
            Command::new(&nginx)
                .arg("-t")
                .arg("-p")
                .arg(d)
                .arg("-e")
                .arg(d.join("error.log"))
                .arg("-c")
                .arg(d.join("nginx.conf")),
            Duration::from_secs(30),
        )
        .unwrap_or_else(|e| panic!("nginx -t: {e}"));
        assert!(
            test.status.success(),
            "nginx rejected the generated configuration:\n{}\n--- {}:\n{}",
            String::from_utf8_lossy(&test.stderr),
            d.join("nginx.conf").display(),
            std::fs::read_to_string(d.join("nginx.conf")).unwrap_or_default()
        );
        let mut n = Nginx {
            proc: None,
            port,
            tls: options.tls.is_some(),
            dir,
        };
        n.start_again();
        n
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT{path}` (`https://` with TLS).
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}{path}", self.port)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The document root (`@DIR@/html`), empty at start.
    pub fn html_dir(&self) -> PathBuf {
        self.dir.path().join("html")
    }

    pub fn conf_path(&self) -> PathBuf {
        self.dir.path().join("nginx.conf")
    }

    pub fn access_log(&self) -> PathBuf {
        self.dir.path().join("access.log")
    }

    pub fn error_log(&self) -> PathBuf {
        self.dir.path().join("error.log")
    }

    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(ServerProcess::pid)
    }

    pub fn is_running(&self) -> bool {
        self.proc.as_ref().is_some_and(ServerProcess::is_running)
    }

    /// Graceful shutdown (SIGQUIT).
    pub fn stop(&mut self) {
        if let Some(p) = self.proc.take() {
            p.stop(libc::SIGQUIT, Duration::from_secs(20));
        }
    }

    pub fn kill(&mut self) {
        if let Some(p) = self.proc.take() {
            p.kill();
        }
    }

    /// Re-read the configuration file (SIGHUP), e.g. after editing it.
    pub fn reload(&self) {
        if let Some(p) = &self.proc {
            p.signal(libc::SIGHUP);
        }
    }

    /// Start (again) with the same configuration and port; waits for a TCP
    /// connect.
    pub fn start_again(&mut self) {
        self.stop();
        let d = self.dir.path();
        let mut cmd = Command::new(require_binary("nginx"));
        cmd.arg("-p")
            .arg(d)
            .arg("-e")
            .arg(d.join("error.log"))
            .arg("-c")
            .arg(d.join("nginx.conf"))
            .current_dir(d);
        let proc = ServerProcess::spawn("nginx", cmd, &d.join("nginx.out"));
        let port = self.port;
        let error_log = d.join("error.log");
        proc.wait_ready(READY_TIMEOUT, || {
            std::net::TcpStream::connect(("127.0.0.1", port))
                .map(drop)
                .map_err(|e| {
                    format!(
                        "connect: {e}; error.log: {}",
                        super::process::log_tail(&error_log, 5)
                    )
                })
        });
        self.proc = Some(proc);
    }
}
