//! The `tcp` kind: connect to `host:port` (optionally TLS right away, as on
//! 443, 465, 993), optionally send a few bytes and wait for an answer that
//! matches a regular expression. The measured value is the TCP connect time.
//!
//! Resolution, connecting, TLS and their messages are shared with the `http`
//! kind ([`crate::support::net`], [`crate::support::tls`]). Reading stops at
//! the first match, at `max_read_bytes`, when the server closes, or at the
//! deadline, whichever comes first.

use std::time::SystemTime;

use regex::Regex;
use schemars::JsonSchema;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::bounds::ValueBounds;
use super::{
    BuildContext, Check, Family, FieldError, Outcome, Reason, RunContext, Sample, compile_regex,
};
use crate::support::net::{self, Failure, IpFamily, Target, Trace, excerpt, secs};
use crate::support::tls::{TlsClient, TlsOptions};

/// The phases of `healthprobe_tcp_phase_duration_seconds`, in order.
pub const PHASES: [&str; 4] = ["resolve", "connect", "tls", "exchange"];

static PHASE_DURATION: Family = Family::gauge(
    "healthprobe_tcp_phase_duration_seconds",
    "Duration of each phase of the last TCP check (resolve, connect, tls, exchange = sending and reading until the expected answer)",
);

fn default_max_read() -> u64 {
    64 * 1024
}

/// The `tcp:` block.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TcpSpec {
    /// Where to connect: `host:port`, IPv6 literals in brackets (`[::1]:25`).
    pub address: String,
    /// Start TLS right after connecting, with these options (`tls: {}` for
    /// the defaults). Without it the connection stays plain TCP.
    #[serde(default)]
    pub tls: Option<TlsOptions>,
    /// Which addresses of the host to try, in which order (default
    /// `ipv4_first`: every IPv4 address, then the IPv6 ones).
    #[serde(default)]
    pub ip_family: IpFamily,
    /// Text to send once connected (after the TLS handshake), e.g.
    /// `"PING\r\n"`. Escapes `\r`, `\n`, `\t`, `\0`, `\\` and `\xHH` are
    /// understood even in single-quoted or plain YAML strings.
    #[serde(default)]
    pub send: Option<String>,
    /// Read at most this many bytes while waiting for `expect.matches`
    /// (default 65536).
    #[serde(default = "default_max_read")]
    pub max_read_bytes: u64,
    /// What the connection must look like.
    #[serde(default)]
    pub expect: TcpExpect,
}

/// Expectations on the connection.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TcpExpect {
    /// A regular expression what the server sends must match (e.g. `^220 `
    /// for an SMTP banner, `^\+PONG` for Redis). Reading goes on until it
    /// matches.
    #[serde(default)]
    pub matches: Option<String>,
    /// Bounds on the connect time, in seconds (the measured value).
    #[serde(default)]
    pub value: ValueBounds,
    /// Fail when the server's TLS certificate expires within this many days
    /// (needs `tls`).
    #[serde(default)]
    pub cert_min_days: Option<u32>,
}

/// A prepared `tcp` check.
pub struct TcpCheck {
    host: String,
    port: u16,
    tls: Option<TlsClient>,
    family: IpFamily,
    send: Vec<u8>,
    max_read: usize,
    matches: Option<Regex>,
    value: ValueBounds,
    cert_min_days: Option<u32>,
}

impl Check for TcpCheck {
    type Spec = TcpSpec;

    fn build(spec: &TcpSpec, ctx: &BuildContext) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let hp = net::split_host_port(&spec.address)
            .map_err(|e| errors.push(FieldError::new("address", e)))
            .ok();
        let tls = spec.tls.as_ref().and_then(|t| {
            TlsClient::build(t, ctx.pack_dir.as_deref(), &[], "tls")
                .map_err(|mut e| errors.append(&mut e))
                .ok()
        });
        let send = match &spec.send {
            None => Vec::new(),
            Some(s) => unescape(s)
                .map_err(|e| errors.push(FieldError::new("send", e)))
                .unwrap_or_default(),
        };
        let matches = spec.expect.matches.as_ref().and_then(|m| {
            compile_regex("expect.matches", m)
                .map_err(|e| errors.push(e))
                .ok()
        });
        if spec.expect.matches.is_some() && spec.max_read_bytes == 0 {
            errors.push(FieldError::new(
                "max_read_bytes",
                "is 0, but expect.matches needs to read the answer",
            ));
        }
        errors.extend(spec.expect.value.validate("expect.value"));
        if spec.expect.cert_min_days.is_some() && spec.tls.is_none() {
            errors.push(FieldError::new(
                "expect.cert_min_days",
                "needs `tls:` (a plain TCP connection has no certificate)",
            ));
        }
        match hp {
            Some((host, port)) if errors.is_empty() => Ok(TcpCheck {
                host,
                port,
                tls,
                family: spec.ip_family,
                send,
                max_read: usize::try_from(spec.max_read_bytes).unwrap_or(usize::MAX),
                matches,
                value: spec.expect.value.clone(),
                cert_min_days: spec.expect.cert_min_days,
            }),
            _ => Err(errors),
        }
    }

    async fn run(&self, ctx: &RunContext) -> Outcome {
        let deadline = net::soft_deadline(ctx.deadline);
        let mut trace = Trace::new(ctx.debug);
        let target = Target {
            host: &self.host,
            port: self.port,
            family: self.family,
            tls: self.tls.as_ref(),
        };
        let mut conn = match net::dial(&target, &mut trace, deadline).await {
            Ok(c) => c,
            Err(f) => return self.finish(Err(f), &mut trace),
        };
        let connect = trace.get("connect");
        let t = Instant::now();
        let answer = self
            .exchange(&mut conn.stream, conn.peer, &mut trace, deadline)
            .await;
        trace.phase("exchange", t.elapsed());
        let answer = match answer {
            Ok(a) => a,
            Err(mut f) => {
                f.cert = conn.cert.map(Box::new);
                return self.finish(Err(f), &mut trace);
            }
        };
        let mut problems = Vec::new();
        if let Some(m) = self
            .value
            .violation("connect time (seconds)", connect.as_secs_f64())
        {
            problems.push(m);
        }
        if let Some(days) = self.cert_min_days
            && let Some(c) = &conn.cert
            && let Some(m) = c.expiry_violation(days, SystemTime::now())
        {
            problems.push(m);
        }
        let mut samples = Vec::new();
        if let Some(c) = &conn.cert {
            samples.push(c.sample());
        }
        let outcome = if problems.is_empty() {
            let mut m = format!(
                "connected to {} ({}) in {}",
                net::host_port(&self.host, self.port),
                conn.peer,
                secs(connect)
            );
            if self.tls.is_some() {
                m.push_str(", TLS handshake in ");
                m.push_str(&secs(trace.get("tls")));
            }
            if let (Some(re), Some(a)) = (&self.matches, &answer) {
                m.push_str(&format!(
                    "; the answer `{}` matches `{}`",
                    excerpt(a, 80),
                    re.as_str()
                ));
            }
            Outcome::ok(m)
        } else {
            Outcome::fail(Reason::AssertionFailed, problems.join("; "))
        };
        self.finish(
            Ok(outcome
                .with_value(connect.as_secs_f64())
                .with_samples(samples)),
            &mut trace,
        )
    }
}

impl TcpCheck {
    /// Sends `send`, then reads until `matches` matches. Returns what was
    /// read when there is something to match.
    async fn exchange(
        &self,
        stream: &mut net::Stream,
        peer: std::net::SocketAddr,
        trace: &mut Trace,
        deadline: Instant,
    ) -> Result<Option<Vec<u8>>, Failure> {
        let t = Instant::now();
        if !self.send.is_empty() {
            let sent = tokio::time::timeout_at(deadline, async {
                stream.write_all(&self.send).await?;
                stream.flush().await
            })
            .await;
            match sent {
                Err(_) => {
                    return Err(Failure::new(
                        Reason::Timeout,
                        format!(
                            "{peer} did not accept the {} bytes to send within {}",
                            self.send.len(),
                            secs(t.elapsed())
                        ),
                    ));
                }
                Ok(Err(e)) => {
                    return Err(io_failure(&e, format!("sending to {peer} failed")));
                }
                Ok(Ok(())) => {}
            }
            trace.note(|| format!("> sent `{}`", excerpt(&self.send, 256)));
        }
        let Some(re) = &self.matches else {
            return Ok(None);
        };
        let after = if self.send.is_empty() {
            "after connecting"
        } else {
            "after sending"
        };
        let mut buf: Vec<u8> = Vec::new();
        let mut chunk = vec![0u8; 8192.min(self.max_read)];
        loop {
            let room = self.max_read - buf.len();
            let want = chunk.len().min(room);
            match tokio::time::timeout_at(deadline, stream.read(&mut chunk[..want])).await {
                Err(_) if buf.is_empty() => {
                    return Err(Failure::new(
                        Reason::Timeout,
                        format!("no data from {peer} within {} {after}", secs(t.elapsed())),
                    ));
                }
                Err(_) => {
                    return Err(Failure::new(
                        Reason::AssertionFailed,
                        format!(
                            "{peer} sent `{}` within {}, which does not match `{}`",
                            excerpt(&buf, 120),
                            secs(t.elapsed()),
                            re.as_str()
                        ),
                    ));
                }
                Ok(Err(e)) => {
                    return Err(io_failure(
                        &e,
                        format!("reading from {peer} failed after {} bytes", buf.len()),
                    ));
                }
                Ok(Ok(0)) if buf.is_empty() => {
                    return Err(Failure::new(
                        Reason::ProtocolError,
                        format!(
                            "{peer} closed the connection without sending anything, expected an answer matching `{}`",
                            re.as_str()
                        ),
                    ));
                }
                Ok(Ok(0)) => {
                    return Err(Failure::new(
                        Reason::AssertionFailed,
                        format!(
                            "{peer} sent `{}` and closed the connection; that does not match `{}`",
                            excerpt(&buf, 120),
                            re.as_str()
                        ),
                    ));
                }
                Ok(Ok(n)) => {
                    buf.extend_from_slice(&chunk[..n]);
                    trace.note(|| format!("< `{}`", excerpt(&chunk[..n], 256)));
                    if re.is_match(&String::from_utf8_lossy(&buf)) {
                        return Ok(Some(buf));
                    }
                    if buf.len() >= self.max_read {
                        return Err(Failure::new(
                            Reason::AssertionFailed,
                            format!(
                                "read max_read_bytes ({}) from {peer} without a match for `{}`; it starts with `{}`",
                                self.max_read,
                                re.as_str(),
                                excerpt(&buf, 80)
                            ),
                        ));
                    }
                }
            }
        }
    }

    fn finish(&self, result: Result<Outcome, Failure>, trace: &mut Trace) -> Outcome {
        let mut samples: Vec<Sample> = PHASES
            .iter()
            .map(|p| Sample {
                family: &PHASE_DURATION,
                labels: vec![("phase", (*p).to_string())],
                value: trace.get(p).as_secs_f64(),
            })
            .collect();
        let outcome = match result {
            Ok(o) => o,
            Err(f) => {
                if let Some(c) = &f.cert {
                    samples.push(c.sample());
                }
                trace.note(|| format!("failed: {}", f.message));
                f.into_outcome()
            }
        };
        outcome
            .with_samples(samples)
            .with_observations(trace.take_notes())
    }
}

fn io_failure(e: &std::io::Error, what: String) -> Failure {
    let reason = match Reason::from_io(e) {
        Reason::InternalError | Reason::NotFound => Reason::ProtocolError,
        r => r,
    };
    Failure::new(reason, format!("{what}: {e}"))
}

/// Reads `\r`, `\n`, `\t`, `\0`, `\\`, `\xHH` escapes.
pub fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut b = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            continue;
        }
        match chars.next() {
            Some('r') => out.push(b'\r'),
            Some('n') => out.push(b'\n'),
            Some('t') => out.push(b'\t'),
            Some('0') => out.push(0),
            Some('\\') => out.push(b'\\'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                let b = u8::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 2)
                    .ok_or_else(|| {
                        format!("`\\x{hex}` is not an escape: write two hex digits, e.g. `\\x1b`")
                    })?;
                out.push(b);
            }
            Some(o) => {
                return Err(format!(
                    "`\\{o}` is not an escape: use \\r, \\n, \\t, \\0, \\\\ or \\xHH"
                ));
            }
            None => return Err("ends with a lone `\\` (write `\\\\` for a backslash)".into()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::support::testing::{build, build_errors};

    fn rctx(secs: u64) -> RunContext {
        RunContext {
            deadline: Instant::now() + Duration::from_secs(secs),
            debug: true,
        }
    }

    #[test]
    fn escapes() {
        assert_eq!(unescape(r"PING\r\n").unwrap(), b"PING\r\n");
        assert_eq!(unescape(r"a\\b\x1b\0\t").unwrap(), b"a\\b\x1b\0\t");
        assert_eq!(unescape("é").unwrap(), "é".as_bytes());
        assert!(
            unescape(r"\q")
                .unwrap_err()
                .contains("`\\q` is not an escape")
        );
        assert!(unescape(r"\xZ1").unwrap_err().contains("two hex digits"));
        assert!(unescape("a\\").unwrap_err().contains("lone"));
    }

    #[test]
    fn every_bad_field_is_reported() {
        let (_, paths) = build_errors::<TcpCheck>(
            r#"{address: "no-port", send: '\q', expect: {matches: "(", cert_min_days: 3, value: {min: 2, max: 1}}}"#,
        );
        assert_eq!(
            paths,
            [
                "address",
                "send",
                "expect.matches",
                "expect.value",
                "expect.cert_min_days"
            ]
        );
    }

    #[tokio::test]
    async fn banner_is_matched() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            s.write_all(b"220 mail ESMTP\r\n").await.unwrap();
            let mut b = [0u8; 16];
            let _ = s.read(&mut b).await;
        });
        let c = build::<TcpCheck>(&format!(
            "{{address: '127.0.0.1:{port}', expect: {{matches: '^220 '}}}}"
        ))
        .unwrap_or_else(|e| panic!("{e:?}"));
        let o = c.run(&rctx(3)).await;
        assert_eq!(o.reason, Reason::Ok, "{}", o.message);
        assert!(
            o.message.contains("`220 mail ESMTP\\r\\n` matches `^220 `"),
            "{}",
            o.message
        );
        assert!(o.value.unwrap() >= 0.0);
    }
}
