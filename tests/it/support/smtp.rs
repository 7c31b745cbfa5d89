//! An SMTP server (aiosmtpd, `smtp_server.py` beside this file, run by the
//! venv's python) on 127.0.0.1: STARTTLS with a given certificate or not
//! offered, AUTH PLAIN/LOGIN with a configured user or always refused (535),
//! or a mode that drops the connection right after the 220 banner. Received
//! messages are stored in [`Smtp::maildir`].

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use super::certs::KeyPair;
use super::process::ServerProcess;
use super::{READY_TIMEOUT, free_port, support_dir, tempdir, venv_python_with};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SmtpMode {
    /// A normal SMTP server.
    #[default]
    Normal,
    /// Send the 220 greeting, then close the connection.
    DropAfterBanner,
}

/// Options for [`Smtp::start`]. The default: no STARTTLS, AUTH refused.
#[derive(Debug, Clone, Default)]
pub struct SmtpOptions {
    /// Offer STARTTLS with this certificate chain and key.
    pub tls: Option<KeyPair>,
    /// Refuse mail commands until STARTTLS.
    pub require_starttls: bool,
    /// Accept AUTH PLAIN/LOGIN with (user, password); `None`: every AUTH fails.
    pub auth: Option<(String, String)>,
    /// Allow (and advertise) AUTH before STARTTLS. Default: TLS required.
    pub auth_allow_plaintext: bool,
    pub mode: SmtpMode,
}

pub struct Smtp {
    proc: Option<ServerProcess>,
    port: u16,
    options: SmtpOptions,
    dir: TempDir,
}

impl Smtp {
    pub fn start(options: SmtpOptions) -> Smtp {
        let dir = tempdir("smtp");
        std::fs::create_dir(dir.path().join("maildir")).unwrap();
        let mut s = Smtp {
            proc: None,
            port: free_port(),
            options,
            dir,
        };
        s.start_again();
        s
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn maildir(&self) -> PathBuf {
        self.dir.path().join("maildir")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("smtp.log")
    }

    /// Messages received so far, in order (each prefixed by `X-Hp-Mail-From`
    /// and `X-Hp-Rcpt-To` header lines).
    pub fn messages(&self) -> Vec<String> {
        let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(self.maildir())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().to_str()?.strip_suffix(".eml")?.parse().ok()?;
                Some((n, e.path()))
            })
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|(_, p)| std::fs::read_to_string(p).unwrap_or_default())
            .collect()
    }

    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(ServerProcess::pid)
    }

    pub fn is_running(&self) -> bool {
        self.proc.as_ref().is_some_and(ServerProcess::is_running)
    }

    pub fn stop(&mut self) {
        if let Some(p) = self.proc.take() {
            p.stop(libc::SIGTERM, Duration::from_secs(10));
        }
    }

    pub fn kill(&mut self) {
        if let Some(p) = self.proc.take() {
            p.kill();
        }
    }

    /// Start (again) on the same port; waits for the 220 banner.
    pub fn start_again(&mut self) {
        self.stop();
        let python = venv_python_with("aiosmtpd");
        let mut cmd = Command::new(python);
        cmd.arg("-W")
            .arg("ignore")
            .arg(support_dir().join("smtp_server.py"))
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .arg("--maildir")
            .arg(self.maildir())
            .env("PYTHONUNBUFFERED", "1")
            .current_dir(self.dir.path());
        let o = &self.options;
        if let Some(kp) = &o.tls {
            cmd.arg("--tls-cert")
                .arg(&kp.chain)
                .arg("--tls-key")
                .arg(&kp.key);
        }
        if o.require_starttls {
            cmd.arg("--require-starttls");
        }
        if let Some((user, password)) = &o.auth {
            cmd.args(["--auth-user", user, "--auth-password", password]);
        }
        if o.auth_allow_plaintext {
            cmd.arg("--auth-allow-plaintext");
        }
        if o.mode == SmtpMode::DropAfterBanner {
            cmd.args(["--mode", "drop-after-banner"]);
        }
        let proc = ServerProcess::spawn("smtp (aiosmtpd)", cmd, &self.log_path());
        let addr = self.addr();
        proc.wait_ready(READY_TIMEOUT, || read_banner(addr));
        self.proc = Some(proc);
    }
}

fn read_banner(addr: SocketAddr) -> Result<(), String> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .map_err(|e| format!("read banner: {e}"))?;
    if line.starts_with("220") {
        Ok(())
    } else {
        Err(format!("unexpected banner {line:?}"))
    }
}

/// A minimal async SMTP client step for tests: connect, read the banner,
/// EHLO, check that STARTTLS is offered, STARTTLS, and do the TLS handshake
/// with `config` for `server_name`. Err carries the failing step (a TLS
/// error's text names the certificate problem, e.g. "Expired").
pub async fn starttls_handshake(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    server_name: &str,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    use std::io::{Error, ErrorKind};
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let mut stream = tokio::io::BufReader::new(stream);
    let banner = read_reply(&mut stream).await?;
    if !banner.starts_with("220") {
        return Err(Error::other(format!("banner: {banner:?}")));
    }
    stream
        .get_mut()
        .write_all(b"EHLO healthprobe.test\r\n")
        .await?;
    let ehlo = read_reply(&mut stream).await?;
    if !ehlo.lines().any(|l| l.get(4..) == Some("STARTTLS")) {
        return Err(Error::other(format!("STARTTLS not offered: {ehlo:?}")));
    }
    stream.get_mut().write_all(b"STARTTLS\r\n").await?;
    let go = read_reply(&mut stream).await?;
    if !go.starts_with("220") {
        return Err(Error::other(format!("STARTTLS refused: {go:?}")));
    }
    let name = rustls::pki_types::ServerName::try_from(server_name.to_string())
        .map_err(|e| Error::new(ErrorKind::InvalidInput, e))?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, stream.into_inner())
        .await
}

/// Read one (possibly multi-line) SMTP reply.
pub async fn read_reply<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> std::io::Result<String> {
    let mut reply = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("connection closed; reply so far {reply:?}"),
            ));
        }
        let done = line.as_bytes().get(3) != Some(&b'-');
        reply.push_str(line.trim_end());
        reply.push('\n');
        if done {
            return Ok(reply);
        }
    }
}
