//! TLS for every kind that speaks it (`http`, `tcp`, `smtp`): the `tls:`
//! block they share, the rustls client configuration built from it, the
//! server's certificate as facts (expiry, names, issuer), and handshake
//! failures turned into sentences a person can act on.
//!
//! Why a custom verifier around rustls' WebPKI one: rustls reports
//! `UnknownIssuer` or `NotValidForName` without the certificate it was
//! looking at, and after a failed handshake the certificate is gone. The
//! verifier here sees the certificate when verification fails and words the
//! failure with it (which name it is for, who issued it, when it expired,
//! whether it is self-signed). The same verifier implements `verify: false`
//! (accept any chain, still check the handshake signatures).
//!
//! Trust: the system's roots (read once per process with
//! `rustls-native-certs`), or, when `ca_file` is given, only the CAs in that
//! file (the usual meaning of "this service uses our private CA"; it also
//! keeps a public CA from vouching for a private service).
//!
//! The database kinds (`mysql`, `postgres`), whose drivers run the handshake
//! themselves, take the pieces that are not about the `tls:` block from here
//! too: the crypto provider, the system's roots, the start of a client
//! configuration, the `verify: false` verifier and [`find_rustls_error`].
//! `support::database::tls` keeps only their block's wording.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, ConfigBuilder, DigitallySignedStruct, OtherError,
    RootCertStore, WantsVerifier,
};
use schemars::JsonSchema;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;

use super::net::{Failure, secs};
use crate::checks::{Family, FieldError, Reason, Sample};

/// `healthprobe_tls_cert_not_after_timestamp_seconds`: shared by every kind
/// that speaks TLS.
pub static CERT_NOT_AFTER: Family = Family::gauge(
    "healthprobe_tls_cert_not_after_timestamp_seconds",
    "Expiry (notAfter) of the server's certificate seen by the last run, as a Unix timestamp",
);

/// The `tls:` block of network kinds.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsOptions {
    /// Verify the server's certificate: chain to a trusted CA, validity dates
    /// and name (default `true`). With `false` any certificate is accepted;
    /// its expiry is still read (and `cert_min_days` still applies).
    #[serde(default = "yes")]
    pub verify: bool,
    /// A PEM file of CA certificates to trust instead of the system's roots
    /// (for a private CA). Relative paths are relative to the pack file.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// The name to send (SNI) and to verify the certificate against, when it
    /// differs from the host connected to (e.g. connecting to `127.0.0.1` for
    /// a certificate issued to `invoices.example.com`).
    #[serde(default)]
    pub server_name: Option<String>,
}

fn yes() -> bool {
    true
}

impl Default for TlsOptions {
    fn default() -> TlsOptions {
        TlsOptions {
            verify: true,
            ca_file: None,
            server_name: None,
        }
    }
}

/// The crypto provider (ring), shared by every TLS client of the process.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    static P: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// Makes sure rustls has its process-wide crypto provider (the same ring
/// provider): the MySQL driver builds its TLS config with rustls' default
/// builder. The binary installs it at start; this covers tests and library
/// use.
pub fn ensure_default_provider() {
    let _ = (*provider()).clone().install_default();
}

/// The start of every client configuration: the shared provider and its safe
/// default protocol versions (TLS 1.2 and 1.3).
pub(crate) fn client_config_builder()
-> Result<ConfigBuilder<ClientConfig, WantsVerifier>, rustls::Error> {
    ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()
}

/// The system's trust store, read once per process with
/// `rustls-native-certs` (it reads files: the first call blocks).
pub(crate) struct SystemRoots {
    /// The certificates as found, for drivers that take DER certificates
    /// rather than a rustls store (the database kinds).
    pub(crate) certs: Vec<CertificateDer<'static>>,
    /// The usable ones, or why there are none.
    store: Result<Arc<RootCertStore>, String>,
}

pub(crate) fn system_roots() -> &'static SystemRoots {
    static ROOTS: OnceLock<SystemRoots> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        let mut store = RootCertStore::empty();
        let (added, _) = store.add_parsable_certificates(found.certs.iter().cloned());
        let store = if added == 0 {
            let why = found
                .errors
                .first()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default();
            Err(format!(
                "this host has no trusted root certificates{why}: install the \
                 `ca-certificates` package, or set tls.ca_file"
            ))
        } else {
            Ok(Arc::new(store))
        };
        SystemRoots {
            certs: found.certs,
            store,
        }
    })
}

/// Reads every certificate of a PEM file.
pub fn read_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{} is not a PEM certificate file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{} holds no certificate (expected `-----BEGIN CERTIFICATE-----` blocks)",
            path.display()
        ));
    }
    Ok(certs)
}

/// How the server's chain is judged.
#[derive(Debug)]
enum Trust {
    /// Chain and name verified against these roots.
    Roots {
        verifier: Arc<WebPkiServerVerifier>,
        /// "the system's trusted roots", "the CA file ca.pem": for messages.
        what: String,
    },
    /// Verification asked for, but there is nothing to trust (no system
    /// roots): every handshake fails with this message.
    Nothing(String),
    /// `verify: false`.
    Off,
}

/// A prepared TLS client: built once per check from its `tls:` block.
#[derive(Clone)]
pub struct TlsClient {
    config: Arc<ClientConfig>,
    server_name: Option<ServerName<'static>>,
}

impl fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClient")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl TlsClient {
    /// Builds the client for `opts`, offering `alpn` protocols (e.g.
    /// `http/1.1`). `path` is the block's field path for errors (`tls`);
    /// `pack_dir` resolves a relative `ca_file`.
    pub fn build(
        opts: &TlsOptions,
        pack_dir: Option<&Path>,
        alpn: &[&[u8]],
        path: &str,
    ) -> Result<TlsClient, Vec<FieldError>> {
        let mut errors = Vec::new();
        let server_name = match &opts.server_name {
            None => None,
            Some(n) => match ServerName::try_from(n.clone()) {
                Ok(s) => Some(s),
                Err(_) => {
                    errors.push(FieldError::new(
                        format!("{path}.server_name"),
                        format!("`{n}` is not a valid DNS name or IP address"),
                    ));
                    None
                }
            },
        };
        let trust = if !opts.verify {
            Trust::Off
        } else if let Some(file) = &opts.ca_file {
            let p = resolve_path(file, pack_dir);
            match read_pem_certs(&p) {
                Err(e) => {
                    errors.push(FieldError::new(format!("{path}.ca_file"), e));
                    Trust::Off
                }
                Ok(certs) => {
                    let mut store = RootCertStore::empty();
                    let mut bad = None;
                    for c in certs {
                        if let Err(e) = store.add(c) {
                            bad = Some(e);
                        }
                    }
                    match (bad, store.is_empty()) {
                        (Some(e), _) => {
                            errors.push(FieldError::new(
                                format!("{path}.ca_file"),
                                format!(
                                    "{}: a certificate cannot be used as a CA: {e}",
                                    p.display()
                                ),
                            ));
                            Trust::Off
                        }
                        _ => roots_trust(store.into(), format!("the CA file {}", p.display())),
                    }
                }
            }
        } else {
            match &system_roots().store {
                Ok(roots) => roots_trust(roots.clone(), "the system's trusted roots".into()),
                Err(e) => Trust::Nothing(e.clone()),
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        let verifier = Verifier {
            trust,
            provider: provider(),
        };
        let mut config = client_config_builder()
            .map_err(|e| vec![FieldError::new(path, format!("TLS set-up failed: {e}"))])?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(TlsClient {
            config: Arc::new(config),
            server_name,
        })
    }

    /// The rustls configuration, for kinds whose library does the handshake.
    pub fn config(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }

    /// The name to present and verify for `host`: `server_name` if set.
    pub fn server_name_for(&self, host: &str) -> Result<ServerName<'static>, String> {
        if let Some(n) = &self.server_name {
            return Ok(n.clone());
        }
        ServerName::try_from(host.to_string())
            .map_err(|_| format!("`{host}` cannot be used as a TLS server name"))
    }

    /// Runs the TLS handshake over `io` (a fresh TCP connection, or one after
    /// STARTTLS) for `host`, until `deadline`.
    pub async fn handshake<S>(
        &self,
        io: S,
        host: &str,
        peer: SocketAddr,
        deadline: Instant,
    ) -> Result<TlsStream<S>, Failure>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let name = self
            .server_name_for(host)
            .map_err(|e| Failure::new(Reason::TlsError, e))?;
        let connector = tokio_rustls::TlsConnector::from(self.config.clone());
        let started = Instant::now();
        match tokio::time::timeout_at(deadline, connector.connect(name, io)).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => Err(handshake_failure(&e, peer)),
            Err(_) => Err(Failure::new(
                Reason::Timeout,
                format!(
                    "no TLS handshake with {peer} within {} after connecting",
                    secs(started.elapsed())
                ),
            )),
        }
    }
}

fn roots_trust(roots: Arc<RootCertStore>, what: String) -> Trust {
    match WebPkiServerVerifier::builder_with_provider(roots, provider()).build() {
        Ok(verifier) => Trust::Roots { verifier, what },
        Err(e) => Trust::Nothing(format!("cannot use {what}: {e}")),
    }
}

fn resolve_path(file: &str, pack_dir: Option<&Path>) -> PathBuf {
    let p = PathBuf::from(file);
    match pack_dir {
        Some(d) if p.is_relative() => d.join(p),
        _ => p,
    }
}

/// The server's leaf certificate after a handshake.
pub fn peer_cert<S>(stream: &TlsStream<S>) -> Option<CertInfo> {
    let (_, conn) = stream.get_ref();
    conn.peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| CertInfo::from_der(c))
}

/// Facts about a certificate, read with `x509-parser`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// `CN=localhost` style.
    pub subject: String,
    pub issuer: String,
    /// Unix timestamps.
    pub not_before: i64,
    pub not_after: i64,
    /// DNS names and IP addresses of the subjectAltName extension.
    pub names: Vec<String>,
    /// Subject and issuer are the same name.
    pub self_signed: bool,
}

impl CertInfo {
    pub fn from_der(der: &[u8]) -> Option<CertInfo> {
        use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let mut names = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for n in &san.value.general_names {
                match n {
                    GeneralName::DNSName(d) => names.push(d.to_string()),
                    GeneralName::IPAddress(b) => {
                        if let Ok(a) = <[u8; 4]>::try_from(*b) {
                            names.push(std::net::Ipv4Addr::from(a).to_string());
                        } else if let Ok(a) = <[u8; 16]>::try_from(*b) {
                            names.push(std::net::Ipv6Addr::from(a).to_string());
                        }
                    }
                    _ => {}
                }
            }
        }
        Some(CertInfo {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            names,
            self_signed: cert.subject().as_raw() == cert.issuer().as_raw(),
        })
    }

    /// Days until `not_after` (negative once expired).
    pub fn days_left(&self, now: SystemTime) -> f64 {
        (self.not_after - unix(now)) as f64 / 86_400.0
    }

    /// The subject, or its names when the subject is empty.
    pub fn label(&self) -> String {
        if self.subject.is_empty() {
            self.names.join(", ")
        } else {
            self.subject.clone()
        }
    }

    /// One line for observations.
    pub fn summary(&self) -> String {
        format!(
            "certificate {} (names: {}), issued by {}, valid until {} ({:.0} days left)",
            self.label(),
            if self.names.is_empty() {
                "none".to_string()
            } else {
                self.names.join(", ")
            },
            self.issuer,
            date(self.not_after),
            self.days_left(SystemTime::now())
        )
    }

    /// The `healthprobe_tls_cert_not_after_timestamp_seconds` sample.
    pub fn sample(&self) -> Sample {
        Sample {
            family: &CERT_NOT_AFTER,
            labels: Vec::new(),
            value: self.not_after as f64,
        }
    }

    /// For `cert_min_days`: a message when the certificate expires within
    /// `min_days` (or already has), else `None`.
    pub fn expiry_violation(&self, min_days: u32, now: SystemTime) -> Option<String> {
        let left = self.days_left(now);
        if left >= f64::from(min_days) {
            return None;
        }
        Some(if left < 0.0 {
            format!(
                "TLS certificate {} expired on {} ({:.0} days ago), expected at least {min_days} days left (cert_min_days)",
                self.label(),
                date(self.not_after),
                -left
            )
        } else {
            format!(
                "TLS certificate {} expires on {}, in {:.0} days, expected at least {min_days} days (cert_min_days)",
                self.label(),
                date(self.not_after),
                left.floor()
            )
        })
    }
}

fn unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// A Unix timestamp as `2020-02-01T00:00:00Z`.
pub fn date(ts: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(ts.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A verification failure worded with the certificate at hand; travels inside
/// `rustls::Error` (as `CertificateError::Other`) out of the handshake.
#[derive(Debug)]
struct VerifyError {
    message: String,
    cert: Option<CertInfo>,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for VerifyError {}

#[derive(Debug)]
struct Verifier {
    trust: Trust,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let (verifier, what) = match &self.trust {
            Trust::Off => return Ok(ServerCertVerified::assertion()),
            Trust::Nothing(msg) => return Err(other(msg.clone(), CertInfo::from_der(end_entity))),
            Trust::Roots { verifier, what } => (verifier, what),
        };
        verifier
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map_err(|e| match e {
                rustls::Error::InvalidCertificate(ce) => {
                    let cert = CertInfo::from_der(end_entity);
                    let message = explain(&ce, cert.as_ref(), server_name, what, now);
                    other(message, cert)
                }
                e => e,
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The verifier of `verify: false`, for kinds whose driver takes a rustls
/// configuration: encrypt, but accept any certificate (the signatures of the
/// handshake are still checked).
pub(crate) fn accept_any_certificate() -> Arc<dyn ServerCertVerifier> {
    Arc::new(Verifier {
        trust: Trust::Off,
        provider: provider(),
    })
}

fn other(message: String, cert: Option<CertInfo>) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(VerifyError {
        message,
        cert,
    }))))
}

fn name_str(n: &ServerName<'_>) -> String {
    match n {
        ServerName::DnsName(d) => d.as_ref().to_string(),
        ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        _ => format!("{n:?}"),
    }
}

/// Words a certificate rejection. `trusted` says what was trusted ("the
/// system's trusted roots").
fn explain(
    e: &CertificateError,
    cert: Option<&CertInfo>,
    server_name: &ServerName<'_>,
    trusted: &str,
    now: UnixTime,
) -> String {
    let name = name_str(server_name);
    let label = cert.map_or_else(String::new, |c| format!(" ({})", c.label()));
    let now_ts = now.as_secs() as i64;
    match e {
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            let not_after = match (e, cert) {
                (CertificateError::ExpiredContext { not_after, .. }, _) => {
                    Some(not_after.as_secs() as i64)
                }
                (_, Some(c)) => Some(c.not_after),
                _ => None,
            };
            match not_after {
                Some(t) => format!(
                    "TLS certificate of `{name}`{label} expired on {} ({} days ago): renew it",
                    date(t),
                    (now_ts - t) / 86_400
                ),
                None => format!("TLS certificate of `{name}`{label} has expired: renew it"),
            }
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            let from = cert.map_or_else(|| "later".to_string(), |c| date(c.not_before));
            format!(
                "TLS certificate of `{name}`{label} is not valid yet (valid from {from}): check this host's clock"
            )
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            // Our own reading of the names first: rustls words them as
            // `DnsName("...")`.
            let presented = match (e, cert) {
                (_, Some(c)) if !c.names.is_empty() => c.names.join(", "),
                (CertificateError::NotValidForNameContext { presented, .. }, _)
                    if !presented.is_empty() =>
                {
                    presented.join(", ")
                }
                (_, Some(c)) => c.label(),
                _ => "other names".to_string(),
            };
            format!(
                "TLS certificate name mismatch: the certificate is for {presented}, not for `{name}`; \
                 connect by one of its names, or set tls.server_name"
            )
        }
        // A self-signed leaf fails path building in several ways (unknown
        // issuer, or a signature check against a root of the same name):
        // all of them mean "self-signed" to a person.
        _ if cert.is_some_and(|c| c.self_signed) => format!(
            "TLS certificate of `{name}`{label} is self-signed, so not trusted by {trusted}: \
             trust it with tls.ca_file, or set tls.verify: false"
        ),
        CertificateError::UnknownIssuer => match cert {
            Some(c) => format!(
                "TLS certificate of `{name}`{label} is signed by an unknown authority \
                 (issuer {}), not trusted by {trusted}: set tls.ca_file to that CA's certificate, \
                 or make the server send its intermediate certificates",
                c.issuer
            ),
            None => format!(
                "TLS certificate of `{name}` is signed by an unknown authority, not trusted by {trusted}"
            ),
        },
        CertificateError::BadSignature => {
            format!("TLS certificate of `{name}`{label} has an invalid signature")
        }
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            format!(
                "TLS certificate of `{name}`{label} is not valid for a server (extended key usage)"
            )
        }
        CertificateError::Revoked => format!("TLS certificate of `{name}`{label} is revoked"),
        other => format!("TLS certificate of `{name}`{label} was rejected: {other:?}"),
    }
}

/// Turns a failed handshake into a [`Failure`] (`tls_error`, or the I/O
/// reason when the connection itself broke).
pub fn handshake_failure(e: &std::io::Error, peer: SocketAddr) -> Failure {
    if let Some(re) = find_rustls_error(e) {
        if let rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(o))) = re
            && let Some(v) = o.downcast_ref::<VerifyError>()
        {
            return Failure {
                reason: Reason::TlsError,
                message: v.message.clone(),
                cert: v.cert.clone().map(Box::new),
            };
        }
        return Failure::new(Reason::TlsError, describe_error(re, peer));
    }
    use std::io::ErrorKind as K;
    match e.kind() {
        K::UnexpectedEof | K::ConnectionReset | K::BrokenPipe | K::ConnectionAborted => {
            Failure::new(
                Reason::TlsError,
                format!(
                    "{peer} closed the connection during the TLS handshake (is TLS served on this port?)"
                ),
            )
        }
        _ => Failure::new(
            Reason::from_io(e),
            format!("TLS handshake with {peer} failed: {e}"),
        ),
    }
}

/// The rustls error somewhere in `err`'s chain (also inside an `io::Error`,
/// where tokio-rustls and the database drivers put it).
pub fn find_rustls_error<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(r) = inner.downcast_ref::<rustls::Error>()
        {
            return Some(r);
        }
        cur = e.source();
    }
    None
}

/// Words a rustls error seen during a handshake with `peer`.
pub fn describe_error(e: &rustls::Error, peer: SocketAddr) -> String {
    use rustls::{AlertDescription as A, Error as E};
    match e {
        E::InvalidMessage(m) => format!(
            "{peer} does not speak TLS: its answer is not a TLS handshake ({m:?}); is this a plain-text port?"
        ),
        E::AlertReceived(A::HandshakeFailure) | E::AlertReceived(A::InsufficientSecurity) => {
            format!(
                "{peer} refused the TLS handshake (alert {:?}): no protocol version or cipher in common",
                match e {
                    E::AlertReceived(a) => *a,
                    _ => A::HandshakeFailure,
                }
            )
        }
        E::AlertReceived(A::ProtocolVersion) => {
            format!("{peer} refused the TLS handshake: it supports neither TLS 1.2 nor TLS 1.3")
        }
        E::AlertReceived(A::UnrecognisedName) => format!(
            "{peer} refused the TLS handshake: it does not serve the requested name (SNI); set tls.server_name"
        ),
        E::AlertReceived(a) => format!("{peer} refused the TLS handshake (alert {a:?})"),
        E::PeerIncompatible(p) => format!("{peer} has an incompatible TLS configuration: {p:?}"),
        E::PeerMisbehaved(p) => format!("{peer} broke the TLS protocol: {p:?}"),
        E::NoCertificatesPresented => format!("{peer} presented no TLS certificate"),
        E::InvalidCertificate(ce) => format!("the TLS certificate of {peer} was rejected: {ce:?}"),
        other => format!("TLS handshake with {peer} failed: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_defaults_to_true() {
        assert!(TlsOptions::default().verify);
        let node = crate::config::yaml::parse("{ca_file: x.pem}")
            .unwrap()
            .unwrap();
        let o: TlsOptions =
            crate::config::yaml::from_node(&node, "tls", &|s: &str| Ok::<_, String>(s.to_string()))
                .unwrap();
        assert!(o.verify);
    }

    #[test]
    fn bad_fields_are_named() {
        let opts = TlsOptions {
            verify: true,
            ca_file: Some("/nonexistent/ca.pem".into()),
            server_name: Some("bad name!".into()),
        };
        let errs = TlsClient::build(&opts, None, &[], "tls").unwrap_err();
        let paths: Vec<_> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["tls.server_name", "tls.ca_file"]);
        assert!(errs[1].message.contains("/nonexistent/ca.pem"));
    }

    #[test]
    fn ca_file_without_certificates_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("empty.pem");
        std::fs::write(&p, "not a certificate\n").unwrap();
        let opts = TlsOptions {
            ca_file: Some("empty.pem".into()),
            ..TlsOptions::default()
        };
        let errs = TlsClient::build(&opts, Some(dir.path()), &[], "tls").unwrap_err();
        assert!(errs[0].message.contains("holds no certificate"), "{errs:?}");
    }

    #[test]
    fn handshake_failure_finds_the_rustls_error_inside_io() {
        let peer: SocketAddr = "127.0.0.1:443".parse().unwrap();
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::NoCertificatesPresented,
        );
        let f = handshake_failure(&io, peer);
        assert_eq!(f.reason, Reason::TlsError);
        assert_eq!(f.message, "127.0.0.1:443 presented no TLS certificate");
        let eof = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
        assert!(find_rustls_error(&eof).is_none());
        let f = handshake_failure(&eof, peer);
        assert_eq!(f.reason, Reason::TlsError);
        assert!(
            f.message
                .contains("closed the connection during the TLS handshake")
        );
    }

    #[test]
    fn expiry_wording() {
        let now = SystemTime::now();
        let c = CertInfo {
            subject: "CN=x".into(),
            issuer: "CN=ca".into(),
            not_before: 0,
            not_after: unix(now) + 10 * 86_400 + 60,
            names: vec!["x".into()],
            self_signed: false,
        };
        assert_eq!(c.expiry_violation(10, now), None);
        let m = c.expiry_violation(30, now).unwrap();
        assert!(m.contains("in 10 days, expected at least 30 days"), "{m}");
        let old = CertInfo {
            not_after: 1_580_515_200,
            ..c
        };
        let m = old.expiry_violation(1, now).unwrap();
        assert!(m.contains("expired on 2020-02-01T00:00:00Z"), "{m}");
    }
}
