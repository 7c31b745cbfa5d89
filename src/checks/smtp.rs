//! The `smtp` kind: can this host hand mail to its relay? It speaks SMTP
//! itself, one step at a time, and never sends mail: banner (220), `EHLO`,
//! `STARTTLS` and the TLS handshake (or TLS from the first byte on port 465),
//! `EHLO` again, `AUTH` when credentials are given, then `QUIT`.
//!
//! Why not lettre's `test_connection()`: it does not say which step failed,
//! and without TLS it reported success against a server that requires
//! STARTTLS. Here each step is timed (`healthprobe_smtp_step_duration_seconds`),
//! its failure is worded with the step and what the server said, and a
//! server that does not offer STARTTLS fails when STARTTLS is asked for.
//!
//! The EHLO name defaults to this machine's host name, not the address
//! literal (`[127.0.0.1]`) some clients send: Gmail's relay rejects the
//! latter. Certificates are verified by [`crate::support::tls`], which words
//! the guide's "certificate verify failed" as expired, unknown authority or
//! name mismatch; the certificate's expiry is exported as
//! `healthprobe_tls_cert_not_after_timestamp_seconds`, even when it failed
//! verification. Passwords come from the environment (or the pack, e.g.
//! `${env.MAIL_PASSWORD}` from the app's `.env`), are registered as secrets
//! and never appear in messages or observations.

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use schemars::JsonSchema;
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::time::Instant;

use super::Sample;
use super::{BuildContext, Check, Family, FieldError, Outcome, Reason, RunContext};
use crate::support::net::{self, Failure, IpFamily, Stream, Target, Trace, excerpt, secs};
use crate::support::tls::{self, CertInfo, TlsClient, TlsOptions};

/// `healthprobe_smtp_step_duration_seconds{step}`.
pub static STEP_DURATION: Family = Family::gauge(
    "healthprobe_smtp_step_duration_seconds",
    "Time spent in each step of the last SMTP session (connect, tls, banner, ehlo, starttls, auth)",
);

/// How the session is protected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SmtpMode {
    /// Plain connection upgraded with `STARTTLS`, which the server must offer
    /// (submission, port 587). The default.
    #[default]
    Starttls,
    /// TLS from the first byte ("implicit TLS", SMTPS, port 465).
    Tls,
    /// No TLS at all (port 25 between servers, or a local relay).
    Plain,
}

/// The SASL mechanism for `AUTH`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mechanism {
    /// `PLAIN` when the server offers it, else `LOGIN`.
    #[default]
    Auto,
    /// `AUTH PLAIN`.
    Plain,
    /// `AUTH LOGIN`.
    Login,
}

/// The `smtp:` block.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SmtpSpec {
    /// The server's host name or IP address.
    pub host: String,
    /// The port. Default: 587 for `starttls`, 465 for `tls`, 25 for `plain`.
    #[serde(default)]
    pub port: Option<u16>,
    /// `starttls` (default), `tls` (implicit TLS, port 465) or `plain`.
    #[serde(default)]
    pub mode: SmtpMode,
    /// The name sent with `EHLO`. Default: this machine's host name. Relays
    /// such as Gmail's reject an address literal like `[127.0.0.1]`.
    #[serde(default)]
    pub ehlo_domain: Option<String>,
    /// TLS options (`verify`, `ca_file`, `server_name`) for `starttls` and `tls`.
    #[serde(default)]
    pub tls: Option<TlsOptions>,
    /// Fail when the server's certificate expires within this many days.
    #[serde(default)]
    pub cert_min_days: Option<u32>,
    /// Log in after the (secured) EHLO; no mail is sent.
    #[serde(default)]
    pub auth: Option<AuthSpec>,
    /// Which addresses of `host` to try first (`ipv4_first`, the default,
    /// `ipv6_first`, `ipv4_only`, `ipv6_only`).
    #[serde(default)]
    pub ip_family: IpFamily,
}

/// Credentials for `AUTH`. Give the password as `password_env` (the name of
/// an environment variable) or `password` (e.g. `${env.MAIL_PASSWORD}` from
/// the app's `.env`); it is treated as a secret.
#[derive(Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthSpec {
    /// The user name.
    pub username: String,
    /// The environment variable that holds the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// The password itself (write `${env.KEY}` or `${VAR}`, not the value).
    #[serde(default)]
    pub password: Option<String>,
    /// `auto` (default: PLAIN if offered, else LOGIN), `plain` or `login`.
    #[serde(default)]
    pub mechanism: Mechanism,
}

impl fmt::Debug for AuthSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthSpec")
            .field("username", &self.username)
            .field("password_env", &self.password_env)
            .field(
                "password",
                &self.password.as_ref().map(|_| crate::redact::MASK),
            )
            .field("mechanism", &self.mechanism)
            .finish()
    }
}

/// Credentials ready to use.
struct Credentials {
    username: String,
    password: String,
    mechanism: Mechanism,
}

/// A prepared `smtp` check.
pub struct SmtpCheck {
    host: String,
    port: u16,
    mode: SmtpMode,
    ehlo: String,
    tls: Option<TlsClient>,
    cert_min_days: Option<u32>,
    auth: Option<Credentials>,
    family: IpFamily,
}

impl Check for SmtpCheck {
    type Spec = SmtpSpec;

    fn build(spec: &SmtpSpec, ctx: &BuildContext) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let host = spec
            .host
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if host.is_empty() || host.contains(['/', ' ']) {
            errors.push(FieldError::new(
                "host",
                format!("`{}` is not a host name or IP address", spec.host),
            ));
        }
        if spec.port == Some(0) {
            errors.push(FieldError::new("port", "0 is not a port number (1-65535)"));
        }
        let ehlo = match &spec.ehlo_domain {
            Some(d) => d.trim().to_string(),
            None => local_host_name(),
        };
        if ehlo.is_empty() || ehlo.chars().any(|c| c.is_whitespace() || c.is_control()) {
            errors.push(FieldError::new(
                "ehlo_domain",
                format!("`{ehlo}` is not a domain name or address literal like `[192.0.2.1]`"),
            ));
        }
        let tls = match (spec.mode, &spec.tls) {
            (SmtpMode::Plain, Some(_)) => {
                errors.push(FieldError::new(
                    "tls",
                    "`tls` options do nothing with `mode: plain`: use `mode: starttls` or `tls`",
                ));
                None
            }
            (SmtpMode::Plain, None) => None,
            (_, opts) => {
                let opts = opts.clone().unwrap_or_default();
                match TlsClient::build(&opts, ctx.pack_dir.as_deref(), &[], "tls") {
                    Ok(c) => Some(c),
                    Err(mut e) => {
                        errors.append(&mut e);
                        None
                    }
                }
            }
        };
        if spec.mode == SmtpMode::Plain && spec.cert_min_days.is_some() {
            errors.push(FieldError::new(
                "cert_min_days",
                "there is no certificate with `mode: plain`",
            ));
        }
        let auth = spec.auth.as_ref().and_then(|a| match credentials(a) {
            Ok(c) => Some(c),
            Err(e) => {
                errors.push(e);
                None
            }
        });
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(SmtpCheck {
            host: host.to_string(),
            port: spec.port.unwrap_or(match spec.mode {
                SmtpMode::Starttls => 587,
                SmtpMode::Tls => 465,
                SmtpMode::Plain => 25,
            }),
            mode: spec.mode,
            ehlo,
            tls,
            cert_min_days: spec.cert_min_days,
            auth,
            family: spec.ip_family,
        })
    }

    async fn run(&self, ctx: &RunContext) -> Outcome {
        let deadline = net::soft_deadline(ctx.deadline);
        let mut trace = Trace::new(ctx.debug);
        let mut cert = None;
        let result = self.session(&mut trace, &mut cert, deadline).await;
        let mut samples = step_samples(&trace);
        let outcome = match result {
            Ok(message) => Outcome::ok(message),
            Err(f) => {
                if cert.is_none() {
                    cert = f.cert.map(|c| *c);
                }
                Outcome::fail(f.reason, f.message)
            }
        };
        if let Some(c) = &cert {
            samples.push(c.sample());
        }
        outcome
            .with_samples(samples)
            .with_observations(trace.take_notes())
    }
}

/// Reads the password and registers it as a secret.
fn credentials(a: &AuthSpec) -> Result<Credentials, FieldError> {
    if a.username.is_empty() {
        return Err(FieldError::new("auth.username", "the user name is empty"));
    }
    let password = match (&a.password_env, &a.password) {
        (Some(_), Some(_)) => {
            return Err(FieldError::new(
                "auth.password",
                "give either `password_env` or `password`, not both",
            ));
        }
        (None, None) => {
            return Err(FieldError::new(
                "auth",
                "give the password as `password_env: VARIABLE` (or `password: ${env.KEY}`)",
            ));
        }
        (Some(var), None) if !crate::support::secret::is_env_name(var) => {
            return Err(FieldError::new(
                "auth.password_env",
                crate::support::secret::NOT_AN_ENV_NAME,
            ));
        }
        (Some(var), None) => std::env::var(var).map_err(|_| {
            FieldError::new(
                "auth.password_env",
                format!("the environment variable `{var}` is not set (or not UTF-8)"),
            )
        })?,
        (None, Some(p)) => p.clone(),
    };
    // The password, and the base64 forms it travels in (a server that echoes
    // them in an error line is caught by the redaction of every output).
    let b64 = base64::engine::general_purpose::STANDARD;
    crate::redact::register(&password);
    crate::redact::register(&b64.encode(&password));
    crate::redact::register(&b64.encode(format!("\0{}\0{password}", a.username)));
    Ok(Credentials {
        username: a.username.clone(),
        password,
        mechanism: a.mechanism,
    })
}

/// This machine's host name, for EHLO.
fn local_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty() && s != "(none)")
        .unwrap_or_else(|| "localhost".to_string())
}

/// The step durations reached in this run.
fn step_samples(trace: &Trace) -> Vec<Sample> {
    let connect = trace.get("resolve") + trace.get("connect");
    [
        ("connect", connect),
        ("tls", trace.get("tls")),
        ("banner", trace.get("banner")),
        ("ehlo", trace.get("ehlo")),
        ("starttls", trace.get("starttls")),
        ("auth", trace.get("auth")),
    ]
    .into_iter()
    .filter(|(_, d)| !d.is_zero())
    .map(|(step, d)| Sample {
        family: &STEP_DURATION,
        labels: vec![("step", step.to_string())],
        value: d.as_secs_f64(),
    })
    .collect()
}

impl SmtpCheck {
    /// The whole dialogue; returns the success message.
    async fn session(
        &self,
        trace: &mut Trace,
        cert: &mut Option<CertInfo>,
        deadline: Instant,
    ) -> Result<String, Failure> {
        let target = Target {
            host: &self.host,
            port: self.port,
            family: self.family,
            tls: if self.mode == SmtpMode::Tls {
                self.tls.as_ref()
            } else {
                None
            },
        };
        let conn = net::dial(&target, trace, deadline).await?;
        *cert = conn.cert;
        let mut s = Session {
            io: Some(BufReader::new(conn.stream)),
            peer: conn.peer,
            deadline,
            trace,
            after: "right after connecting",
            port: self.port,
            mode: self.mode,
        };
        let result = self.dialogue(&mut s, cert).await;
        match &result {
            // Nobody is listening any more, or the connection is unusable.
            Err(f) if matches!(f.reason, Reason::Timeout | Reason::ProtocolError) => {}
            _ => s.quit().await,
        }
        result
    }

    async fn dialogue(
        &self,
        s: &mut Session<'_>,
        cert: &mut Option<CertInfo>,
    ) -> Result<String, Failure> {
        let t = Instant::now();
        let banner = s.read_reply(Step::Banner).await;
        s.trace.phase("banner", t.elapsed());
        let banner = banner?;
        if banner.code != 220 {
            return Err(Failure::new(
                Reason::AssertionFailed,
                format!(
                    "{} refused the session at its banner: {} (expected 220)",
                    s.peer,
                    banner.text()
                ),
            ));
        }
        s.after = "after its banner";
        let mut parts = vec![format!("{} answered ({})", s.peer, banner.first_line())];

        let mut ext = s.ehlo(&self.ehlo).await?;
        if self.mode == SmtpMode::Starttls {
            if !ext.has("STARTTLS") {
                return Err(Failure::new(
                    Reason::AssertionFailed,
                    format!(
                        "the server does not offer STARTTLS (its EHLO lists: {}): mail would \
                         travel unencrypted; enable TLS on the server, or use `mode: tls` for \
                         port 465",
                        ext.list()
                    ),
                ));
            }
            let t = Instant::now();
            let tls = self
                .tls
                .as_ref()
                .ok_or_else(|| Failure::new(Reason::InternalError, "no TLS client for STARTTLS"))?;
            let upgraded = s.starttls(tls, &self.host).await;
            s.trace.phase("starttls", t.elapsed());
            *cert = upgraded?;
            s.after = "after STARTTLS";
            ext = s.ehlo(&self.ehlo).await?;
            parts.push("STARTTLS".into());
        }
        if let Some(c) = cert.as_ref() {
            if let Some(days) = self.cert_min_days
                && let Some(v) = c.expiry_violation(days, SystemTime::now())
            {
                return Err(Failure {
                    reason: Reason::AssertionFailed,
                    message: v,
                    cert: Some(Box::new(c.clone())),
                });
            }
            parts.push(format!(
                "certificate {} valid until {}",
                c.label(),
                tls::date(c.not_after)
            ));
        }
        if let Some(creds) = &self.auth {
            let t = Instant::now();
            let done = s.auth(creds, &ext).await;
            s.trace.phase("auth", t.elapsed());
            let mech = done?;
            s.after = "after AUTH";
            parts.push(format!("AUTH {mech} accepted for `{}`", creds.username));
        }
        Ok(parts.join("; "))
    }
}

/// Longest reply line accepted (RFC 5321 says 512; extensions lists run longer).
const MAX_LINE: u64 = 4096;
/// Most lines in one reply.
const MAX_LINES: usize = 100;

/// One SMTP reply: its code and the text of each line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    /// `250 first / second`, for messages.
    pub fn text(&self) -> String {
        let joined = self
            .lines
            .iter()
            .map(|l| l.as_str())
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" / ");
        if joined.is_empty() {
            self.code.to_string()
        } else {
            format!("{} {}", self.code, clip(&joined, 300))
        }
    }

    /// The first line's text.
    pub fn first_line(&self) -> String {
        clip(self.lines.first().map_or("", String::as_str), 120)
    }
}

fn clip(s: &str, max: usize) -> String {
    excerpt(s.as_bytes(), max)
}

/// Assembles replies from lines: `250-first`, `250-second`, `250 last`.
#[derive(Debug, Default)]
pub struct ReplyParser {
    code: Option<u16>,
    lines: Vec<String>,
}

impl ReplyParser {
    /// Takes one raw line (with or without its CRLF). `Ok(Some)` when the
    /// reply is complete; `Err` describes what is not SMTP about the line.
    pub fn push(&mut self, raw: &[u8]) -> Result<Option<Reply>, String> {
        let line = raw
            .strip_suffix(b"\n")
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .unwrap_or(raw);
        let shown = || format!("`{}`", excerpt(raw, 120));
        if line.len() < 3 || !line[..3].iter().all(u8::is_ascii_digit) {
            return Err(format!("not an SMTP reply line: {}", shown()));
        }
        let code =
            (line[0] - b'0') as u16 * 100 + (line[1] - b'0') as u16 * 10 + (line[2] - b'0') as u16;
        if !(200..600).contains(&code) {
            return Err(format!("{code} is not an SMTP reply code: {}", shown()));
        }
        let last = match line.get(3) {
            None | Some(b' ') => true,
            Some(b'-') => false,
            Some(_) => return Err(format!("not an SMTP reply line: {}", shown())),
        };
        if let Some(c) = self.code
            && c != code
        {
            return Err(format!(
                "a multi-line reply changed its code from {c} to {code}: {}",
                shown()
            ));
        }
        if self.lines.len() >= MAX_LINES {
            return Err(format!("a reply of more than {MAX_LINES} lines"));
        }
        self.code = Some(code);
        let text = line.get(4..).unwrap_or_default();
        self.lines
            .push(String::from_utf8_lossy(text).trim_end().to_string());
        if last {
            let lines = std::mem::take(&mut self.lines);
            self.code = None;
            Ok(Some(Reply { code, lines }))
        } else {
            Ok(None)
        }
    }
}

/// What the server announced in its EHLO reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extensions {
    /// `KEYWORD` (upper case) and its parameters.
    pub items: Vec<(String, String)>,
}

impl Extensions {
    /// From a 250 reply to EHLO (the first line is the greeting).
    pub fn parse(reply: &Reply) -> Extensions {
        let items = reply
            .lines
            .iter()
            .skip(1)
            .filter_map(|l| {
                let l = l.trim();
                // `AUTH=LOGIN PLAIN` is the pre-standard spelling of `AUTH`.
                let (kw, params) = match l.split_once([' ', '=']) {
                    Some((k, p)) => (k, p.trim()),
                    None => (l, ""),
                };
                (!kw.is_empty()).then(|| (kw.to_ascii_uppercase(), params.to_string()))
            })
            .collect();
        Extensions { items }
    }

    pub fn has(&self, keyword: &str) -> bool {
        self.items.iter().any(|(k, _)| k == keyword)
    }

    /// The SASL mechanisms offered (upper case, in order, without repeats).
    pub fn auth_mechanisms(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (_, params) in self.items.iter().filter(|(k, _)| k == "AUTH") {
            for m in params.split_whitespace() {
                let m = m.to_ascii_uppercase();
                if !out.contains(&m) {
                    out.push(m);
                }
            }
        }
        out
    }

    /// `PIPELINING, SIZE 1000, STARTTLS` (or `nothing`).
    pub fn list(&self) -> String {
        if self.items.is_empty() {
            return "no extensions".into();
        }
        let all: Vec<String> = self
            .items
            .iter()
            .map(|(k, p)| {
                if p.is_empty() {
                    k.clone()
                } else {
                    format!("{k} {p}")
                }
            })
            .collect();
        clip(&all.join(", "), 300)
    }
}

/// A step of the dialogue, for timings and messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Banner,
    Ehlo,
    Starttls,
    Auth,
    Quit,
}

impl Step {
    /// The command whose reply is awaited.
    fn command(self) -> &'static str {
        match self {
            Step::Banner => "the banner",
            Step::Ehlo => "EHLO",
            Step::Starttls => "STARTTLS",
            Step::Auth => "AUTH",
            Step::Quit => "QUIT",
        }
    }
}

/// An open SMTP connection and where the dialogue is.
struct Session<'t> {
    /// `None` only while STARTTLS swaps the stream.
    io: Option<BufReader<Stream>>,
    peer: SocketAddr,
    deadline: Instant,
    trace: &'t mut Trace,
    /// What happened last, for "closed the connection after ...".
    after: &'static str,
    port: u16,
    mode: SmtpMode,
}

impl Session<'_> {
    fn io(&mut self) -> Result<&mut BufReader<Stream>, Failure> {
        self.io
            .as_mut()
            .ok_or_else(|| Failure::new(Reason::InternalError, "the SMTP connection is gone"))
    }

    /// The server hung up (or reset) while we waited for `step`.
    fn closed(&self, step: Step, partial: &[u8]) -> Failure {
        let what = match step {
            Step::Banner => "before sending its 220 banner".to_string(),
            s => format!("{}, instead of answering {}", self.after, s.command()),
        };
        let partial = if partial.is_empty() {
            String::new()
        } else {
            format!(" (it had sent `{}`)", excerpt(partial, 120))
        };
        Failure::new(
            Reason::ProtocolError,
            format!(
                "{} closed the connection {what}{partial}: the server drops this client (see its \
                 log: a connection limit, a blocklist, or a policy on the EHLO name)",
                self.peer
            ),
        )
    }

    fn io_failure(&self, step: Step, e: &std::io::Error) -> Failure {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::UnexpectedEof | K::ConnectionReset | K::BrokenPipe | K::ConnectionAborted => {
                self.closed(step, b"")
            }
            _ => Failure::new(
                Reason::from_io(e),
                format!(
                    "the SMTP connection to {} failed during {}: {}",
                    self.peer,
                    step.command(),
                    net::error_chain(e)
                ),
            ),
        }
    }

    /// Reads one complete reply, line by line, under the deadline.
    async fn read_reply(&mut self, step: Step) -> Result<Reply, Failure> {
        let started = Instant::now();
        let deadline = self.deadline;
        let mut parser = ReplyParser::default();
        loop {
            let mut line = Vec::new();
            let io = self.io()?;
            let read = tokio::time::timeout_at(
                deadline,
                (&mut *io).take(MAX_LINE).read_until(b'\n', &mut line),
            )
            .await;
            let n = match read {
                Err(_) => return Err(self.timed_out(step, started)),
                Ok(Err(e)) => return Err(self.io_failure(step, &e)),
                Ok(Ok(n)) => n,
            };
            if n == 0 || !line.ends_with(b"\n") {
                if n as u64 >= MAX_LINE {
                    return Err(Failure::new(
                        Reason::ProtocolError,
                        format!(
                            "{} sent a reply line longer than {MAX_LINE} bytes to {}: `{}`: not SMTP",
                            self.peer,
                            step.command(),
                            excerpt(&line, 120)
                        ),
                    ));
                }
                return Err(self.closed(step, &line));
            }
            self.trace.note(|| format!("S: {}", excerpt(&line, 300)));
            match parser.push(&line) {
                Ok(Some(reply)) => return Ok(reply),
                Ok(None) => {}
                Err(e) => {
                    return Err(Failure::new(
                        Reason::ProtocolError,
                        format!(
                            "the reply of {} to {} is not SMTP: {e}{}",
                            self.peer,
                            step.command(),
                            self.port_hint()
                        ),
                    ));
                }
            }
        }
    }

    fn port_hint(&self) -> &'static str {
        if self.port == 465 && self.mode != SmtpMode::Tls {
            "; port 465 speaks TLS from the first byte: use `mode: tls`"
        } else {
            ""
        }
    }

    fn timed_out(&self, step: Step, started: Instant) -> Failure {
        let waited = secs(started.elapsed());
        let message = match step {
            Step::Banner => format!(
                "{} accepted the connection but sent no banner within {waited}{}",
                self.peer,
                if self.port == 465 && self.mode != SmtpMode::Tls {
                    ": port 465 expects TLS first, use `mode: tls`"
                } else {
                    " (an overloaded server, or a tarpit for unknown clients)"
                }
            ),
            s => format!(
                "{} did not answer {} within {waited} ({})",
                self.peer,
                s.command(),
                self.after
            ),
        };
        Failure::new(Reason::Timeout, message)
    }

    /// Sends one command line. `shown` is what observations record (AUTH
    /// lines carry credentials and are never shown).
    async fn send(&mut self, step: Step, line: &str, shown: &str) -> Result<(), Failure> {
        let deadline = self.deadline;
        let started = Instant::now();
        let mut bytes = Vec::with_capacity(line.len() + 2);
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        let io = self.io()?;
        let write = async {
            io.get_mut().write_all(&bytes).await?;
            io.get_mut().flush().await
        };
        match tokio::time::timeout_at(deadline, write).await {
            Err(_) => return Err(self.timed_out(step, started)),
            Ok(Err(e)) => return Err(self.io_failure(step, &e)),
            Ok(Ok(())) => {}
        }
        self.trace.note(|| format!("C: {shown}"));
        Ok(())
    }

    async fn command(&mut self, step: Step, line: &str) -> Result<Reply, Failure> {
        self.send(step, line, line).await?;
        self.read_reply(step).await
    }

    async fn ehlo(&mut self, domain: &str) -> Result<Extensions, Failure> {
        let t = Instant::now();
        let reply = self.command(Step::Ehlo, &format!("EHLO {domain}")).await;
        self.trace.phase("ehlo", t.elapsed());
        let reply = reply?;
        if reply.code != 250 {
            return Err(Failure::new(
                Reason::AssertionFailed,
                format!(
                    "{} rejected `EHLO {domain}` {}: {}; relays often want this host's public \
                     name: set `ehlo_domain`",
                    self.peer,
                    self.after,
                    reply.text()
                ),
            ));
        }
        Ok(Extensions::parse(&reply))
    }

    /// STARTTLS and the handshake; returns the server's certificate.
    async fn starttls(&mut self, tls: &TlsClient, host: &str) -> Result<Option<CertInfo>, Failure> {
        let reply = self.command(Step::Starttls, "STARTTLS").await?;
        if reply.code != 220 {
            return Err(Failure::new(
                Reason::AssertionFailed,
                format!(
                    "{} offered STARTTLS but refused it: {}",
                    self.peer,
                    reply.text()
                ),
            ));
        }
        let io = self
            .io
            .take()
            .ok_or_else(|| Failure::new(Reason::InternalError, "the SMTP connection is gone"))?;
        if !io.buffer().is_empty() {
            // Anything sent before the handshake would be taken as coming
            // from inside TLS (the STARTTLS command-injection flaw).
            return Err(Failure::new(
                Reason::ProtocolError,
                format!(
                    "{} sent data after its 220 reply to STARTTLS, before the TLS handshake \
                     (`{}`): refusing to go on",
                    self.peer,
                    excerpt(io.buffer(), 120)
                ),
            ));
        }
        let Stream::Plain(tcp) = io.into_inner() else {
            return Err(Failure::new(
                Reason::InternalError,
                "STARTTLS on a connection that already speaks TLS",
            ));
        };
        let stream = tls.handshake(tcp, host, self.peer, self.deadline).await?;
        let cert = tls::peer_cert(&stream);
        self.trace.note(|| match &cert {
            Some(c) => format!("TLS after STARTTLS: {}", c.summary()),
            None => "TLS after STARTTLS".into(),
        });
        self.io = Some(BufReader::new(Stream::Tls(Box::new(stream))));
        Ok(cert)
    }

    /// Logs in; returns the mechanism used.
    async fn auth(
        &mut self,
        creds: &Credentials,
        ext: &Extensions,
    ) -> Result<&'static str, Failure> {
        let offered = ext.auth_mechanisms();
        let speaks = |m: &str| offered.iter().any(|o| o == m);
        if offered.is_empty() {
            let when = if self.mode == SmtpMode::Plain {
                " on a connection without TLS (servers usually offer AUTH only after \
                 STARTTLS: use `mode: starttls`)"
            } else {
                ""
            };
            return Err(Failure::new(
                Reason::AssertionFailed,
                format!(
                    "the server does not offer AUTH{when}; its EHLO lists: {}",
                    ext.list()
                ),
            ));
        }
        let mech = match creds.mechanism {
            Mechanism::Auto if speaks("PLAIN") => Mechanism::Plain,
            Mechanism::Auto if speaks("LOGIN") => Mechanism::Login,
            Mechanism::Auto => {
                return Err(Failure::new(
                    Reason::AssertionFailed,
                    format!(
                        "the server offers AUTH {}, and healthprobe speaks only PLAIN and LOGIN",
                        offered.join(" ")
                    ),
                ));
            }
            m => m,
        };
        let name = if mech == Mechanism::Plain {
            "PLAIN"
        } else {
            "LOGIN"
        };
        if !speaks(name) {
            return Err(Failure::new(
                Reason::AssertionFailed,
                format!(
                    "the server does not offer AUTH {name} (it offers {}): set \
                     `mechanism: auto`",
                    offered.join(" ")
                ),
            ));
        }
        let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
        let secrets: Vec<String>;
        let reply = if mech == Mechanism::Plain {
            let token = b64(format!("\0{}\0{}", creds.username, creds.password).as_bytes());
            secrets = vec![token.clone()];
            self.send(
                Step::Auth,
                &format!("AUTH PLAIN {token}"),
                "AUTH PLAIN <credentials>",
            )
            .await?;
            let mut reply = self.read_reply(Step::Auth).await?;
            if reply.code == 334 {
                // A server that wants the response on its own line.
                self.send(Step::Auth, &token, "<credentials>").await?;
                reply = self.read_reply(Step::Auth).await?;
            }
            reply
        } else {
            let user = b64(creds.username.as_bytes());
            let pass = b64(creds.password.as_bytes());
            secrets = vec![pass.clone()];
            let mut reply = self.command(Step::Auth, "AUTH LOGIN").await?;
            if reply.code == 334 {
                self.send(Step::Auth, &user, "<user name>").await?;
                reply = self.read_reply(Step::Auth).await?;
                if reply.code == 334 {
                    self.send(Step::Auth, &pass, "<password>").await?;
                    reply = self.read_reply(Step::Auth).await?;
                }
            }
            reply
        };
        let mut said = reply.text();
        for s in &secrets {
            said = said.replace(s.as_str(), crate::redact::MASK);
        }
        let user = &creds.username;
        match reply.code {
            235 => Ok(name),
            530 | 538 => Err(Failure::new(
                Reason::AssertionFailed,
                format!(
                    "the server wants TLS before AUTH {name} for `{user}`: {said}; use `mode: \
                     starttls` or `tls`"
                ),
            )),
            504 => Err(Failure::new(
                Reason::AssertionFailed,
                format!("the server does not accept AUTH {name} after all: {said}"),
            )),
            334 => Err(Failure::new(
                Reason::ProtocolError,
                format!("the server kept asking during AUTH {name} (334) after the password"),
            )),
            _ => Err(Failure::new(
                Reason::AuthFailed,
                format!("the server refused the credentials of `{user}` (AUTH {name}): {said}"),
            )),
        }
    }

    /// Says goodbye; failures here do not matter any more.
    async fn quit(&mut self) {
        let d = self.deadline;
        self.deadline = d.min(Instant::now() + Duration::from_millis(500));
        if self.send(Step::Quit, "QUIT", "QUIT").await.is_ok() {
            let _ = self.read_reply(Step::Quit).await;
        }
        if let Ok(io) = self.io() {
            let _ = tokio::time::timeout(Duration::from_millis(100), io.get_mut().shutdown()).await;
        }
        self.deadline = d;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml;

    fn spec(text: &str) -> SmtpSpec {
        let node = yaml::parse(text).unwrap().unwrap();
        yaml::from_node(&node, "", &|s: &str| Ok(s.to_string())).unwrap()
    }

    fn build(text: &str) -> Result<SmtpCheck, Vec<FieldError>> {
        crate::support::testing::build(text)
    }

    fn paths(text: &str) -> Vec<String> {
        crate::support::testing::build_errors::<SmtpCheck>(text).1
    }

    fn parse_all(lines: &[&[u8]]) -> Result<Vec<Reply>, String> {
        let mut p = ReplyParser::default();
        let mut out = Vec::new();
        for l in lines {
            if let Some(r) = p.push(l)? {
                out.push(r);
            }
        }
        Ok(out)
    }

    #[test]
    fn multi_line_replies() {
        let r = parse_all(&[
            b"250-mail.example.org Hello\r\n",
            b"250-PIPELINING\r\n",
            b"250-AUTH=LOGIN\r\n",
            b"250-auth PLAIN login CRAM-MD5\r\n",
            b"250-SIZE 35882577\r\n",
            b"250 STARTTLS\r\n",
        ])
        .unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].code, 250);
        assert_eq!(r[0].lines.len(), 6);
        let ext = Extensions::parse(&r[0]);
        assert!(ext.has("STARTTLS"));
        assert!(ext.has("PIPELINING"));
        assert!(!ext.has("8BITMIME"));
        assert_eq!(ext.auth_mechanisms(), ["LOGIN", "PLAIN", "CRAM-MD5"]);
        assert_eq!(
            ext.list(),
            "PIPELINING, AUTH LOGIN, AUTH PLAIN login CRAM-MD5, SIZE 35882577, STARTTLS"
        );
    }

    #[test]
    fn single_lines_bare_codes_and_lf_only() {
        let r = parse_all(&[
            b"220 smtp.example.org ESMTP ready\r\n",
            b"221\n",
            b"235 2.7.0 ok",
        ])
        .unwrap();
        assert_eq!(
            r.iter().map(|r| r.code).collect::<Vec<_>>(),
            [220, 221, 235]
        );
        assert_eq!(r[0].first_line(), "smtp.example.org ESMTP ready");
        assert_eq!(r[1].text(), "221");
        assert_eq!(r[2].text(), "235 2.7.0 ok");
    }

    #[test]
    fn garbage_is_named() {
        let e = parse_all(&[b"HTTP/1.1 400 Bad Request\r\n"]).unwrap_err();
        assert_eq!(
            e,
            "not an SMTP reply line: `HTTP/1.1 400 Bad Request\\r\\n`"
        );
        let e = parse_all(&[b"\x16\x03\x01\x00\xa5\x01"]).unwrap_err();
        assert!(e.starts_with("not an SMTP reply line: `\\x16\\x03"), "{e}");
        let e = parse_all(&[b"250-a\r\n", b"251 b\r\n"]).unwrap_err();
        assert!(e.contains("changed its code from 250 to 251"), "{e}");
        let e = parse_all(&[b"250_x\r\n"]).unwrap_err();
        assert!(e.starts_with("not an SMTP reply line"), "{e}");
        let e = parse_all(&[b"999 nope\r\n"]).unwrap_err();
        assert!(e.starts_with("999 is not an SMTP reply code"), "{e}");
        let e = parse_all(&[b"25\r\n"]).unwrap_err();
        assert!(e.starts_with("not an SMTP reply line"), "{e}");
        let many: Vec<&[u8]> = std::iter::repeat_n(&b"250-x\r\n"[..], MAX_LINES + 1).collect();
        assert!(
            parse_all(&many)
                .unwrap_err()
                .contains("more than 100 lines")
        );
    }

    #[test]
    fn defaults_and_ports() {
        let c = build("host: 127.0.0.1").unwrap();
        assert_eq!((c.port, c.mode), (587, SmtpMode::Starttls));
        assert_eq!(c.ehlo, local_host_name());
        assert!(!c.ehlo.starts_with('['));
        assert!(c.tls.is_some());
        let c = build("host: mail.example.org\nmode: tls").unwrap();
        assert_eq!(c.port, 465);
        let c =
            build("host: '[::1]'\nmode: plain\nport: 2525\nehlo_domain: app.example.org").unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.ehlo.as_str()),
            ("::1", 2525, "app.example.org")
        );
        assert!(c.tls.is_none());
    }

    #[test]
    fn build_collects_every_problem() {
        assert_eq!(
            paths(
                "host: ''\nport: 0\nmode: plain\nehlo_domain: 'a b'\ntls: { verify: false }\n\
                 cert_min_days: 10\nauth: { username: u }\n",
            ),
            [
                "host",
                "port",
                "ehlo_domain",
                "tls",
                "cert_min_days",
                "auth"
            ]
        );
        assert_eq!(
            paths("host: h\nauth: { username: u, password: x, password_env: Y }"),
            ["auth.password"]
        );
        let (errs, _) = crate::support::testing::build_errors::<SmtpCheck>(
            "host: h\nauth: { username: u, password_env: HP_TEST_SURELY_UNSET }",
        );
        assert_eq!(errs[0].path, "auth.password_env");
        assert!(errs[0].message.contains("HP_TEST_SURELY_UNSET"));
        assert_eq!(
            paths("host: h\ntls: { ca_file: /nonexistent/ca.pem }"),
            ["tls.ca_file"]
        );
    }

    #[test]
    fn passwords_are_secrets() {
        let s = spec("host: h\nauth: { username: u, password: sw0rdfish-canary }");
        assert!(!format!("{s:?}").contains("sw0rdfish-canary"));
        let _ = build("host: h\nauth: { username: u, password: sw0rdfish-canary }").unwrap();
        assert_eq!(
            crate::redact::redact("said sw0rdfish-canary"),
            "said <redacted>"
        );
        let b64 = base64::engine::general_purpose::STANDARD;
        let token = b64.encode("\0u\0sw0rdfish-canary");
        assert_eq!(crate::redact::redact(&token), "<redacted>");
    }
}
