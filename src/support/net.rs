//! Connections for the network kinds (`http`, `tcp`, and later `smtp`): name
//! resolution with an address-family preference, connecting under a deadline,
//! the optional TLS handshake, each phase timed, and every failure worded once
//! with its bounded [`Reason`].
//!
//! Why not `TcpStream::connect(host)`: it hides which phase failed or was slow
//! (a check must say "could not resolve" apart from "refused" apart from "no
//! answer within 2s"), it tries addresses in the resolver's order (IPv6 first
//! on many hosts, which fails where only IPv4 is served), and it has no
//! deadline.
//!
//! Two special names are answered here without asking the resolver, as
//! RFC 6761 asks of name-resolution libraries (and as curl and browsers do):
//! `localhost` (and `*.localhost`) is both `127.0.0.1` and `::1` even when
//! `/etc/hosts` lists only one of them, so a service bound on `[::1]` only is
//! found; `*.invalid` never exists, so it fails at once without a query.

use std::fmt::Write as _;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::tls::{CertInfo, TlsClient};
use crate::checks::{Outcome, Reason};

/// Which addresses of a name to try, and in which order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IpFamily {
    /// IPv4 addresses first, then IPv6 ones if every IPv4 attempt failed.
    #[default]
    Ipv4First,
    /// IPv6 addresses first, then IPv4 ones.
    Ipv6First,
    /// Only IPv4 addresses.
    Ipv4Only,
    /// Only IPv6 addresses.
    Ipv6Only,
}

impl IpFamily {
    fn as_str(self) -> &'static str {
        match self {
            IpFamily::Ipv4First => "ipv4_first",
            IpFamily::Ipv6First => "ipv6_first",
            IpFamily::Ipv4Only => "ipv4_only",
            IpFamily::Ipv6Only => "ipv6_only",
        }
    }

    /// Orders (and for the `_only` variants filters) resolved addresses,
    /// keeping the resolver's order within a family.
    pub fn arrange(self, addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
        let (v4, v6): (Vec<_>, Vec<_>) = addrs.into_iter().partition(SocketAddr::is_ipv4);
        match self {
            IpFamily::Ipv4First => v4.into_iter().chain(v6).collect(),
            IpFamily::Ipv6First => v6.into_iter().chain(v4).collect(),
            IpFamily::Ipv4Only => v4,
            IpFamily::Ipv6Only => v6,
        }
    }
}

/// A failed network step: the bounded reason, the sentence for a person and,
/// when the TLS handshake got that far, the server's certificate.
#[derive(Clone, Debug)]
pub struct Failure {
    pub reason: Reason,
    pub message: String,
    pub cert: Option<Box<CertInfo>>,
}

impl Failure {
    pub fn new(reason: Reason, message: impl Into<String>) -> Failure {
        Failure {
            reason,
            message: message.into(),
            cert: None,
        }
    }

    /// The failure as a check result.
    pub fn into_outcome(self) -> Outcome {
        Outcome::fail(self.reason, self.message)
    }
}

/// The deadline a check works to: a little before the runner's hard stop, so
/// the check reports which step ran out of time instead of being cut off with
/// a generic "no result within the timeout".
pub fn soft_deadline(deadline: Instant) -> Instant {
    let left = deadline.saturating_duration_since(Instant::now());
    deadline - (left / 20).min(Duration::from_millis(200))
}

/// Formats a duration for messages: `4.8s`, `12ms`, `0.3ms`.
pub fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 10.0 {
        format!("{s:.0}s")
    } else if s >= 1.0 {
        format!("{s:.1}s")
    } else if s >= 0.001 {
        format!("{:.0}ms", s * 1000.0)
    } else {
        format!("{:.1}ms", s * 1000.0)
    }
}

/// What the peer sent, made printable for a message: at most `max` bytes,
/// invalid UTF-8 replaced, control characters escaped (`\r\n` shown as such).
pub fn excerpt(bytes: &[u8], max: usize) -> String {
    let cut = &bytes[..bytes.len().min(max)];
    let text = String::from_utf8_lossy(cut);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '`' => out.push('\''),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    if bytes.len() > max {
        out.push('…');
    }
    out
}

/// The whole cause chain of an error, `outer: inner: innermost`, without
/// repeating a cause that the outer message already contains.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}

/// Timings and notes of one run, shared by the steps of a network check.
/// Phases with the same name add up (an HTTP check following redirects
/// connects several times); notes are kept only when the run is in debug.
#[derive(Debug, Default)]
pub struct Trace {
    phases: Vec<(&'static str, Duration)>,
    notes: Option<Vec<String>>,
}

impl Trace {
    /// A trace that keeps notes only when `debug`.
    pub fn new(debug: bool) -> Trace {
        Trace {
            phases: Vec::new(),
            notes: debug.then(Vec::new),
        }
    }

    /// Adds `d` to the phase `name`.
    pub fn phase(&mut self, name: &'static str, d: Duration) {
        match self.phases.iter_mut().find(|(n, _)| *n == name) {
            Some((_, total)) => *total += d,
            None => self.phases.push((name, d)),
        }
    }

    /// Total time recorded for `name` (zero when the phase was not reached).
    pub fn get(&self, name: &str) -> Duration {
        self.phases
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(Duration::ZERO, |(_, d)| *d)
    }

    /// Records a note (the closure runs only in debug).
    pub fn note(&mut self, f: impl FnOnce() -> String) {
        if let Some(notes) = &mut self.notes {
            notes.push(f());
        }
    }

    /// Records several notes, one line each (the closure runs only in debug).
    pub fn notes(&mut self, f: impl FnOnce() -> Vec<String>) {
        if let Some(notes) = &mut self.notes {
            notes.extend(f());
        }
    }

    /// The notes, for [`Outcome::with_observations`].
    pub fn take_notes(&mut self) -> Vec<String> {
        self.notes.as_mut().map(std::mem::take).unwrap_or_default()
    }
}

/// Splits `host:port` (`[v6]:port` for IPv6 literals).
pub fn split_host_port(address: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        let (h, p) = rest.split_once("]:").ok_or_else(|| {
            format!("`{address}` is not `[IPv6]:port` (write for example `[::1]:25`)")
        })?;
        (h, p)
    } else {
        address
            .rsplit_once(':')
            .ok_or_else(|| format!("`{address}` has no port: write `host:port`"))?
    };
    if host.is_empty() {
        return Err(format!("`{address}` has no host: write `host:port`"));
    }
    if host.contains(':') && !address.starts_with('[') {
        return Err(format!(
            "`{address}`: put an IPv6 address in brackets, `[{host}]:{port}`"
        ));
    }
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("`{port}` is not a port number (1-65535)"))?;
    Ok((host.to_string(), port))
}

/// `host` and `port` as one would write them in a URL (`[::1]:80`).
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn is_localhost(host: &str) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    h == "localhost" || h.ends_with(".localhost")
}

fn is_invalid_tld(host: &str) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    h == "invalid" || h.ends_with(".invalid")
}

/// Resolves `host` (a name or an IP literal, without brackets) to the
/// addresses to try, in the order `family` asks for.
pub async fn resolve(
    host: &str,
    port: u16,
    family: IpFamily,
    deadline: Instant,
) -> Result<Vec<SocketAddr>, Failure> {
    let found: Vec<SocketAddr> = if let Ok(ip) = host.parse::<IpAddr>() {
        vec![SocketAddr::new(ip, port)]
    } else if is_localhost(host) {
        vec![
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port),
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), port),
        ]
    } else if is_invalid_tld(host) {
        return Err(Failure::new(
            Reason::DnsError,
            format!("cannot resolve `{host}`: names under `.invalid` never exist (RFC 6761)"),
        ));
    } else {
        let started = Instant::now();
        match tokio::time::timeout_at(deadline, tokio::net::lookup_host((host, port))).await {
            Err(_) => {
                return Err(Failure::new(
                    Reason::Timeout,
                    format!(
                        "no answer from the resolver for `{host}` within {}",
                        secs(started.elapsed())
                    ),
                ));
            }
            Ok(Err(e)) => {
                return Err(Failure::new(
                    Reason::DnsError,
                    format!("cannot resolve `{host}`: {e}"),
                ));
            }
            Ok(Ok(addrs)) => {
                let mut v: Vec<SocketAddr> = Vec::new();
                for a in addrs {
                    if !v.contains(&a) {
                        v.push(a);
                    }
                }
                v
            }
        }
    };
    let arranged = family.arrange(found);
    if arranged.is_empty() {
        let which = if family == IpFamily::Ipv4Only {
            "IPv4"
        } else {
            "IPv6"
        };
        return Err(Failure::new(
            Reason::DnsError,
            format!(
                "`{host}` has no {which} address (ip_family: {})",
                family.as_str()
            ),
        ));
    }
    Ok(arranged)
}

/// Why one address could not be reached.
fn connect_error(addr: SocketAddr, e: &io::Error) -> (Reason, String) {
    use io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused => (
            Reason::ConnectionRefused,
            format!("{addr} refused the connection"),
        ),
        K::HostUnreachable | K::NetworkUnreachable | K::AddrNotAvailable => (
            Reason::ConnectionRefused,
            format!("{addr} is unreachable ({e})"),
        ),
        K::TimedOut => (Reason::Timeout, format!("{addr} did not answer ({e})")),
        _ => (Reason::from_io(e), format!("cannot connect to {addr}: {e}")),
    }
}

/// Connects to the first address that answers, in order. Each attempt gets
/// an equal share of the time left (so a silent IPv4 address still leaves
/// time for the IPv6 fallback); the last one gets all of it.
pub async fn connect(
    addrs: &[SocketAddr],
    deadline: Instant,
) -> Result<(TcpStream, SocketAddr), Failure> {
    let mut errors: Vec<(Reason, String)> = Vec::new();
    for (i, &addr) in addrs.iter().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        let share = left / (addrs.len() - i) as u32;
        let started = Instant::now();
        match tokio::time::timeout(share, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok((stream, addr));
            }
            Ok(Err(e)) => errors.push(connect_error(addr, &e)),
            Err(_) => errors.push((
                Reason::Timeout,
                format!(
                    "no TCP connection to {addr} within {}",
                    secs(started.elapsed())
                ),
            )),
        }
    }
    let reason = if errors.iter().all(|(r, _)| *r == errors[0].0) {
        errors[0].0
    } else {
        // Mixed: the preferred (first) address decides.
        errors.first().map_or(Reason::InternalError, |e| e.0)
    };
    let mut message = errors
        .into_iter()
        .map(|(_, m)| m)
        .collect::<Vec<_>>()
        .join("; then ");
    if reason == Reason::ConnectionRefused && message.ends_with("refused the connection") {
        message.push_str(" (is the service running, and listening on that address?)");
    }
    Err(Failure::new(reason, message))
}

/// A connection, plain or TLS.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Where to connect, and how.
pub struct Target<'a> {
    /// A name or an IP literal (without brackets).
    pub host: &'a str,
    pub port: u16,
    pub family: IpFamily,
    /// Speak TLS after connecting.
    pub tls: Option<&'a TlsClient>,
}

/// An established connection.
pub struct Connection {
    pub stream: Stream,
    pub peer: SocketAddr,
    /// The server's leaf certificate, after a TLS handshake.
    pub cert: Option<CertInfo>,
}

/// Resolves, connects and (when asked) completes the TLS handshake, recording
/// the phases `resolve`, `connect` and `tls` in `trace`.
pub async fn dial(
    target: &Target<'_>,
    trace: &mut Trace,
    deadline: Instant,
) -> Result<Connection, Failure> {
    let t = Instant::now();
    let addrs = resolve(target.host, target.port, target.family, deadline).await;
    trace.phase("resolve", t.elapsed());
    let addrs = addrs?;
    trace.note(|| {
        let list: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
        format!(
            "resolved {} to {} in {}",
            target.host,
            list.join(", "),
            secs(t.elapsed())
        )
    });

    let t = Instant::now();
    let connected = connect(&addrs, deadline).await;
    trace.phase("connect", t.elapsed());
    let (tcp, peer) = connected.map_err(|mut f| {
        // Name the target when it is a name: the addresses alone may not
        // tell a person which service this was.
        if target.host.parse::<IpAddr>().is_err() {
            f.message = format!(
                "cannot connect to {}: {}",
                host_port(target.host, target.port),
                f.message
            );
        }
        f
    })?;
    trace.note(|| format!("connected to {peer} in {}", secs(t.elapsed())));

    let Some(tls) = target.tls else {
        return Ok(Connection {
            stream: Stream::Plain(tcp),
            peer,
            cert: None,
        });
    };
    let t = Instant::now();
    let shaken = tls.handshake(tcp, target.host, peer, deadline).await;
    trace.phase("tls", t.elapsed());
    let stream = shaken.inspect_err(|f| trace.note(|| f.message.clone()))?;
    let cert = super::tls::peer_cert(&stream);
    trace.note(|| {
        let (_, conn) = stream.get_ref();
        let mut s = format!(
            "TLS handshake in {}: {:?}, {:?}",
            secs(t.elapsed()),
            conn.protocol_version(),
            conn.negotiated_cipher_suite().map(|c| c.suite())
        );
        if let Some(c) = &cert {
            let _ = write!(s, "; {}", c.summary());
        }
        s.replace("Some(", "").replace(')', "")
    });
    Ok(Connection {
        stream: Stream::Tls(Box::new(stream)),
        peer,
        cert,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn family_order() {
        let addrs = vec![sa("[::1]:80"), sa("127.0.0.1:80"), sa("10.0.0.1:80")];
        assert_eq!(
            IpFamily::Ipv4First.arrange(addrs.clone()),
            vec![sa("127.0.0.1:80"), sa("10.0.0.1:80"), sa("[::1]:80")]
        );
        assert_eq!(
            IpFamily::Ipv6First.arrange(addrs.clone())[0],
            sa("[::1]:80")
        );
        assert_eq!(
            IpFamily::Ipv6Only.arrange(addrs.clone()),
            vec![sa("[::1]:80")]
        );
        assert_eq!(IpFamily::Ipv4Only.arrange(addrs).len(), 2);
    }

    #[test]
    fn host_port_parsing() {
        assert_eq!(
            split_host_port("db.local:5432").unwrap(),
            ("db.local".into(), 5432)
        );
        assert_eq!(split_host_port("[::1]:25").unwrap(), ("::1".into(), 25));
        assert!(split_host_port("db.local").unwrap_err().contains("no port"));
        assert!(split_host_port("::1:25").unwrap_err().contains("brackets"));
        assert!(split_host_port("h:0").unwrap_err().contains("not a port"));
        assert!(split_host_port(":80").unwrap_err().contains("no host"));
        assert_eq!(host_port("::1", 8), "[::1]:8");
    }

    #[test]
    fn excerpts_are_printable() {
        assert_eq!(excerpt(b"HTTP/1.1\r\n\x01ab", 64), "HTTP/1.1\\r\\n\\x01ab");
        assert_eq!(excerpt(b"abcdef", 3), "abc…");
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(secs(Duration::from_millis(4800)), "4.8s");
        assert_eq!(secs(Duration::from_millis(12)), "12ms");
        assert_eq!(secs(Duration::from_micros(300)), "0.3ms");
    }

    #[tokio::test]
    async fn special_names_need_no_resolver() {
        let deadline = Instant::now() + Duration::from_secs(2);
        let local = resolve("localhost", 80, IpFamily::Ipv4First, deadline)
            .await
            .unwrap();
        assert_eq!(local, vec![sa("127.0.0.1:80"), sa("[::1]:80")]);
        let only6 = resolve("localhost", 80, IpFamily::Ipv6Only, deadline)
            .await
            .unwrap();
        assert_eq!(only6, vec![sa("[::1]:80")]);
        let err = resolve("nonexistent.invalid", 80, IpFamily::Ipv4First, deadline)
            .await
            .unwrap_err();
        assert_eq!(err.reason, Reason::DnsError);
        assert!(
            err.message.contains("nonexistent.invalid"),
            "{}",
            err.message
        );
        let err = resolve("127.0.0.1", 80, IpFamily::Ipv6Only, deadline)
            .await
            .unwrap_err();
        assert!(err.message.contains("no IPv6 address"), "{}", err.message);
    }

    #[tokio::test]
    async fn refused_then_fallback() {
        // A port nothing listens on, then one that listens.
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead_addr = dead.local_addr().unwrap();
        drop(dead);
        let live = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let live_addr = live.local_addr().unwrap();
        let deadline = Instant::now() + Duration::from_secs(2);
        let (_, peer) = connect(&[dead_addr, live_addr], deadline).await.unwrap();
        assert_eq!(peer, live_addr);
        let err = connect(&[dead_addr], deadline).await.unwrap_err();
        assert_eq!(err.reason, Reason::ConnectionRefused);
        assert!(err.message.contains("refused"), "{}", err.message);
    }
}
