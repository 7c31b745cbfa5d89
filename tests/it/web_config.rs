//! TLS and basic auth of the agent's HTTP server, configured with a
//! Prometheus-style web-config file, against the real binary: HTTPS with the
//! test CA, plain HTTP to the TLS port refused, 401 for missing or wrong
//! credentials, 200 with the right ones, client certificates, reload of the
//! file on change, and a bad file refused at start with its position.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;

use crate::support::agent::binary;
use crate::support::certs::{Certs, rustls_client_config_trusting};
use crate::support::process::{ServerProcess, output_with_timeout};
use crate::support::{READY_TIMEOUT, free_port, http, tempdir};

const PACK: &str = "pack: t\ndefaults: { interval: 1s, timeout: 500ms }\nchecks:\n  - name: root\n    kind: file\n    file: { path: / }\n";

struct Agent {
    proc: ServerProcess,
    port: u16,
    tls: Option<Arc<rustls::ClientConfig>>,
    dir: tempfile::TempDir,
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// One HTTP/1.0 request, over TLS when `tls` is given (server name `localhost`).
fn request(
    port: u16,
    path: &str,
    auth: Option<&str>,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> io::Result<Resp> {
    let tcp = TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    tcp.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut head = format!("GET {path} HTTP/1.0\r\nHost: localhost:{port}\r\n");
    if let Some(a) = auth {
        head.push_str(&format!("Authorization: {a}\r\n"));
    }
    head.push_str("\r\n");
    let mut raw = Vec::new();
    match tls {
        Some(cfg) => {
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let conn = rustls::ClientConnection::new(cfg, name).map_err(io::Error::other)?;
            let mut s = rustls::StreamOwned::new(conn, tcp);
            s.write_all(head.as_bytes())?;
            s.flush()?;
            match s.read_to_end(&mut raw) {
                Ok(_) => {}
                // The server may close without close_notify after HTTP/1.0.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
                Err(e) => return Err(e),
            }
        }
        None => {
            let mut s = tcp;
            s.write_all(head.as_bytes())?;
            s.read_to_end(&mut raw)?;
        }
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| io::Error::other(format!("no end of headers in {text:?}")))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad status line in {text:?}")))?;
    Ok(Resp {
        status,
        headers: lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
            .collect(),
        body: body.to_string(),
    })
}

impl Agent {
    /// `healthprobe run --web.config.file DIR/web.yml` with `web` as the file.
    fn start(web: &str, tls: Option<Arc<rustls::ClientConfig>>) -> Agent {
        let dir = tempdir("webcfg");
        std::fs::create_dir(dir.path().join("checks")).unwrap();
        std::fs::write(dir.path().join("checks/t.yaml"), PACK).unwrap();
        std::fs::write(dir.path().join("web.yml"), web).unwrap();
        let port = free_port();
        let mut cmd = Command::new(binary());
        cmd.arg("run")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--checks")
            .arg(dir.path().join("checks"))
            .arg("--web.config.file")
            .arg(dir.path().join("web.yml"))
            .env_remove("HEALTHPROBE_CONFIG");
        let proc = ServerProcess::spawn("healthprobe", cmd, &dir.path().join("agent.log"));
        let t = tls.clone();
        proc.wait_ready(READY_TIMEOUT, || {
            match request(port, "/-/ready", None, t.clone()) {
                Ok(r) if r.status == 200 => Ok(()),
                Ok(r) => Err(format!("status {}", r.status)),
                Err(e) => Err(e.to_string()),
            }
        });
        Agent {
            proc,
            port,
            tls,
            dir,
        }
    }

    fn get(&self, path: &str, auth: Option<&str>) -> Resp {
        request(self.port, path, auth, self.tls.clone())
            .unwrap_or_else(|e| panic!("GET {path}: {e}\nlog:\n{}", self.proc.log_tail(30)))
    }

    /// The status of GET `path` as `user` with `password`.
    fn status(&self, path: &str, user: &str, password: &str) -> u16 {
        self.get(path, Some(&basic(user, password))).status
    }

    fn web_file(&self) -> std::path::PathBuf {
        self.dir.path().join("web.yml")
    }
}

fn tls_block(certs: &Certs) -> String {
    format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  min_version: TLS12\n",
        certs.leaf.chain.display(),
        certs.leaf.key.display()
    )
}

fn hash(pw: &str) -> String {
    bcrypt::hash(pw, 4).unwrap()
}

#[test]
fn https_with_basic_auth() {
    let certs = Certs::shared();
    let web = format!(
        "{}http_server_config:\n  headers:\n    Strict-Transport-Security: max-age=31536000\nbasic_auth_users:\n  prometheus: {}\n  grafana: {}\n",
        tls_block(certs),
        hash("scrape-pw-1"),
        hash("other-pw-2")
    );
    let agent = Agent::start(&web, Some(certs.rustls_client_config()));

    // Credentials: none, a wrong password, an unknown user, then right.
    for auth in [
        None,
        Some(basic("prometheus", "wrong")),
        Some(basic("nobody", "scrape-pw-1")),
        Some("Bearer scrape-pw-1".to_string()),
    ] {
        for path in ["/metrics", "/api/v1/checks", "/", "/probe?check=t/root"] {
            let r = agent.get(path, auth.as_deref());
            assert_eq!(r.status, 401, "{path} with {auth:?}: {r:?}");
            assert!(
                r.header("WWW-Authenticate")
                    .is_some_and(|v| v.starts_with("Basic")),
                "{r:?}"
            );
            assert!(!r.body.contains("healthprobe_check"), "{r:?}");
        }
    }
    let r = agent.get("/metrics", Some(&basic("prometheus", "scrape-pw-1")));
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("healthprobe_check_success"), "{}", r.body);
    assert_eq!(
        r.header("Strict-Transport-Security"),
        Some("max-age=31536000")
    );
    // The remembered success is per password: the wrong one still fails.
    for _ in 0..3 {
        let r = agent.get("/metrics", Some(&basic("prometheus", "scrape-pw-1")));
        assert_eq!(r.status, 200);
    }
    assert_eq!(agent.status("/metrics", "prometheus", "scrape-pw-"), 401);
    assert_eq!(agent.status("/api/v1/checks", "grafana", "other-pw-2"), 200);
    // Liveness and readiness need no credentials (kubelet probes).
    assert_eq!(agent.get("/-/healthy", None).status, 200);
    assert_eq!(agent.get("/-/ready", None).status, 200);

    // Plain HTTP to the TLS port: a plain answer saying so, no data.
    let r = http::get(&format!("http://127.0.0.1:{}/metrics", agent.port)).unwrap();
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("HTTP request to an HTTPS server"),
        "{}",
        r.text()
    );
    // A client that trusts another CA does not get through the handshake.
    let stranger = rustls_client_config_trusting(&[&certs.self_signed.cert]);
    let e = request(agent.port, "/-/healthy", None, Some(stranger)).unwrap_err();
    assert!(e.to_string().contains("certificate"), "{e}");
}

#[test]
fn client_certificates_when_required() {
    let certs = Certs::shared();
    let web = format!(
        "{}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {}\n",
        tls_block(certs),
        certs.ca.cert.display()
    );
    let with_cert = {
        let pem = std::fs::read(&certs.leaf.chain).unwrap();
        let chain: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
            .map(Result::unwrap)
            .collect();
        let key_pem = std::fs::read(&certs.leaf.key).unwrap();
        let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
            .unwrap()
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        let ca = std::fs::read(&certs.ca.cert).unwrap();
        roots.add_parsable_certificates(
            rustls_pemfile::certs(&mut ca.as_slice()).map(Result::unwrap),
        );
        let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
        Arc::new(cfg)
    };
    let agent = Agent::start(&web, Some(with_cert));
    assert_eq!(agent.get("/metrics", None).status, 200);
    // Without a client certificate the handshake is refused (TLS 1.3 reports
    // it on the first read).
    let r = request(
        agent.port,
        "/metrics",
        None,
        Some(certs.rustls_client_config()),
    );
    assert!(r.is_err(), "{r:?}");
}

#[test]
fn basic_auth_over_http_is_reloaded_when_the_file_changes() {
    let agent = Agent::start(
        &format!("basic_auth_users:\n  alice: {}\n", hash("first-pw")),
        None,
    );
    assert_eq!(agent.get("/metrics", None).status, 401);
    assert_eq!(agent.status("/metrics", "alice", "first-pw"), 200);
    std::fs::write(
        agent.web_file(),
        format!("basic_auth_users:\n  alice: {}\n", hash("second-pw")),
    )
    .unwrap();
    // The next connection reads the file again.
    assert_eq!(agent.status("/metrics", "alice", "first-pw"), 401);
    assert_eq!(agent.status("/metrics", "alice", "second-pw"), 200);
    // A broken version is logged and the running one kept.
    std::fs::write(agent.web_file(), "basic_auth_users:\n  alice: [x]\n").unwrap();
    assert_eq!(agent.status("/metrics", "alice", "second-pw"), 200);
    let log = agent.proc.log_tail(20);
    assert!(
        log.contains("web config rejected") && log.contains("web.yml:2:10"),
        "{log}"
    );
    // Turning TLS on needs a restart: refused, the plain server goes on.
    let certs = Certs::shared();
    std::fs::write(agent.web_file(), tls_block(certs)).unwrap();
    assert_eq!(agent.status("/metrics", "alice", "second-pw"), 200);
    assert!(agent.proc.log_tail(20).contains("needs a restart"));
}

fn run_with(args: &[&str]) -> (Option<i32>, String) {
    let out = output_with_timeout(
        Command::new(binary())
            .args(args)
            .env_remove("HEALTHPROBE_CONFIG"),
        Duration::from_secs(30),
    )
    .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_bad_web_config_stops_the_agent_with_the_position() {
    let dir = tempdir("webcfg-bad");
    let web = dir.path().join("web.yml");
    let checks = dir.path().join("checks");
    std::fs::create_dir(&checks).unwrap();
    std::fs::write(checks.join("t.yaml"), PACK).unwrap();
    std::fs::write(
        &web,
        "tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\nbasic_auth_users:\n  admin: plain-text-password\n",
    )
    .unwrap();
    let port = free_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    let w = web.to_str().unwrap();
    let c = checks.to_str().unwrap();
    let run_agent = |web_config: &str| {
        run_with(&[
            "run",
            "--listen",
            &listen,
            "--checks",
            c,
            "--web.config.file",
            web_config,
        ])
    };
    let (code, err) = run_agent(w);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "{w}:4:3: tls_server_config.cipher_suites: unknown field `cipher_suites`"
        )),
        "{err}"
    );
    assert!(
        !err.contains("plain-text-password"),
        "a password pasted as a hash is not repeated: {err}"
    );
    // Through the agent config: `validate` and `run` both refuse it; with a
    // deserialization error the file's other problems come next time.
    std::fs::write(&web, "basic_auth_users:\n  admin: plain-text-password\n").unwrap();
    let config = dir.path().join("healthprobe.yaml");
    std::fs::write(
        &config,
        format!("web_config_file: {w}\nchecks_dirs: [{c}]\n"),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    for args in [
        vec!["validate", "--config", cfg],
        vec!["run", "--listen", &listen, "--config", cfg],
    ] {
        let (code, err) = run_with(&args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(
            err.contains(&format!(
                "{w}:2:10: basic_auth_users.admin: not a bcrypt hash"
            )),
            "{err}"
        );
        assert!(!err.contains("plain-text-password"), "{err}");
    }
    // A missing file.
    let (code, err) = run_agent("/nonexistent/web.yml");
    assert_eq!(code, Some(2));
    assert!(err.contains("/nonexistent/web.yml: cannot read"), "{err}");
}
