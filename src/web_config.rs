//! TLS and basic auth for the agent's HTTP server, configured with the
//! `web-config` file of Prometheus' own exporters (exporter-toolkit), so one
//! file can serve node_exporter and healthprobe alike:
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: /etc/healthprobe/tls.crt
//!   key_file: /etc/healthprobe/tls.key
//!   client_auth_type: RequireAndVerifyClientCert   # optional
//!   client_ca_file: /etc/healthprobe/clients-ca.crt
//!   min_version: TLS12
//! http_server_config:
//!   headers: { Strict-Transport-Security: max-age=31536000 }
//! basic_auth_users:
//!   prometheus: $2y$10$...   # bcrypt: htpasswd -nBC 10 "" | tr -d ':\n'
//! ```
//!
//! - Read with the same YAML reader as the rest of the config: unknown keys,
//!   bad values and unreadable or mismatched certificate files are errors
//!   with `file:line:column`. Relative paths are relative to the web-config
//!   file's directory (as in exporter-toolkit).
//! - Reloaded on each new connection: the file and the certificate, key and
//!   CA files it names are `stat`ed, and read again when one of them changed,
//!   so a renewed certificate or a new user takes effect without a restart.
//!   A new version that does not load is logged and the last good one kept.
//!   Turning TLS on or off needs a restart (the listener's mode is fixed).
//! - Basic auth protects every endpoint except `/-/healthy` and `/-/ready`
//!   (constant answers, for kubelet and load-balancer probes, which carry no
//!   credentials) and `/push/...` (heartbeat pushes carry their own token in
//!   the same `Authorization` header). A failure is `401` with
//!   `WWW-Authenticate: Basic`.
//! - User names are compared in constant time, an unknown user costs a
//!   bcrypt like a known one, and a successful (user, hash, password) check is
//!   remembered under its SHA-256 so that a scrape every 15 s does not pay a
//!   bcrypt each time. Failures are not remembered; bcrypt runs on the
//!   blocking pool, two at a time at most.

use std::collections::{BTreeMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use base64::Engine as _;
use http::{HeaderName, HeaderValue};
use rustls::pki_types::PrivateKeyDer;
use schemars::JsonSchema;
use serde::Deserialize;
use sha2::Digest;
use tokio::sync::Semaphore;

use crate::config::error::{ConfigError, Pos};
use crate::config::yaml;

/// The web-config file (exporter-toolkit's format; the common subset).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebConfigFile {
    /// Serve HTTPS with this certificate (and optionally require client
    /// certificates). Without it the server speaks plain HTTP.
    #[serde(default)]
    pub tls_server_config: Option<TlsServerConfig>,
    /// Extra response headers.
    #[serde(default)]
    pub http_server_config: HttpServerConfig,
    /// Users allowed in, each with a bcrypt hash of their password
    /// (`htpasswd -nBC 10 "" | tr -d ':\n'`). Empty: no authentication.
    #[serde(default)]
    pub basic_auth_users: BTreeMap<String, String>,
}

/// `tls_server_config:`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsServerConfig {
    /// The server's certificate (PEM), followed by its intermediates.
    pub cert_file: PathBuf,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// Whether clients must present a certificate: `NoClientCert` (default),
    /// `VerifyClientCertIfGiven` or `RequireAndVerifyClientCert` (both need
    /// `client_ca_file`).
    #[serde(default)]
    pub client_auth_type: ClientAuth,
    /// CA certificates (PEM) that client certificates must chain to.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// Oldest TLS version accepted: `TLS12` (default) or `TLS13`.
    #[serde(default)]
    pub min_version: Option<TlsVersion>,
    /// Newest TLS version accepted: `TLS12` or `TLS13` (default).
    #[serde(default)]
    pub max_version: Option<TlsVersion>,
    /// Accepted for compatibility: the server's preference order is always used.
    #[serde(default)]
    pub prefer_server_cipher_suites: Option<bool>,
}

/// exporter-toolkit's `client_auth_type` values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum ClientAuth {
    #[default]
    NoClientCert,
    /// Not supported: an unverified certificate proves nothing.
    RequestClientCert,
    /// Not supported: an unverified certificate proves nothing.
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

/// A TLS protocol version as exporter-toolkit writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize, JsonSchema)]
pub enum TlsVersion {
    TLS10,
    TLS11,
    TLS12,
    TLS13,
}

/// `http_server_config:`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpServerConfig {
    /// Accepted for compatibility; healthprobe serves HTTP/1.1.
    #[serde(default)]
    pub http2: Option<bool>,
    /// Headers added to every response (`Strict-Transport-Security`,
    /// `Content-Security-Policy`, `X-Frame-Options`, ...).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// A loaded, validated web config.
pub struct WebConfig {
    /// The TLS server config, when `tls_server_config` is set.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// User name -> bcrypt hash.
    users: Vec<(String, String)>,
    /// Extra response headers.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The files it was built from and their state then.
    stamps: Vec<(PathBuf, Option<Stamp>)>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field(
                "users",
                &self.users.iter().map(|(u, _)| u).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// What identifies a version of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    modified: i64,
    modified_ns: i64,
    len: u64,
    ino: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    std::fs::metadata(path).ok().map(|m| Stamp {
        modified: m.mtime(),
        modified_ns: m.mtime_nsec(),
        len: m.len(),
        ino: m.ino(),
    })
}

/// Paths whose requests need no credentials.
pub fn is_public(path: &str) -> bool {
    matches!(path, "/-/healthy" | "/-/ready") || path.starts_with("/push/")
}

/// A bcrypt hash of a password nobody has: an unknown user is checked
/// against it, so that unknown and known users take as long.
const DUMMY_HASH: &str = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";
/// Successful verifications remembered (the set is emptied when full).
const CACHE_LIMIT: usize = 1024;

impl WebConfig {
    /// Reads and validates a web-config file; every problem is returned,
    /// located.
    pub fn load(path: &Path) -> Result<WebConfig, Vec<ConfigError>> {
        let label = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| vec![ConfigError::file(&label, format!("cannot read: {e}"))])?;
        WebConfig::parse(&text, path)
    }

    /// Validates the text of a web-config file read from `path` (relative
    /// paths inside are resolved against its directory).
    pub fn parse(text: &str, path: &Path) -> Result<WebConfig, Vec<ConfigError>> {
        let label = path.display().to_string();
        let mut stamps = vec![(path.to_path_buf(), stamp(path))];
        let node = match yaml::parse(text) {
            Ok(Some(node)) => node,
            // An empty file: plain HTTP, no authentication.
            Ok(None) => {
                return Ok(WebConfig {
                    tls: None,
                    users: Vec::new(),
                    headers: Vec::new(),
                    stamps,
                });
            }
            Err((pos, m)) => {
                return Err(vec![ConfigError::new(
                    &label,
                    Some(pos),
                    "",
                    format!("invalid YAML: {m}"),
                )]);
            }
        };
        let identity = |s: &str| Ok(s.to_string());
        let file: WebConfigFile = yaml::from_node(&node, "", &identity).map_err(|e| {
            vec![ConfigError::new(
                &label,
                e.pos.or(Some(Pos { line: 1, col: 1 })),
                e.path,
                e.message,
            )]
        })?;
        let mut errors = Vec::new();
        let err = |errors: &mut Vec<ConfigError>, field: &str, on_key: bool, m: String| {
            let n = if on_key {
                node.find_key(field)
            } else {
                node.find(field)
            };
            errors.push(ConfigError::new(&label, Some(n.pos), field, m));
        };

        let mut users = Vec::new();
        for (name, hash) in &file.basic_auth_users {
            let field = format!("basic_auth_users.{name}");
            if name.is_empty() || name.contains(':') {
                err(
                    &mut errors,
                    &field,
                    true,
                    "a user name cannot be empty or contain `:`".into(),
                );
            }
            match hash.parse::<bcrypt::HashParts>() {
                Ok(_) => users.push((name.clone(), hash.clone())),
                // The hash is not shown: it may be a password pasted by mistake.
                Err(_) => err(
                    &mut errors,
                    &field,
                    false,
                    "not a bcrypt hash (make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`; a plain password does not belong here)".into(),
                ),
            }
        }

        let mut headers = Vec::new();
        for (k, v) in &file.http_server_config.headers {
            let field = format!("http_server_config.headers.{k}");
            match (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                (Err(_), _) => err(
                    &mut errors,
                    &field,
                    true,
                    format!("`{k}` is not a valid header name"),
                ),
                (_, Err(_)) => err(
                    &mut errors,
                    &field,
                    false,
                    "the value holds characters a header cannot carry".into(),
                ),
                (Ok(n), Ok(v)) => {
                    if matches!(
                        n.as_str(),
                        "content-type"
                            | "content-length"
                            | "transfer-encoding"
                            | "connection"
                            | "www-authenticate"
                            | "date"
                    ) {
                        err(
                            &mut errors,
                            &field,
                            true,
                            format!("`{k}` is set by the server itself"),
                        );
                    } else {
                        headers.push((n, v));
                    }
                }
            }
        }

        let tls = match &file.tls_server_config {
            None => None,
            Some(t) => {
                let base = path.parent().unwrap_or(Path::new("."));
                tls_config(t, base, &mut stamps, &mut |field, on_key, m| {
                    err(&mut errors, field, on_key, m)
                })
            }
        };
        if errors.is_empty() {
            Ok(WebConfig {
                tls,
                users,
                headers,
                stamps,
            })
        } else {
            errors.sort_by_key(|e| e.pos);
            Err(errors)
        }
    }

    /// Whether requests must carry credentials.
    pub fn needs_auth(&self) -> bool {
        !self.users.is_empty()
    }

    /// Whether a file it was built from has changed since.
    fn changed(&self) -> bool {
        self.stamps.iter().any(|(p, s)| stamp(p) != *s)
    }
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn tls_config(
    t: &TlsServerConfig,
    base: &Path,
    stamps: &mut Vec<(PathBuf, Option<Stamp>)>,
    err: &mut dyn FnMut(&str, bool, String),
) -> Option<Arc<rustls::ServerConfig>> {
    let f = "tls_server_config";
    let mut ok = true;
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = {
        let min = t.min_version.unwrap_or(TlsVersion::TLS12);
        let max = t.max_version.unwrap_or(TlsVersion::TLS13);
        for (field, v) in [
            ("min_version", t.min_version),
            ("max_version", t.max_version),
        ] {
            if matches!(v, Some(TlsVersion::TLS10 | TlsVersion::TLS11)) {
                err(
                    &format!("{f}.{field}"),
                    false,
                    "TLS 1.0 and 1.1 are not supported (they are broken): use TLS12 or TLS13"
                        .into(),
                );
                ok = false;
            }
        }
        if min > max {
            err(
                &format!("{f}.max_version"),
                false,
                "max_version is older than min_version".into(),
            );
            ok = false;
        }
        [
            (TlsVersion::TLS12, &rustls::version::TLS12),
            (TlsVersion::TLS13, &rustls::version::TLS13),
        ]
        .into_iter()
        .filter(|(v, _)| (min..=max).contains(v))
        .map(|(_, p)| p)
        .collect()
    };
    if matches!(
        t.client_auth_type,
        ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert
    ) {
        err(
            &format!("{f}.client_auth_type"),
            false,
            "only NoClientCert, VerifyClientCertIfGiven and RequireAndVerifyClientCert are supported: a client certificate that is not verified proves nothing".into(),
        );
        ok = false;
    }
    let verify = matches!(
        t.client_auth_type,
        ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert
    );
    if verify && t.client_ca_file.is_none() {
        err(
            &format!("{f}.client_auth_type"),
            false,
            "verifying client certificates needs `client_ca_file`".into(),
        );
        ok = false;
    }
    if !verify && t.client_ca_file.is_some() && t.client_auth_type == ClientAuth::NoClientCert {
        err(
            &format!("{f}.client_ca_file"),
            true,
            "client_ca_file is only used with client_auth_type VerifyClientCertIfGiven or RequireAndVerifyClientCert".into(),
        );
        ok = false;
    }

    let cert_path = resolve(base, &t.cert_file);
    let key_path = resolve(base, &t.key_file);
    stamps.push((cert_path.clone(), stamp(&cert_path)));
    stamps.push((key_path.clone(), stamp(&key_path)));
    let certs = crate::support::tls::read_pem_certs(&cert_path)
        .map_err(|m| err(&format!("{f}.cert_file"), false, m))
        .ok();
    let key = read_key(&key_path)
        .map_err(|m| err(&format!("{f}.key_file"), false, m))
        .ok();
    let roots = match (&t.client_ca_file, verify) {
        (Some(ca), true) => {
            let ca_path = resolve(base, ca);
            stamps.push((ca_path.clone(), stamp(&ca_path)));
            match crate::support::tls::read_pem_certs(&ca_path) {
                Ok(certs) => {
                    let mut roots = rustls::RootCertStore::empty();
                    let (_, bad) = roots.add_parsable_certificates(certs);
                    if bad > 0 || roots.is_empty() {
                        err(
                            &format!("{f}.client_ca_file"),
                            false,
                            format!(
                                "{} holds certificates that cannot be used as CAs",
                                ca_path.display()
                            ),
                        );
                        None
                    } else {
                        Some(Arc::new(roots))
                    }
                }
                Err(m) => {
                    err(&format!("{f}.client_ca_file"), false, m);
                    None
                }
            }
        }
        _ => None,
    };
    let (Some(certs), Some(key)) = (certs, key) else {
        return None;
    };
    if !ok || (verify && roots.is_none()) {
        return None;
    }
    let provider = crate::support::tls::provider();
    let builder = match rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
    {
        Ok(b) => b,
        Err(e) => {
            err(f, true, format!("cannot set up TLS: {e}"));
            return None;
        }
    };
    let builder = match roots {
        Some(roots) => {
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider);
            let v = if t.client_auth_type == ClientAuth::VerifyClientCertIfGiven {
                v.allow_unauthenticated()
            } else {
                v
            };
            match v.build() {
                Ok(v) => builder.with_client_cert_verifier(v),
                Err(e) => {
                    err(
                        &format!("{f}.client_ca_file"),
                        false,
                        format!("cannot verify clients with these CAs: {e}"),
                    );
                    return None;
                }
            }
        }
        None => builder.with_no_client_auth(),
    };
    match builder.with_single_cert(certs, key) {
        Ok(mut cfg) => {
            cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
            cfg.ignore_client_order = true;
            Some(Arc::new(cfg))
        }
        Err(e) => {
            err(
                &format!("{f}.key_file"),
                false,
                format!(
                    "{} does not go with the certificate in {}: {e}",
                    key_path.display(),
                    cert_path.display()
                ),
            );
            None
        }
    }
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    match rustls_pemfile::private_key(&mut pem.as_slice()) {
        Ok(Some(k)) => Ok(k),
        Ok(None) => Err(format!(
            "{} holds no private key (expected a `-----BEGIN PRIVATE KEY-----` block)",
            path.display()
        )),
        Err(e) => Err(format!("{} is not a PEM key file: {e}", path.display())),
    }
}

/// The web config of a running server: reloaded when its files change.
pub struct Web {
    path: PathBuf,
    current: ArcSwap<WebConfig>,
    /// Whether the listener speaks TLS (fixed at start).
    tls_on: bool,
    /// SHA-256 of (user, hash, password) for successful verifications.
    verified: Mutex<HashSet<[u8; 32]>>,
    bcrypt_slots: Semaphore,
    refreshing: Mutex<()>,
}

impl std::fmt::Debug for Web {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Web").field("path", &self.path).finish()
    }
}

impl Web {
    /// Loads the web-config file for a server.
    pub fn load(path: &Path) -> Result<Arc<Web>, Vec<ConfigError>> {
        let cfg = WebConfig::load(path)?;
        Ok(Arc::new(Web {
            path: path.to_path_buf(),
            tls_on: cfg.tls.is_some(),
            current: ArcSwap::from_pointee(cfg),
            verified: Mutex::new(HashSet::new()),
            bcrypt_slots: Semaphore::new(2),
            refreshing: Mutex::new(()),
        }))
    }

    /// Whether the server speaks HTTPS.
    pub fn tls_on(&self) -> bool {
        self.tls_on
    }

    /// The config for a new connection: read again first if one of its
    /// files changed. A new version that does not load is logged, and the
    /// last good one is kept.
    pub fn for_connection(&self) -> Arc<WebConfig> {
        let cur = self.current.load_full();
        if !cur.changed() {
            return cur;
        }
        let Ok(_one) = self.refreshing.try_lock() else {
            return cur;
        };
        let cur = self.current.load_full();
        if !cur.changed() {
            return cur;
        }
        match WebConfig::load(&self.path) {
            Ok(new) if new.tls.is_some() != self.tls_on => {
                tracing::error!(
                    file = %self.path.display(),
                    "the web config now turns TLS {}: that needs a restart; keeping the running web config",
                    if self.tls_on { "off" } else { "on" }
                );
                self.keep_quiet(&cur);
                cur
            }
            Ok(new) => {
                tracing::info!(file = %self.path.display(), "web config reloaded");
                let new = Arc::new(new);
                self.current.store(new.clone());
                new
            }
            Err(errors) => {
                for e in &errors {
                    tracing::error!(error = %crate::redact::redact(&e.to_string()), "web config rejected; keeping the running one");
                }
                self.keep_quiet(&cur);
                cur
            }
        }
    }

    /// Stores the running config again with the files' new stamps, so a bad
    /// version is reported once rather than on every connection.
    fn keep_quiet(&self, cur: &Arc<WebConfig>) {
        let stamps = cur
            .stamps
            .iter()
            .map(|(p, _)| (p.clone(), stamp(p)))
            .collect();
        self.current.store(Arc::new(WebConfig {
            tls: cur.tls.clone(),
            users: cur.users.clone(),
            headers: cur.headers.clone(),
            stamps,
        }));
    }

    /// Whether an `Authorization` header lets a request in.
    pub async fn authorize(&self, cfg: &WebConfig, header: Option<&HeaderValue>) -> bool {
        if !cfg.needs_auth() {
            return true;
        }
        let Some((user, password)) = header.and_then(basic_credentials) else {
            return false;
        };
        // Every user name is compared, each in constant time.
        let mut found: Option<&str> = None;
        for (name, hash) in &cfg.users {
            if constant_time_eq(name.as_bytes(), user.as_bytes()) {
                found = Some(hash);
            }
        }
        let hash = found.unwrap_or(DUMMY_HASH).to_string();
        let key: [u8; 32] = {
            let mut h = sha2::Sha256::new();
            for part in [user.as_bytes(), hash.as_bytes(), password.as_bytes()] {
                h.update((part.len() as u64).to_le_bytes());
                h.update(part);
            }
            h.finalize().into()
        };
        if found.is_some()
            && self
                .verified
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&key)
        {
            return true;
        }
        let Ok(_slot) = self.bcrypt_slots.acquire().await else {
            return false;
        };
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(false);
        if ok && found.is_some() {
            let mut set = self.verified.lock().unwrap_or_else(|e| e.into_inner());
            if set.len() >= CACHE_LIMIT {
                set.clear();
            }
            set.insert(key);
            return true;
        }
        false
    }
}

/// `Basic BASE64(user:password)`.
fn basic_credentials(v: &HeaderValue) -> Option<(String, String)> {
    let v = v.to_str().ok()?;
    let (scheme, rest) = v.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// Compares without stopping at the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() != b.len()) as u8;
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors_of(text: &str) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.yml");
        match WebConfig::parse(text, &path) {
            Ok(_) => Vec::new(),
            Err(e) => e
                .iter()
                .map(|e| {
                    e.to_string()
                        .replace(&format!("{}", path.display()), "web.yml")
                })
                .collect(),
        }
    }

    #[test]
    fn unknown_keys_and_bad_values_are_located() {
        assert_eq!(
            errors_of("tls_server_config:\n  cert_file: a\n  key_file: b\n  ciphers: [x]\n"),
            vec![
                "web.yml:4:3: tls_server_config.ciphers: unknown field `ciphers`, expected one of `cert_file`, `key_file`, `client_auth_type`, `client_ca_file`, `min_version`, `max_version`, `prefer_server_cipher_suites`"
            ]
        );
        let e = errors_of("basic_auth_users:\n  alice: hunter2-not-a-hash\n");
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with("web.yml:2:10: basic_auth_users.alice: not a bcrypt hash"),
            "{e:?}"
        );
        assert!(!e[0].contains("hunter2"), "{e:?}");
        let e = errors_of(
            "tls_server_config:\n  cert_file: nope.crt\n  key_file: nope.key\n  client_auth_type: RequireAnyClientCert\n  min_version: TLS11\n",
        );
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(
            e[0].starts_with("web.yml:2:14: tls_server_config.cert_file: cannot read"),
            "{e:?}"
        );
        assert!(
            e[1].starts_with("web.yml:3:13: tls_server_config.key_file: cannot read"),
            "{e:?}"
        );
        assert!(
            e[2].starts_with("web.yml:4:21: tls_server_config.client_auth_type: only"),
            "{e:?}"
        );
        assert!(
            e[3].starts_with("web.yml:5:16: tls_server_config.min_version: TLS 1.0 and 1.1"),
            "{e:?}"
        );
        let e = errors_of("http_server_config:\n  headers: { Content-Type: x }\n");
        assert!(e[0].contains("set by the server itself"), "{e:?}");
    }

    #[test]
    fn an_empty_file_means_plain_http_without_auth() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = WebConfig::parse("", &dir.path().join("w.yml")).unwrap();
        assert!(cfg.tls.is_none() && !cfg.needs_auth());
    }

    #[test]
    fn basic_credentials_are_parsed() {
        let h = HeaderValue::from_static("Basic YWxpY2U6cDQ6c3M="); // alice:p4:ss
        assert_eq!(
            basic_credentials(&h),
            Some(("alice".into(), "p4:ss".into()))
        );
        assert_eq!(
            basic_credentials(&HeaderValue::from_static("Bearer x")),
            None
        );
        assert_eq!(
            basic_credentials(&HeaderValue::from_static("Basic %%%")),
            None
        );
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
    }

    #[tokio::test]
    async fn successful_checks_are_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.yml");
        let hash = bcrypt::hash("right-pw", 4).unwrap();
        std::fs::write(&path, format!("basic_auth_users:\n  alice: {hash}\n")).unwrap();
        let web = Web::load(&path).unwrap();
        let cfg = web.for_connection();
        let basic = |u: &str, p: &str| {
            let b = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            HeaderValue::from_str(&format!("Basic {b}")).unwrap()
        };
        assert!(!web.authorize(&cfg, None).await);
        assert!(!web.authorize(&cfg, Some(&basic("alice", "wrong"))).await);
        assert!(!web.authorize(&cfg, Some(&basic("bob", "right-pw"))).await);
        assert!(web.verified.lock().unwrap().is_empty());
        assert!(web.authorize(&cfg, Some(&basic("alice", "right-pw"))).await);
        assert_eq!(web.verified.lock().unwrap().len(), 1);
        assert!(web.authorize(&cfg, Some(&basic("alice", "right-pw"))).await);
        assert_eq!(web.verified.lock().unwrap().len(), 1);
        // A new hash for the same user: the remembered success no longer applies.
        let hash2 = bcrypt::hash("other-pw", 4).unwrap();
        std::fs::write(&path, format!("basic_auth_users:\n  alice: {hash2}\n")).unwrap();
        let cfg = web.for_connection();
        assert!(!web.authorize(&cfg, Some(&basic("alice", "right-pw"))).await);
        assert!(web.authorize(&cfg, Some(&basic("alice", "other-pw"))).await);
        // A broken version is not taken.
        std::fs::write(&path, "basic_auth_users: [oops]\n").unwrap();
        let cfg = web.for_connection();
        assert!(cfg.needs_auth());
    }

    #[test]
    fn public_paths() {
        assert!(is_public("/-/healthy"));
        assert!(is_public("/-/ready"));
        assert!(is_public("/push/a/b"));
        assert!(!is_public("/metrics"));
        assert!(!is_public("/"));
        assert!(!is_public("/-/reload"));
    }
}
