//! The `http` kind: one HTTP(S) request over a connection this module opens
//! itself, with assertions on status, headers, body, JSON fields, timing and
//! certificate expiry.
//!
//! Why hyper's low-level client over our own connection instead of a client
//! library: each phase (resolve, connect, TLS, waiting for the headers,
//! reading the body) is timed and exported, and a failure names the phase it
//! happened in ("no response headers within 4.8s after sending the request").
//! Connecting, TLS and their messages come from [`crate::support::net`] and
//! [`crate::support::tls`], shared with the `tcp` and `smtp` kinds. HTTP/1.1
//! only (ALPN offers `http/1.1`).
//!
//! The body is read up to `max_body_bytes` and never further: an endless
//! body costs at most that much memory, and the connection is dropped.
//! URLs in messages and observations pass through [`redact`], so a
//! `?secret=` value never leaves the agent.

use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as _, Incoming};
use hyper_util::rt::TokioIo;
use regex::Regex;
use schemars::JsonSchema;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;
use url::Url;

use super::Family;
use super::{BuildContext, Check, FieldError, Outcome, Reason, RunContext, Sample, shared_regex};
use crate::config::duration::Dur;
use crate::redact::{MASK, is_secret_key, redact};
use crate::support::net::{self, Failure, IpFamily, Stream, Target, Trace, excerpt, secs};
use crate::support::tls::{CertInfo, TlsClient, TlsOptions};

/// Redirects followed at most, with `follow_redirects: true`.
pub const MAX_REDIRECTS: usize = 10;

/// The phases of `healthprobe_http_phase_duration_seconds`, in order.
pub const PHASES: [&str; 5] = ["resolve", "connect", "tls", "processing", "transfer"];

static PHASE_DURATION: Family = Family::gauge(
    "healthprobe_http_phase_duration_seconds",
    "Duration of each phase of the last HTTP request (resolve, connect, tls, processing = waiting for the response headers, transfer = reading the body), summed over redirects",
);

static STATUS_CODE: Family = Family::gauge(
    "healthprobe_http_status_code",
    "Status code of the last HTTP response (0 when none was received)",
);

static REDIRECTS: Family = Family::gauge(
    "healthprobe_http_redirects",
    "Redirects followed by the last HTTP check run",
);

/// How many bytes of the answer are kept to show when it is not HTTP.
const SEEN_BYTES: usize = 64;

/// The largest `body_size`.
const MAX_BODY_SIZE: u64 = 1 << 30;

/// How many assets `assets_resolve` requests at most.
const MAX_ASSETS: usize = 20;

fn get() -> String {
    "GET".into()
}

fn default_max_body() -> u64 {
    1 << 20
}

/// The `http:` block.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpSpec {
    /// The URL to request, `http://` or `https://`. Credentials do not belong
    /// in it (use `headers: { Authorization: ... }`); secret query values
    /// (`?secret=`, `?token=`, ...) are masked wherever the URL is shown.
    pub url: String,
    /// The request method (default `GET`).
    #[serde(default = "get")]
    pub method: String,
    /// Request headers. `Host` defaults to the URL's host and `User-Agent` to
    /// `healthprobe/VERSION`. Values of `Authorization`, `Cookie` and other
    /// secret-looking headers are never shown.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A request body, sent as is (with its `Content-Length`).
    #[serde(default)]
    pub body: Option<String>,
    /// Send a body of this many zero bytes instead of `body` (at most 1 GiB,
    /// made anew for each request, with `Content-Type:
    /// application/octet-stream` unless `headers` sets one): how an upload
    /// limit is tested, e.g. a `POST` of 10 MiB that nginx's default
    /// `client_max_body_size` (1 MiB) answers with 413.
    #[serde(default)]
    pub body_size: Option<u64>,
    /// Follow redirects (301, 302, 303, 307, 308 with a `Location`), at most
    /// 10. Default `false`: the check judges the first response, because a
    /// redirect (to a login page, to `http://`) is usually itself the finding.
    /// When following, the assertions apply to the final response, phase
    /// durations add up over the hops, `Authorization` and `Cookie` are not
    /// sent to another host, and 301/302/303 turn a `POST` into a `GET`.
    #[serde(default)]
    pub follow_redirects: bool,
    /// TLS options for `https://` URLs.
    #[serde(default)]
    pub tls: TlsOptions,
    /// Read at most this many bytes of the response body (default 1048576,
    /// 1 MiB). Reading stops there, so memory stays bounded whatever the
    /// server sends; body assertions see only those bytes.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: u64,
    /// Which addresses of the host to try, in which order (default
    /// `ipv4_first`: every IPv4 address, then the IPv6 ones).
    #[serde(default)]
    pub ip_family: IpFamily,
    /// What the response must look like. Every expectation that fails is
    /// reported.
    #[serde(default)]
    pub expect: HttpExpect,
}

/// Expectations on the response.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpExpect {
    /// Accepted status codes (default: any of 200-399).
    #[serde(default)]
    pub status: Vec<u16>,
    /// Assertions on response headers, each on one header name.
    #[serde(default)]
    pub headers: Vec<HeaderExpect>,
    /// A regular expression the body must match (searched anywhere).
    #[serde(default)]
    pub body_matches: Option<String>,
    /// A regular expression the body must not match.
    #[serde(default)]
    pub body_not_matches: Option<String>,
    /// Text the body must start with (e.g. `%PDF-` for a PDF).
    #[serde(default)]
    pub body_starts_with: Option<String>,
    /// Assertions on fields of a JSON body.
    #[serde(default)]
    pub json: Vec<JsonExpect>,
    /// The whole exchange (connect to last body byte, over all redirects)
    /// must take at most this long.
    #[serde(default)]
    pub max_response_time: Option<Dur>,
    /// Fail when the server's TLS certificate expires within this many days.
    #[serde(default)]
    pub cert_min_days: Option<u32>,
    /// Every script and stylesheet the page references (`<script src>`, and
    /// `<link href>` with `rel` `stylesheet`, `preload` or `modulepreload`)
    /// must load with status 200. They are requested one after the other
    /// with `GET` (the first 20, within the check's timeout; their bodies are
    /// not read), and a page that references none fails. This is what a stale
    /// or half-finished asset build looks like from outside: the page names
    /// files that are not there (Mastodon after an upgrade without
    /// `assets:precompile`).
    #[serde(default)]
    pub assets_resolve: bool,
}

/// An assertion on one response header. With only `name`, the header must be
/// present. When it appears several times, its values are joined with `, `.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderExpect {
    /// The header name (case does not matter).
    pub name: String,
    /// A regular expression the value must match (use `(?i)` to ignore case).
    #[serde(default)]
    pub matches: Option<String>,
    /// A regular expression the value must not match.
    #[serde(default)]
    pub not_matches: Option<String>,
    /// The header must not be sent at all.
    #[serde(default)]
    pub absent: bool,
    /// The exact value.
    #[serde(default)]
    pub equals: Option<String>,
}

/// An assertion on a field of a JSON body.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonExpect {
    /// A JSON pointer (RFC 6901) to the field: `/status`, `/checks/0/ok`.
    pub pointer: String,
    /// The value the field must have, written as a scalar (`ok`, `200`,
    /// `true`; `"null"` quoted for JSON null); objects and arrays compare as
    /// compact JSON. Without it, the field must only exist.
    #[serde(default)]
    #[schemars(schema_with = "scalar_schema")]
    pub equals: Option<String>,
}

/// `equals:` takes any YAML scalar (read as text), which editors should accept.
fn scalar_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "type": ["string", "number", "boolean", "null"] })
}

struct HeaderRule {
    name: HeaderName,
    matches: Option<Arc<Regex>>,
    not_matches: Option<Arc<Regex>>,
    absent: bool,
    equals: Option<String>,
}

/// A prepared `http` check.
pub struct HttpCheck {
    request: Prepared,
    follow_redirects: bool,
    tls: Option<TlsClient>,
    max_body: usize,
    family: IpFamily,
    expect: Box<Expectations>,
}

/// The prepared `expect:` block.
struct Expectations {
    status: Vec<u16>,
    header_rules: Vec<HeaderRule>,
    body_matches: Option<Arc<Regex>>,
    body_not_matches: Option<Arc<Regex>>,
    body_starts_with: Option<String>,
    json: Vec<JsonExpect>,
    max_response_time: Option<Duration>,
    cert_min_days: Option<u32>,
    assets_resolve: bool,
}

fn regex_field(
    errors: &mut Vec<FieldError>,
    path: &str,
    pattern: &Option<String>,
) -> Option<Arc<Regex>> {
    let p = pattern.as_ref()?;
    shared_regex(path, p).map_err(|e| errors.push(e)).ok()
}

impl Check for HttpCheck {
    type Spec = HttpSpec;

    fn build(spec: &HttpSpec, ctx: &BuildContext) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let url = match Url::parse(&spec.url) {
            Err(e) => {
                errors.push(FieldError::new(
                    "url",
                    format!("`{}` is not a URL: {e}", redact(&spec.url)),
                ));
                None
            }
            Ok(u) if u.scheme() != "http" && u.scheme() != "https" => {
                errors.push(FieldError::new(
                    "url",
                    format!(
                        "the scheme must be http or https, not `{}` (use the tcp kind for other protocols)",
                        u.scheme()
                    ),
                ));
                None
            }
            Ok(u) if u.host().is_none() => {
                errors.push(FieldError::new("url", "the URL has no host"));
                None
            }
            Ok(u) if !u.username().is_empty() || u.password().is_some() => {
                errors.push(FieldError::new(
                    "url",
                    "credentials in the URL are not supported (they would show wherever the URL is \
                     printed): send them with `headers: { Authorization: ... }`",
                ));
                None
            }
            Ok(u) => {
                crate::redact::register_query_secrets(&u);
                Some(u)
            }
        };
        let method = Method::from_bytes(spec.method.as_bytes())
            .map_err(|_| {
                errors.push(FieldError::new(
                    "method",
                    format!("`{}` is not an HTTP method", spec.method),
                ))
            })
            .unwrap_or(Method::GET);
        let mut headers = HeaderMap::new();
        for (k, v) in &spec.headers {
            let path = format!("headers.{k}");
            match (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v)) {
                (Err(_), _) => errors.push(FieldError::new(path, format!("`{k}` is not a valid header name"))),
                (_, Err(_)) => errors.push(FieldError::new(
                    path,
                    "the value holds characters a header cannot carry (control characters or line breaks)",
                )),
                (Ok(n), Ok(mut v)) => {
                    if is_sensitive(&n) {
                        v.set_sensitive(true);
                        // Masked even when the server repeats it.
                        crate::redact::register_credential(spec.headers[k].as_str());
                    }
                    headers.insert(n, v);
                }
            }
        }
        if !headers.contains_key(header::USER_AGENT) {
            headers.insert(
                header::USER_AGENT,
                HeaderValue::from_static(concat!("healthprobe/", env!("CARGO_PKG_VERSION"))),
            );
        }
        let body = match (&spec.body, spec.body_size) {
            (Some(_), Some(_)) => {
                errors.push(FieldError::new(
                    "body_size",
                    "give either `body` or `body_size`, not both",
                ));
                ReqBody::Text(Bytes::new())
            }
            (_, Some(n)) if n > MAX_BODY_SIZE => {
                errors.push(FieldError::new(
                    "body_size",
                    format!("{n} is more than the largest body this check sends, 1 GiB ({MAX_BODY_SIZE})"),
                ));
                ReqBody::Text(Bytes::new())
            }
            (_, Some(n)) => {
                if !headers.contains_key(header::CONTENT_TYPE) {
                    headers.insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/octet-stream"),
                    );
                }
                ReqBody::Zeros(n as usize)
            }
            (body, None) => ReqBody::Text(Bytes::from(body.clone().unwrap_or_default())),
        };
        if spec.max_body_bytes > usize::MAX as u64 {
            errors.push(FieldError::new(
                "max_body_bytes",
                "too large for this machine",
            ));
        }
        let e = &spec.expect;
        for (i, code) in e.status.iter().enumerate() {
            if !(100..=599).contains(code) {
                errors.push(FieldError::new(
                    format!("expect.status[{i}]"),
                    format!("{code} is not an HTTP status code (100-599)"),
                ));
            }
        }
        let mut header_rules = Vec::new();
        for (i, h) in e.headers.iter().enumerate() {
            let path = format!("expect.headers[{i}]");
            let name = HeaderName::from_bytes(h.name.as_bytes())
                .map_err(|_| {
                    errors.push(FieldError::new(
                        format!("{path}.name"),
                        format!("`{}` is not a valid header name", h.name),
                    ))
                })
                .ok();
            if h.absent && (h.matches.is_some() || h.not_matches.is_some() || h.equals.is_some()) {
                errors.push(FieldError::new(
                    format!("{path}.absent"),
                    "`absent: true` cannot be combined with matches, not_matches or equals",
                ));
            }
            let matches = regex_field(&mut errors, &format!("{path}.matches"), &h.matches);
            let not_matches =
                regex_field(&mut errors, &format!("{path}.not_matches"), &h.not_matches);
            if let Some(name) = name {
                header_rules.push(HeaderRule {
                    name,
                    matches,
                    not_matches,
                    absent: h.absent,
                    equals: h.equals.clone(),
                });
            }
        }
        let body_matches = regex_field(&mut errors, "expect.body_matches", &e.body_matches);
        let body_not_matches =
            regex_field(&mut errors, "expect.body_not_matches", &e.body_not_matches);
        for (i, j) in e.json.iter().enumerate() {
            if !j.pointer.is_empty() && !j.pointer.starts_with('/') {
                errors.push(FieldError::new(
                    format!("expect.json[{i}].pointer"),
                    format!(
                        "`{}` is not a JSON pointer: a pointer starts with `/` (write `/{}`)",
                        j.pointer, j.pointer
                    ),
                ));
            }
        }
        let reads_body = e.body_matches.is_some()
            || e.body_not_matches.is_some()
            || e.body_starts_with.is_some()
            || e.assets_resolve
            || !e.json.is_empty();
        if reads_body && spec.max_body_bytes == 0 {
            errors.push(FieldError::new(
                "max_body_bytes",
                "is 0, but expect has body assertions that need the body",
            ));
        }
        if let Some(max) = e.max_response_time
            && max.get() >= ctx.timeout
        {
            errors.push(FieldError::new(
                "expect.max_response_time",
                format!(
                    "{max} is not below the check's timeout ({}): a slower response would time out first; raise `timeout`",
                    Dur(ctx.timeout)
                ),
            ));
        }
        let https = url.as_ref().is_some_and(|u| u.scheme() == "https");
        if e.cert_min_days.is_some() && url.is_some() && !https && !spec.follow_redirects {
            errors.push(FieldError::new(
                "expect.cert_min_days",
                "the URL is not https://, so there is no certificate to check",
            ));
        }
        if url.is_some()
            && !https
            && !spec.follow_redirects
            && !e.assets_resolve
            && spec.tls != TlsOptions::default()
        {
            errors.push(FieldError::new(
                "tls",
                "TLS options apply to https:// URLs, and this one is http://",
            ));
        }
        let tls = if https || spec.follow_redirects || e.assets_resolve {
            match TlsClient::build(&spec.tls, ctx.pack_dir.as_deref(), &[b"http/1.1"], "tls") {
                Ok(t) => Some(t),
                Err(mut e) => {
                    errors.append(&mut e);
                    None
                }
            }
        } else {
            None
        };
        match url {
            Some(url) if errors.is_empty() => Ok(HttpCheck {
                request: Prepared {
                    url,
                    method,
                    headers,
                    body,
                },
                follow_redirects: spec.follow_redirects,
                tls,
                max_body: spec.max_body_bytes as usize,
                family: spec.ip_family,
                expect: Box::new(Expectations {
                    status: e.status.clone(),
                    header_rules,
                    body_matches,
                    body_not_matches,
                    body_starts_with: e.body_starts_with.clone(),
                    json: e.json.clone(),
                    max_response_time: e.max_response_time.map(Dur::get),
                    cert_min_days: e.cert_min_days,
                    assets_resolve: e.assets_resolve,
                }),
            }),
            _ => Err(errors),
        }
    }

    async fn run(&self, ctx: &RunContext) -> Outcome {
        let deadline = net::soft_deadline(ctx.deadline);
        let started = Instant::now();
        let mut trace = Trace::new(ctx.debug);
        let mut req = self.request.clone();
        let mut redirects = 0usize;
        let head = loop {
            let head = match self.exchange(&req, &mut trace, deadline).await {
                Ok(h) => h,
                Err(f) => return self.failed(f, None, redirects, &mut trace),
            };
            let Some(next) = self.redirect_target(&head, &req) else {
                break head;
            };
            let next = match next {
                Ok(u) => u,
                Err(f) => return self.failed(f, Some(head.status), redirects, &mut trace),
            };
            if redirects == MAX_REDIRECTS {
                let f = Failure::new(
                    Reason::AssertionFailed,
                    format!(
                        "more than {MAX_REDIRECTS} redirects (a redirect loop?): {} redirects again to {}",
                        redact(req.url.as_str()),
                        redact(next.as_str())
                    ),
                );
                return self.failed(f, Some(head.status), redirects, &mut trace);
            }
            redirects += 1;
            trace.note(|| {
                format!(
                    "redirect {redirects}: {} -> {}",
                    head.status,
                    redact(next.as_str())
                )
            });
            req.follow(head.status, next);
        };
        let status = head.status;
        let body = match self.read_body(head, &mut trace, deadline).await {
            Ok(b) => b,
            Err(f) => return self.failed(f, Some(status), redirects, &mut trace),
        };
        let total = started.elapsed();
        let mut problems = self.judge(&body, total);
        let mut assets_note = String::new();
        if self.expect.assets_resolve {
            match self
                .check_assets(&req, &body.body, ctx.debug, &mut trace, deadline)
                .await
            {
                Ok(n) => assets_note = format!("; {}", plural_assets(n, "loads", "load")),
                Err(m) => problems.push(m),
            }
        }
        let mut samples = phase_samples(&trace);
        samples.push(status_sample(Some(status)));
        samples.push(redirects_sample(redirects));
        if let Some(c) = &body.cert {
            samples.push(c.sample());
        }
        let outcome = if problems.is_empty() {
            let hops = match redirects {
                0 => String::new(),
                1 => " after 1 redirect".into(),
                n => format!(" after {n} redirects"),
            };
            Outcome::ok(format!(
                "{} from {} in {}{hops}{assets_note}",
                status_text(status),
                redact(req.url.as_str()),
                secs(total)
            ))
        } else {
            Outcome::fail(Reason::AssertionFailed, problems.join("; "))
        };
        outcome
            .with_value(total.as_secs_f64())
            .with_samples(samples)
            .with_observations(trace.take_notes())
    }
}

impl HttpCheck {
    /// `assets_resolve`: requests each script and stylesheet `page` (the
    /// body of `req`'s response) references. `Ok(count)` when all load.
    async fn check_assets(
        &self,
        req: &Prepared,
        page: &[u8],
        debug: bool,
        trace: &mut Trace,
        deadline: Instant,
    ) -> Result<usize, String> {
        let urls = asset_urls(&req.url, &String::from_utf8_lossy(page));
        if urls.is_empty() {
            return Err(
                "the page references no script or stylesheet (assets_resolve), so it is not the page the check expects"
                    .into(),
            );
        }
        let mut failed = Vec::new();
        let mut checked = 0;
        // A separate trace: the phases exported are those of the page itself.
        let mut sub = Trace::new(debug);
        for url in urls.iter().take(MAX_ASSETS) {
            if Instant::now() >= deadline {
                failed.push(format!(
                    "{} more not checked: the check ran out of time",
                    urls.len().min(MAX_ASSETS) - checked
                ));
                break;
            }
            checked += 1;
            let mut a = req.clone();
            a.follow(StatusCode::SEE_OTHER, url.clone());
            a.method = Method::GET;
            let shown = shown_asset(&req.url, url);
            match self.exchange(&a, &mut sub, deadline).await {
                Ok(head) if head.status == StatusCode::OK => {
                    trace.note(|| format!("asset {shown}: 200 OK"));
                }
                Ok(head) => {
                    trace.note(|| format!("asset {shown}: {}", status_text(head.status)));
                    failed.push(format!("{shown} ({})", status_text(head.status)));
                }
                Err(f) => {
                    trace.note(|| format!("asset {shown}: {}", f.message));
                    failed.push(format!("{shown} ({}: {})", f.reason, f.message));
                }
            }
        }
        trace.notes(|| sub.take_notes());
        if failed.is_empty() {
            Ok(checked)
        } else {
            Err(format!(
                "{} of {} the page references {} not load: {}",
                failed.len(),
                plural_assets(checked, "", ""),
                if failed.len() == 1 { "does" } else { "do" },
                failed.join(", ")
            ))
        }
    }
}

/// "1 asset loads", "3 assets load" (`one`/`many` empty: just the noun).
fn plural_assets(n: usize, one: &str, many: &str) -> String {
    let (noun, verb) = if n == 1 {
        ("asset", one)
    } else {
        ("assets", many)
    };
    if verb.is_empty() {
        format!("{n} {noun}")
    } else {
        format!("{n} {noun} {verb}")
    }
}

/// An asset's URL as shown: its path when it is on the page's origin.
fn shown_asset(page: &Url, asset: &Url) -> String {
    if asset.origin() == page.origin() {
        redact(&asset[url::Position::BeforePath..url::Position::AfterQuery]).into_owned()
    } else {
        redact(asset.as_str()).into_owned()
    }
}

/// The http(s) URLs of the scripts and stylesheets an HTML page references,
/// resolved against the page's URL, in order, each once.
fn asset_urls(page: &Url, html: &str) -> Vec<Url> {
    use std::sync::LazyLock;
    static TAG: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(?is)<(script|link)\b([^>]*)>").expect("valid regex"));
    static ATTR: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"(?is)\b(src|href|rel)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))"#)
            .expect("valid regex")
    });
    let mut out: Vec<Url> = Vec::new();
    for tag in TAG.captures_iter(html) {
        let is_script = tag[1].eq_ignore_ascii_case("script");
        let (mut src, mut href, mut rel) = (None, None, None);
        for a in ATTR.captures_iter(&tag[2]) {
            let value = a
                .get(2)
                .or(a.get(3))
                .or(a.get(4))
                .map_or("", |m| m.as_str());
            match a[1].to_ascii_lowercase().as_str() {
                "src" => src = Some(value.to_string()),
                "href" => href = Some(value.to_string()),
                _ => rel = Some(value.to_ascii_lowercase()),
            }
        }
        let target = if is_script {
            src
        } else if rel.as_deref().is_some_and(|r| {
            r.split_ascii_whitespace()
                .any(|w| matches!(w, "stylesheet" | "preload" | "modulepreload"))
        }) {
            href
        } else {
            None
        };
        let Some(t) = target.map(|t| t.replace("&amp;", "&")) else {
            continue;
        };
        if let Ok(u) = page.join(t.trim())
            && matches!(u.scheme(), "http" | "https")
            && !out.contains(&u)
        {
            out.push(u);
        }
    }
    out
}

/// The request of one hop.
#[derive(Clone)]
struct Prepared {
    url: Url,
    method: Method,
    headers: HeaderMap,
    body: ReqBody,
}

/// A request body.
#[derive(Clone, Debug, PartialEq)]
enum ReqBody {
    /// `body:` as written.
    Text(Bytes),
    /// `body_size:` zero bytes, made for each request rather than kept.
    Zeros(usize),
}

impl ReqBody {
    fn bytes(&self) -> Bytes {
        match self {
            ReqBody::Text(b) => b.clone(),
            ReqBody::Zeros(n) => Bytes::from(vec![0u8; *n]),
        }
    }
}

impl Prepared {
    /// Turns this request into the one a redirect asks for.
    fn follow(&mut self, status: StatusCode, next: Url) {
        let same_origin = next.origin() == self.url.origin();
        if !same_origin {
            for h in [
                header::AUTHORIZATION,
                header::PROXY_AUTHORIZATION,
                header::COOKIE,
                header::HOST,
            ] {
                self.headers.remove(h);
            }
        }
        let to_get = status == StatusCode::SEE_OTHER && self.method != Method::HEAD
            || matches!(status.as_u16(), 301 | 302) && self.method == Method::POST;
        if to_get {
            self.method = Method::GET;
            self.body = ReqBody::Text(Bytes::new());
            self.headers.remove(header::CONTENT_TYPE);
            self.headers.remove(header::CONTENT_LENGTH);
        }
        self.url = next;
    }
}

/// A response whose headers have arrived; the body is still on the wire.
struct Head {
    status: StatusCode,
    headers: HeaderMap,
    body: Incoming,
    peer: std::net::SocketAddr,
    cert: Option<CertInfo>,
    _conn: AbortOnDrop,
}

/// The final response, body read (up to the cap).
struct Received {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    /// The body went on past `max_body_bytes`.
    truncated: bool,
    cert: Option<CertInfo>,
}

/// Stops hyper's connection task when the exchange is over (or abandoned).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl HttpCheck {
    /// One hop: connect, send the request, wait for the response headers.
    async fn exchange(
        &self,
        req: &Prepared,
        trace: &mut Trace,
        deadline: Instant,
    ) -> Result<Head, Failure> {
        let url = &req.url;
        let https = url.scheme() == "https";
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_string(),
            Some(url::Host::Ipv4(a)) => a.to_string(),
            Some(url::Host::Ipv6(a)) => a.to_string(),
            None => {
                return Err(Failure::new(
                    Reason::ProtocolError,
                    format!("{} has no host", redact(url.as_str())),
                ));
            }
        };
        let port = url.port_or_known_default().unwrap_or(80);
        let tls = match (https, &self.tls) {
            (false, _) => None,
            (true, Some(t)) => Some(t),
            (true, None) => {
                return Err(Failure::new(
                    Reason::InternalError,
                    "TLS is not prepared for this check",
                ));
            }
        };
        let target = Target {
            host: &host,
            port,
            family: self.family,
            tls,
        };
        let conn = net::dial(&target, trace, deadline).await?;
        let peer = conn.peer;
        let cert = conn.cert.clone();
        let with_cert = |mut f: Failure| {
            f.cert = cert.clone().map(Box::new);
            f
        };

        let seen = Arc::new(Mutex::new(Vec::new()));
        let io = TokioIo::new(Recorder {
            inner: conn.stream,
            seen: seen.clone(),
        });
        let (mut sender, connection) =
            match hyper::client::conn::http1::handshake::<_, Full<Bytes>>(io).await {
                Ok(x) => x,
                Err(e) => {
                    return Err(with_cert(Failure::new(
                        Reason::InternalError,
                        format!("HTTP set-up failed: {}", net::error_chain(&e)),
                    )));
                }
            };
        let guard = AbortOnDrop(tokio::spawn(async move {
            let _ = connection.await;
        }));

        let request = self.request(req, &host, port).map_err(with_cert)?;
        trace.notes(|| {
            let line = format!(
                "> {} {} HTTP/1.1",
                request.method(),
                redact(&request.uri().to_string())
            );
            let headers = request
                .headers()
                .iter()
                .map(|(k, v)| format!("> {k}: {}", shown_value(k, v)));
            std::iter::once(line).chain(headers).collect()
        });
        let t = Instant::now();
        let sent = tokio::time::timeout_at(deadline, async {
            sender.ready().await?;
            sender.send_request(request).await
        })
        .await;
        trace.phase("processing", t.elapsed());
        let response = match sent {
            Err(_) => {
                return Err(with_cert(Failure::new(
                    Reason::Timeout,
                    format!(
                        "no response headers from {peer} within {} after sending the request",
                        secs(t.elapsed())
                    ),
                )));
            }
            Ok(Err(e)) => {
                let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
                return Err(with_cert(response_failure(&e, peer, &seen)));
            }
            Ok(Ok(r)) => r,
        };
        let (parts, body) = response.into_parts();
        trace.notes(|| {
            let line = format!(
                "< {:?} {} (headers after {})",
                parts.version,
                status_text(parts.status),
                secs(t.elapsed())
            );
            let headers = parts
                .headers
                .iter()
                .map(|(k, v)| format!("< {k}: {}", shown_value(k, v)));
            std::iter::once(line).chain(headers).collect()
        });
        Ok(Head {
            status: parts.status,
            headers: parts.headers,
            body,
            peer,
            cert,
            _conn: guard,
        })
    }

    fn request(
        &self,
        req: &Prepared,
        host: &str,
        port: u16,
    ) -> Result<Request<Full<Bytes>>, Failure> {
        let url = &req.url;
        let path = &url[url::Position::BeforePath..url::Position::AfterQuery];
        let mut builder = Request::builder().method(req.method.clone()).uri(path);
        if !req.headers.contains_key(header::HOST) {
            let h = if host.contains(':') {
                format!("[{host}]")
            } else {
                host.to_string()
            };
            let host_header = match url.port() {
                Some(p) if Some(p) != default_port(url.scheme()) => format!("{h}:{port}"),
                _ => h,
            };
            builder = builder.header(header::HOST, host_header);
        }
        let mut request = builder.body(Full::new(req.body.bytes())).map_err(|e| {
            Failure::new(
                Reason::InternalError,
                format!("cannot build the request for {}: {e}", redact(url.as_str())),
            )
        })?;
        for (k, v) in &req.headers {
            request.headers_mut().append(k, v.clone());
        }
        Ok(request)
    }

    /// Where to go next, when this response is a redirect to follow.
    fn redirect_target(&self, head: &Head, req: &Prepared) -> Option<Result<Url, Failure>> {
        if !self.follow_redirects || !matches!(head.status.as_u16(), 301 | 302 | 303 | 307 | 308) {
            return None;
        }
        let location = head.headers.get(header::LOCATION)?;
        let next = location
            .to_str()
            .ok()
            .and_then(|l| req.url.join(l).ok())
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
        Some(next.ok_or_else(|| {
            Failure::new(
                Reason::ProtocolError,
                format!(
                    "{} redirects to `{}`, which is not an http(s) URL",
                    redact(req.url.as_str()),
                    redact(&String::from_utf8_lossy(location.as_bytes()))
                ),
            )
        }))
    }

    /// Reads the body, up to `max_body` bytes.
    async fn read_body(
        &self,
        head: Head,
        trace: &mut Trace,
        deadline: Instant,
    ) -> Result<Received, Failure> {
        let Head {
            status,
            headers,
            mut body,
            peer,
            cert,
            _conn,
        } = head;
        let t = Instant::now();
        let mut buf: Vec<u8> = Vec::new();
        let mut truncated = false;
        let mut failure = None;
        loop {
            if body.is_end_stream() {
                break;
            }
            if buf.len() >= self.max_body {
                truncated = true;
                break;
            }
            match tokio::time::timeout_at(deadline, body.frame()).await {
                Err(_) => {
                    failure = Some(Failure::new(
                        Reason::Timeout,
                        format!(
                            "the response body from {peer} was still arriving after {} ({} bytes read)",
                            secs(t.elapsed()),
                            buf.len()
                        ),
                    ));
                    break;
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    failure = Some(Failure::new(
                        Reason::ProtocolError,
                        format!(
                            "the response body from {peer} broke off after {} bytes: {}",
                            buf.len(),
                            net::error_chain(&e)
                        ),
                    ));
                    break;
                }
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        let room = self.max_body - buf.len();
                        if data.len() > room {
                            buf.extend_from_slice(&data[..room]);
                            truncated = true;
                            break;
                        }
                        buf.extend_from_slice(&data);
                    }
                }
            }
        }
        drop(body);
        drop(_conn);
        trace.phase("transfer", t.elapsed());
        trace.note(|| {
            format!(
                "body: {} bytes in {}{}: `{}`",
                buf.len(),
                secs(t.elapsed()),
                if truncated {
                    format!(", cut at max_body_bytes ({})", self.max_body)
                } else {
                    String::new()
                },
                excerpt(&buf, 256)
            )
        });
        if let Some(mut f) = failure {
            f.cert = cert.map(Box::new);
            return Err(f);
        }
        Ok(Received {
            status,
            headers,
            body: Bytes::from(buf),
            truncated,
            cert,
        })
    }

    /// Every expectation the response breaks, worded.
    fn judge(&self, r: &Received, total: Duration) -> Vec<String> {
        let mut out = Vec::new();
        let code = r.status.as_u16();
        let status_ok = if self.expect.status.is_empty() {
            (200..=399).contains(&code)
        } else {
            self.expect.status.contains(&code)
        };
        if !status_ok {
            let expected = if self.expect.status.is_empty() {
                "200-399".to_string()
            } else {
                let v: Vec<String> = self.expect.status.iter().map(u16::to_string).collect();
                if v.len() == 1 {
                    v[0].clone()
                } else {
                    format!("one of {}", v.join(", "))
                }
            };
            let mut m = format!("status is {}", status_text(r.status));
            if r.status.is_redirection()
                && let Some(l) = r.headers.get(header::LOCATION)
            {
                m.push_str(&format!(
                    " (redirect to {})",
                    redact(&String::from_utf8_lossy(l.as_bytes()))
                ));
                if !self.follow_redirects {
                    m.push_str(&format!(
                        ", expected {expected}; set follow_redirects: true to follow it"
                    ));
                    out.push(m);
                    return self.judge_rest(r, total, out);
                }
            }
            m.push_str(&format!(", expected {expected}"));
            out.push(m);
        }
        self.judge_rest(r, total, out)
    }

    fn judge_rest(&self, r: &Received, total: Duration, mut out: Vec<String>) -> Vec<String> {
        for rule in &self.expect.header_rules {
            if let Some(m) = header_violation(rule, &r.headers) {
                out.push(m);
            }
        }
        let cut = if r.truncated {
            format!(" (first {} bytes, cut at max_body_bytes)", r.body.len())
        } else {
            String::new()
        };
        if let Some(prefix) = &self.expect.body_starts_with
            && !r.body.starts_with(prefix.as_bytes())
        {
            out.push(format!(
                "body starts with `{}`, expected `{}`",
                excerpt(&r.body, prefix.len().max(16)),
                excerpt(prefix.as_bytes(), 64)
            ));
        }
        if self.expect.body_matches.is_some() || self.expect.body_not_matches.is_some() {
            let text = String::from_utf8_lossy(&r.body);
            if let Some(re) = &self.expect.body_matches
                && !re.is_match(&text)
            {
                out.push(format!(
                    "body{cut} does not match `{}`; it starts with `{}`",
                    re.as_str(),
                    excerpt(&r.body, 80)
                ));
            }
            if let Some(re) = &self.expect.body_not_matches
                && let Some(m) = re.find(&text)
            {
                out.push(format!(
                    "body matches `{}` at byte {} (`{}`), expected not to",
                    re.as_str(),
                    m.start(),
                    excerpt(m.as_str().as_bytes(), 80)
                ));
            }
        }
        if !self.expect.json.is_empty() {
            match serde_json::from_slice::<serde_json::Value>(&r.body) {
                Err(_) if r.truncated => out.push(format!(
                    "the body was cut at max_body_bytes ({} bytes) before its end, so its JSON cannot be read: raise max_body_bytes",
                    r.body.len()
                )),
                Err(e) => out.push(format!(
                    "body is not JSON ({e}); it starts with `{}`",
                    excerpt(&r.body, 80)
                )),
                Ok(doc) => {
                    for j in &self.expect.json {
                        if let Some(m) = json_violation(j, &doc) {
                            out.push(m);
                        }
                    }
                }
            }
        }
        if let Some(max) = self.expect.max_response_time
            && total > max
        {
            out.push(format!(
                "response took {}, expected at most {} (max_response_time)",
                secs(total),
                Dur(max)
            ));
        }
        if let Some(days) = self.expect.cert_min_days {
            match &r.cert {
                Some(c) => {
                    if let Some(m) = c.expiry_violation(days, SystemTime::now()) {
                        out.push(m);
                    }
                }
                None => out.push(
                    "cert_min_days is set, but the final response came over plain HTTP (no certificate)"
                        .to_string(),
                ),
            }
        }
        out
    }

    /// The result of a run that did not get a whole response.
    fn failed(
        &self,
        f: Failure,
        status: Option<StatusCode>,
        redirects: usize,
        trace: &mut Trace,
    ) -> Outcome {
        let mut samples = phase_samples(trace);
        samples.push(status_sample(status));
        samples.push(redirects_sample(redirects));
        if let Some(c) = &f.cert {
            samples.push(c.sample());
        }
        trace.note(|| format!("failed: {}", f.message));
        let notes = trace.take_notes();
        f.into_outcome()
            .with_samples(samples)
            .with_observations(notes)
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// `200 OK`, `599` (no canonical reason).
fn status_text(s: StatusCode) -> String {
    match s.canonical_reason() {
        Some(r) => format!("{} {r}", s.as_u16()),
        None => s.as_u16().to_string(),
    }
}

fn phase_samples(trace: &Trace) -> Vec<Sample> {
    PHASES
        .iter()
        .map(|p| Sample {
            family: &PHASE_DURATION,
            labels: vec![("phase", (*p).to_string())],
            value: trace.get(p).as_secs_f64(),
        })
        .collect()
}

fn status_sample(status: Option<StatusCode>) -> Sample {
    Sample {
        family: &STATUS_CODE,
        labels: Vec::new(),
        value: status.map_or(0.0, |s| f64::from(s.as_u16())),
    }
}

fn redirects_sample(n: usize) -> Sample {
    Sample {
        family: &REDIRECTS,
        labels: Vec::new(),
        value: n as f64,
    }
}

/// Headers whose values are never shown (credentials, session cookies).
fn is_sensitive(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "authorization" | "proxy-authorization" | "cookie" | "set-cookie"
    ) || is_secret_key(&name.as_str().replace('-', "_"))
}

/// A header value as shown in observations and messages.
fn shown_value(name: &HeaderName, value: &HeaderValue) -> String {
    if is_sensitive(name) {
        MASK.to_string()
    } else {
        redact(&String::from_utf8_lossy(value.as_bytes())).into_owned()
    }
}

fn header_violation(rule: &HeaderRule, headers: &HeaderMap) -> Option<String> {
    let name = &rule.name;
    let values: Vec<String> = headers
        .get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    let display = canonical(name);
    let (value, shown) = if values.is_empty() {
        (None, String::new())
    } else {
        let v = values.join(", ");
        let shown = if is_sensitive(name) {
            MASK.to_string()
        } else {
            excerpt(v.as_bytes(), 200)
        };
        (Some(v), shown)
    };
    if rule.absent {
        return value.map(|_| format!("header {display} is `{shown}`, expected to be absent"));
    }
    let Some(value) = value else {
        let what = if let Some(re) = &rule.matches {
            format!("expected to match `{}`", re.as_str())
        } else if let Some(eq) = &rule.equals {
            format!("expected `{eq}`")
        } else if rule.not_matches.is_some() {
            // Absent is fine for a "must not match" rule.
            return None;
        } else {
            "expected to be present".to_string()
        };
        return Some(format!("header {display} is absent, {what}"));
    };
    if let Some(eq) = &rule.equals
        && &value != eq
    {
        return Some(format!("header {display} is `{shown}`, expected `{eq}`"));
    }
    if let Some(re) = &rule.matches
        && !re.is_match(&value)
    {
        return Some(format!(
            "header {display} is `{shown}`, expected to match `{}`",
            re.as_str()
        ));
    }
    if let Some(re) = &rule.not_matches
        && re.is_match(&value)
    {
        return Some(format!(
            "header {display} is `{shown}`, expected not to match `{}`",
            re.as_str()
        ));
    }
    None
}

/// `cache-control` as people write it: `Cache-Control`.
fn canonical(name: &HeaderName) -> String {
    name.as_str()
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

fn json_violation(rule: &JsonExpect, doc: &serde_json::Value) -> Option<String> {
    let p = &rule.pointer;
    let Some(v) = doc.pointer(p) else {
        return Some(format!("JSON {p} is missing"));
    };
    let want = rule.equals.as_ref()?;
    if json_equals(v, want) {
        return None;
    }
    let seen = serde_json::to_string(v).unwrap_or_default();
    Some(format!(
        "JSON {p} is `{}`, expected `{want}`",
        excerpt(seen.as_bytes(), 120)
    ))
}

/// Compares a JSON value with a scalar written in YAML (`ok`, `200`, `true`).
fn json_equals(v: &serde_json::Value, want: &str) -> bool {
    use serde_json::Value as V;
    match v {
        V::String(s) => s == want,
        V::Number(n) => {
            n.to_string() == want
                || matches!((n.as_f64(), want.parse::<f64>()), (Some(a), Ok(b)) if a == b)
        }
        V::Bool(b) => want == if *b { "true" } else { "false" },
        V::Null => want == "null" || want == "~",
        other => serde_json::to_string(other).is_ok_and(|s| s == want),
    }
}

/// Classifies an error that came instead of response headers.
fn response_failure(e: &hyper::Error, peer: std::net::SocketAddr, seen: &[u8]) -> Failure {
    let starts = if seen.is_empty() {
        String::new()
    } else {
        format!("; it starts with `{}`", excerpt(seen, SEEN_BYTES))
    };
    // Whatever hyper makes of it, an answer that does not start like an HTTP
    // status line is not HTTP (an SSH banner, a database greeting, TLS).
    let http_like = b"HTTP/".starts_with(&seen[..seen.len().min(5)]);
    if !http_like {
        return Failure::new(
            Reason::ProtocolError,
            format!("the answer from {peer} is not HTTP{starts}"),
        );
    }
    if e.is_parse() || e.is_parse_status() || e.is_parse_too_large() {
        return Failure::new(
            Reason::ProtocolError,
            format!(
                "the answer from {peer} is not valid HTTP ({}){starts}",
                net::error_chain(e)
            ),
        );
    }
    if e.is_incomplete_message() || e.is_closed() || e.is_canceled() {
        let m = if seen.is_empty() {
            format!("{peer} closed the connection without answering the request")
        } else {
            format!("{peer} closed the connection in the middle of the response headers{starts}")
        };
        return Failure::new(Reason::ProtocolError, m);
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<io::Error>() {
            let reason = match Reason::from_io(io) {
                Reason::InternalError => Reason::ProtocolError,
                r => r,
            };
            return Failure::new(
                reason,
                format!("connection to {peer} failed while waiting for the response: {io}"),
            );
        }
        source = s.source();
    }
    Failure::new(
        Reason::ProtocolError,
        format!(
            "no valid response from {peer}: {}{starts}",
            net::error_chain(e)
        ),
    )
}

/// Keeps the first bytes read from the server, to show them when the answer
/// is not HTTP.
struct Recorder {
    inner: Stream,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl AsyncRead for Recorder {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r
            && let Ok(mut seen) = this.seen.lock()
            && seen.len() < SEEN_BYTES
        {
            let new = &buf.filled()[before..];
            let take = new.len().min(SEEN_BYTES - seen.len());
            seen.extend_from_slice(&new[..take]);
        }
        r
    }
}

impl AsyncWrite for Recorder {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::support::testing::{build, build_errors};

    fn rule(yaml: &str) -> HeaderRule {
        build::<HttpCheck>(&format!(
            "{{url: 'http://x/', expect: {{headers: [{yaml}]}}}}"
        ))
        .unwrap_or_else(|_| panic!("bad rule"))
        .expect
        .header_rules
        .remove(0)
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn defaults() {
        let node = crate::config::yaml::parse("{url: 'https://x/'}")
            .unwrap()
            .unwrap();
        let s: HttpSpec =
            crate::config::yaml::from_node(&node, "", &|t| Ok(t.to_string())).unwrap();
        assert_eq!(s.method, "GET");
        assert!(!s.follow_redirects);
        assert_eq!(s.max_body_bytes, 1 << 20);
        assert!(s.tls.verify);
        assert_eq!(s.ip_family, IpFamily::Ipv4First);
    }

    #[test]
    fn every_bad_field_is_reported_with_its_path() {
        let (errs, paths) = build_errors::<HttpCheck>(
            r#"{url: "ftp://x/", method: "GE T", headers: {"Bad Name": x},
                expect: {status: [700], headers: [{name: X, absent: true, matches: a}, {name: Y, not_matches: "("}],
                         body_matches: "[", json: [{pointer: status}], max_response_time: 10s}}"#,
        );
        assert_eq!(
            paths,
            [
                "url",
                "method",
                "headers.Bad Name",
                "expect.status[0]",
                "expect.headers[0].absent",
                "expect.headers[1].not_matches",
                "expect.body_matches",
                "expect.json[0].pointer",
                "expect.max_response_time",
            ]
        );
        assert!(
            errs[8]
                .message
                .contains("not below the check's timeout (5s)")
        );
    }

    #[test]
    fn urls_in_errors_are_redacted_and_credentials_refused() {
        let (errs, _) = build_errors::<HttpCheck>("{url: 'http://[bad/?secret=hunter22'}");
        assert!(!errs[0].message.contains("hunter22"), "{}", errs[0].message);
        let (errs, _) = build_errors::<HttpCheck>("{url: 'http://user:pw-canary@x/'}");
        assert!(errs[0].message.contains("credentials in the URL"));
        assert!(!errs[0].message.contains("pw-canary"));
        let (errs, _) =
            build_errors::<HttpCheck>("{url: 'http://x/', expect: {cert_min_days: 20}}");
        assert_eq!(errs[0].path, "expect.cert_min_days");
        let (errs, _) = build_errors::<HttpCheck>("{url: 'http://x/', tls: {verify: false}}");
        assert_eq!(errs[0].path, "tls");
    }

    #[test]
    fn header_messages_say_what_was_seen_and_expected() {
        let h = headers(&[
            ("cache-control", "public, max-age=60"),
            ("x-powered-by", "PHP/8.2"),
        ]);
        assert_eq!(
            header_violation(&rule("{name: Cache-Control, matches: no-store}"), &h).unwrap(),
            "header Cache-Control is `public, max-age=60`, expected to match `no-store`"
        );
        assert_eq!(
            header_violation(&rule("{name: X-Powered-By, absent: true}"), &h).unwrap(),
            "header X-Powered-By is `PHP/8.2`, expected to be absent"
        );
        assert_eq!(
            header_violation(&rule("{name: Pragma, equals: no-cache}"), &h).unwrap(),
            "header Pragma is absent, expected `no-cache`"
        );
        assert_eq!(
            header_violation(&rule("{name: cache-control, not_matches: public}"), &h).unwrap(),
            "header Cache-Control is `public, max-age=60`, expected not to match `public`"
        );
        assert_eq!(
            header_violation(&rule("{name: Vary}"), &h).unwrap(),
            "header Vary is absent, expected to be present"
        );
        assert!(header_violation(&rule("{name: Vary, not_matches: x}"), &h).is_none());
        assert!(header_violation(&rule("{name: Cache-Control, matches: max-age}"), &h).is_none());
    }

    #[test]
    fn repeated_headers_are_joined_and_secrets_hidden() {
        let h = headers(&[
            ("set-cookie", "session=s3cr3t-canary"),
            ("vary", "a"),
            ("vary", "b"),
        ]);
        assert!(header_violation(&rule("{name: Vary, equals: 'a, b'}"), &h).is_none());
        let m = header_violation(&rule("{name: Set-Cookie, absent: true}"), &h).unwrap();
        assert_eq!(
            m,
            "header Set-Cookie is `<redacted>`, expected to be absent"
        );
        let h = headers(&[("x-debug-token", "abc123")]);
        let m = header_violation(&rule("{name: X-Debug-Token, absent: true}"), &h).unwrap();
        assert_eq!(
            m,
            "header X-Debug-Token is `<redacted>`, expected to be absent"
        );
        let name = HeaderName::from_static("x-auth-token");
        assert_eq!(shown_value(&name, &HeaderValue::from_static("t")), MASK);
        let name = HeaderName::from_static("content-type");
        assert_eq!(
            shown_value(&name, &HeaderValue::from_static("text/html")),
            "text/html"
        );
    }

    #[test]
    fn json_scalars_compare_as_written() {
        let doc: serde_json::Value = serde_json::from_str(
            r#"{"status":"ok","code":200,"ratio":1.0,"up":true,"none":null,"l":[1,2]}"#,
        )
        .unwrap();
        let j = |p: &str, eq: Option<&str>| JsonExpect {
            pointer: p.into(),
            equals: eq.map(str::to_string),
        };
        assert!(json_violation(&j("/status", Some("ok")), &doc).is_none());
        assert!(json_violation(&j("/code", Some("200")), &doc).is_none());
        assert!(json_violation(&j("/ratio", Some("1")), &doc).is_none());
        assert!(json_violation(&j("/up", Some("true")), &doc).is_none());
        assert!(json_violation(&j("/none", Some("null")), &doc).is_none());
        assert!(json_violation(&j("/l", Some("[1,2]")), &doc).is_none());
        assert!(json_violation(&j("/l/1", None), &doc).is_none());
        assert_eq!(
            json_violation(&j("/status", Some("healthy")), &doc).unwrap(),
            "JSON /status is `\"ok\"`, expected `healthy`"
        );
        assert_eq!(
            json_violation(&j("/db", None), &doc).unwrap(),
            "JSON /db is missing"
        );
    }

    #[test]
    fn redirects_drop_credentials_across_origins() {
        let mut req = Prepared {
            url: Url::parse("http://a.test/login").unwrap(),
            method: Method::POST,
            headers: headers(&[
                ("authorization", "Bearer x"),
                ("content-type", "text/plain"),
            ]),
            body: ReqBody::Text(Bytes::from_static(b"x")),
        };
        req.follow(StatusCode::FOUND, Url::parse("http://a.test/home").unwrap());
        assert_eq!(req.method, Method::GET);
        assert!(req.body.bytes().is_empty());
        assert!(req.headers.contains_key(header::AUTHORIZATION));
        req.follow(
            StatusCode::TEMPORARY_REDIRECT,
            Url::parse("https://b.test/").unwrap(),
        );
        assert!(!req.headers.contains_key(header::AUTHORIZATION));
    }

    #[test]
    fn canonical_names() {
        assert_eq!(
            canonical(&HeaderName::from_static("cache-control")),
            "Cache-Control"
        );
        assert_eq!(canonical(&HeaderName::from_static("etag")), "Etag");
    }

    #[test]
    fn body_size_sends_zeros_and_excludes_body() {
        let c = build::<HttpCheck>("{url: 'http://x/up', method: POST, body_size: 1048577}")
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(c.request.body, ReqBody::Zeros(1048577));
        let bytes = c.request.body.bytes();
        assert_eq!(bytes.len(), 1048577);
        assert!(bytes.iter().all(|b| *b == 0));
        assert_eq!(
            c.request.headers[header::CONTENT_TYPE],
            "application/octet-stream"
        );
        let c = build::<HttpCheck>(
            "{url: 'http://x/up', body_size: 3, headers: {Content-Type: image/png}}",
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(c.request.headers[header::CONTENT_TYPE], "image/png");

        let (errs, paths) = build_errors::<HttpCheck>("{url: 'http://x/', body: a, body_size: 3}");
        assert_eq!(paths, ["body_size"]);
        assert!(errs[0].message.contains("not both"), "{}", errs[0].message);
        let (errs, paths) = build_errors::<HttpCheck>("{url: 'http://x/', body_size: 1073741825}");
        assert_eq!(paths, ["body_size"]);
        assert!(errs[0].message.contains("1 GiB"), "{}", errs[0].message);
    }

    #[test]
    fn asset_urls_of_a_page() {
        let page = Url::parse("https://social.example/about").unwrap();
        let html = r#"<!doctype html><html><head>
<link rel="stylesheet" media="all" href="/packs/css/common-4e5f.css" crossorigin="anonymous">
<link rel='modulepreload' href='/packs/assets/locale-en-1a2b.js'>
<link rel="icon" href="/favicon.ico">
<link href="https://cdn.example/packs/css/skin-9a.css" rel="preload stylesheet">
<script src="/packs/js/application-3f9c.js" crossorigin="anonymous" integrity="sha256-x"></script>
<SCRIPT SRC=relative.js></SCRIPT>
<script>inline()</script>
<script src="data:text/javascript,1"></script>
<script src="/packs/js/application-3f9c.js"></script>
<a href="/packs/not-an-asset.js">x</a>
</head></html>"#;
        let got: Vec<String> = asset_urls(&page, html)
            .iter()
            .map(|u| u.to_string())
            .collect();
        assert_eq!(
            got,
            [
                "https://social.example/packs/css/common-4e5f.css",
                "https://social.example/packs/assets/locale-en-1a2b.js",
                "https://cdn.example/packs/css/skin-9a.css",
                "https://social.example/packs/js/application-3f9c.js",
                "https://social.example/relative.js",
            ]
        );
        assert_eq!(
            shown_asset(
                &page,
                &Url::parse("https://social.example/a.js?v=1").unwrap()
            ),
            "/a.js?v=1"
        );
        assert_eq!(
            shown_asset(&page, &Url::parse("https://cdn.example/a.js").unwrap()),
            "https://cdn.example/a.js"
        );
        assert_eq!(plural_assets(1, "loads", "load"), "1 asset loads");
        assert_eq!(plural_assets(3, "", ""), "3 assets");
    }
}
