//! The HTTP server (hyper): `/metrics`, `/-/healthy`, `/-/ready`,
//! `/api/v1/checks`, `/probe` and the status page at `/`; with a web config,
//! over TLS and behind basic auth ([`crate::web_config`]).
//!
//! Requests are small and bounded: headers must arrive within
//! [`HEADER_TIMEOUT`] and fit in [`MAX_HEADER_BYTES`], request bodies are not
//! read beyond [`MAX_BODY_BYTES`], and every response is built from the store
//! without waiting on a scheduled probe.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::agent::{Agent, PushResult};
use crate::exposition;
use crate::modules::ModuleError;
use crate::view::CheckView;
use crate::web_config::{self, Web, WebConfig};

/// Time allowed for a client to send its request headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head accepted.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

type Body = Full<Bytes>;

/// Serves until `stop` is cancelled.
pub async fn serve(listener: TcpListener, agent: Arc<Agent>, stop: CancellationToken) {
    serve_with(listener, agent, None, stop).await
}

/// Serves until `stop` is cancelled, with TLS and basic auth when a web
/// config is given (see [`crate::web_config`]).
pub async fn serve_with(
    listener: TcpListener,
    agent: Arc<Agent>,
    web: Option<Arc<Web>>,
    stop: CancellationToken,
) {
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => return,
        };
        let agent = agent.clone();
        let stop = stop.clone();
        let web = web.clone();
        tokio::spawn(async move {
            let cfg = web.as_ref().map(|w| w.for_connection());
            let tls = cfg.as_ref().and_then(|c| c.tls.clone());
            match tls {
                None => connection(stream, agent, web, cfg, stop).await,
                Some(tls) => {
                    if !looks_like_tls(&stream).await {
                        // Like Go's servers: say so instead of a handshake error.
                        let mut stream = stream;
                        let _ = stream
                            .write_all(b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
                            .await;
                        let _ = stream.shutdown().await;
                        return;
                    }
                    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
                    match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => connection(s, agent, web, cfg, stop).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

/// Whether the first byte a client sends opens a TLS handshake record.
async fn looks_like_tls(stream: &tokio::net::TcpStream) -> bool {
    let mut first = [0u8; 1];
    match tokio::time::timeout(HEADER_TIMEOUT, stream.peek(&mut first)).await {
        Ok(Ok(1)) => first[0] == 0x16,
        // Let the handshake report what is wrong.
        _ => true,
    }
}

/// Serves the requests of one connection.
async fn connection<IO>(
    io: IO,
    agent: Arc<Agent>,
    web: Option<Arc<Web>>,
    cfg: Option<Arc<WebConfig>>,
    stop: CancellationToken,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| {
        let agent = agent.clone();
        let web = web.clone();
        let cfg = cfg.clone();
        async move {
            let resp = match (&web, &cfg) {
                (Some(web), Some(cfg)) => guarded(&agent, web, cfg, req).await,
                _ => route(&agent, req).await,
            };
            Ok::<_, Infallible>(resp)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES.max(8192))
        .serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stop.cancelled() => conn.as_mut().graceful_shutdown(),
    }
}

/// Basic auth in front of [`route`], and the web config's extra headers.
async fn guarded(
    agent: &Arc<Agent>,
    web: &Web,
    cfg: &WebConfig,
    req: Request<Incoming>,
) -> Response<Body> {
    let mut resp = if web_config::is_public(req.uri().path())
        || web
            .authorize(cfg, req.headers().get(header::AUTHORIZATION))
            .await
    {
        route(agent, req).await
    } else {
        tracing::debug!(path = %crate::redact::redact(req.uri().path()), "unauthorized request");
        let _ = Limited::new(req.into_body(), MAX_BODY_BYTES)
            .collect()
            .await;
        let mut r = text(StatusCode::UNAUTHORIZED, "Unauthorized\n");
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"healthprobe\", charset=\"UTF-8\""),
        );
        r
    };
    for (k, v) in &cfg.headers {
        resp.headers_mut().insert(k.clone(), v.clone());
    }
    resp
}

/// Builds a response from every check on the blocking pool, two at a time.
///
/// The JSON API and the status page walk every check: with 10,000 checks,
/// tens of milliseconds of CPU each. On the async workers a client polling
/// them would delay the checks' timers, as `/metrics` did before its shared
/// render; here they queue behind each other and the scheduler keeps its
/// workers.
async fn off_the_workers<F>(build: F) -> Response<Body>
where
    F: FnOnce() -> Response<Body> + Send + 'static,
{
    static TURNS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);
    let Ok(_turn) = TURNS.acquire().await else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "Shutting down\n");
    };
    match tokio::task::spawn_blocking(build).await {
        Ok(response) => response,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => text(StatusCode::SERVICE_UNAVAILABLE, "Shutting down\n"),
    }
}

/// Dispatches one request.
pub async fn route(agent: &Arc<Agent>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let method = req.method().clone();
    let get = method == Method::GET || method == Method::HEAD;
    match path.as_str() {
        "/metrics" if get => {
            let a = agent.clone();
            let render = move |buf| {
                let started = std::time::Instant::now();
                let page = exposition::render_into(&a.store, &a.metrics, buf);
                a.metrics
                    .render_duration
                    .observe(started.elapsed().as_secs_f64());
                page
            };
            let gzip = req
                .headers()
                .get_all(header::ACCEPT_ENCODING)
                .iter()
                .any(|v| v.to_str().is_ok_and(exposition::accepts_gzip));
            let mut resp = if gzip {
                let body = agent
                    .gzipped_page
                    .page(move |buf| exposition::gzip(&render(buf)))
                    .await;
                let mut r = respond(StatusCode::OK, exposition::CONTENT_TYPE, body);
                r.headers_mut().insert(
                    header::CONTENT_ENCODING,
                    header::HeaderValue::from_static("gzip"),
                );
                r
            } else {
                let body = agent.page.page(render).await;
                respond(StatusCode::OK, exposition::CONTENT_TYPE, body)
            };
            resp.headers_mut().insert(
                header::VARY,
                header::HeaderValue::from_static("Accept-Encoding"),
            );
            resp
        }
        "/-/healthy" if get => text(StatusCode::OK, "Healthy\n"),
        "/-/ready" if get => {
            if agent.is_ready() {
                text(StatusCode::OK, "Ready\n")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "Not ready\n")
            }
        }
        "/api/v1/checks" if get => {
            let a = agent.clone();
            off_the_workers(move || {
                let mut views: Vec<CheckView> = a
                    .store
                    .slots()
                    .iter()
                    .map(|s| CheckView::of_slot(s))
                    .collect();
                views.sort_by_key(CheckView::sort_key);
                let body = serde_json::to_vec_pretty(&serde_json::json!({ "checks": views }))
                    .unwrap_or_default();
                respond(StatusCode::OK, "application/json", body)
            })
            .await
        }
        "/probe" if get => probe(agent, &query).await,
        "/" if get => {
            let a = agent.clone();
            off_the_workers(move || {
                let views: Vec<CheckView> = a
                    .store
                    .slots()
                    .iter()
                    .map(|s| CheckView::of_slot(s))
                    .collect();
                let page = crate::status_page::render(
                    &a.packs(),
                    &views,
                    &crate::status_page::Context::here(),
                );
                respond(
                    StatusCode::OK,
                    "text/html; charset=utf-8",
                    page.into_bytes(),
                )
            })
            .await
        }
        p if p.starts_with("/push/") => push(agent, req).await,
        "/-/reload" if method == Method::POST || method == Method::PUT => {
            match agent.reload().await {
                Ok(s) => text(
                    StatusCode::OK,
                    &format!(
                        "Reloaded: {} kept, {} restarted, {} added, {} removed\n",
                        s.kept, s.restarted, s.added, s.removed
                    ),
                ),
                Err(errors) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!(
                        "Reload rejected, the running configuration is kept:\n{}\n",
                        crate::redact::redact(&errors.to_string())
                    ),
                ),
            }
        }
        "/-/reload" => {
            let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "Use POST to reload\n");
            r.headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static("POST, PUT"));
            r
        }
        "/metrics" | "/-/healthy" | "/-/ready" | "/api/v1/checks" | "/probe" | "/" => {
            let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed\n");
            r.headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
            r
        }
        _ => {
            // Drain a bounded body so keep-alive connections stay usable.
            let _ = Limited::new(req.into_body(), MAX_BODY_BYTES)
                .collect()
                .await;
            text(
                StatusCode::NOT_FOUND,
                "Not found: see / for the status page, /metrics for metrics\n",
            )
        }
    }
}

/// `POST /push/PACK/NAME`: a heartbeat, with `Authorization: Bearer TOKEN`
/// or `?token=TOKEN`.
async fn push(agent: &Agent, req: Request<Incoming>) -> Response<Body> {
    if req.method() != Method::POST && req.method() != Method::PUT {
        let mut r = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "Use POST to push a heartbeat\n",
        );
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("POST, PUT"));
        return r;
    }
    let id = req.uri().path().trim_start_matches("/push/").to_string();
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let token = bearer.or_else(|| {
        parse_query(req.uri().query().unwrap_or(""))
            .into_iter()
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v)
    });
    let _ = Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await;
    match agent.push(&id, token.as_deref()) {
        PushResult::Recorded => text(StatusCode::ACCEPTED, "Recorded\n"),
        PushResult::Unauthorized => text(StatusCode::UNAUTHORIZED, "Missing or wrong token\n"),
        PushResult::NotHeartbeat => text(StatusCode::CONFLICT, "That check is not a heartbeat\n"),
        PushResult::Unknown => text(StatusCode::NOT_FOUND, "No such check\n"),
    }
}

/// `/probe?check=PACK/NAME[&debug=true]`: runs one configured check now.
async fn probe(agent: &Agent, query: &str) -> Response<Body> {
    let params = parse_query(query);
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let debug = param("debug").is_some_and(|v| v == "true");
    let result = match (param("check"), param("module"), param("target")) {
        (Some(id), None, _) => match agent.probe_now(&id, debug).await {
            Some(r) => r,
            None => {
                return text(
                    StatusCode::NOT_FOUND,
                    &format!(
                        "No check `{}` is configured (see /api/v1/checks)\n",
                        crate::redact::redact(&id)
                    ),
                );
            }
        },
        (None, Some(module), Some(target)) => {
            match agent.probe_module(&module, &target, debug).await {
                Ok(r) => r,
                Err(ModuleError::UnknownModule(m)) => {
                    return text(
                        StatusCode::BAD_REQUEST,
                        &format!("Unknown module `{}`\n", crate::redact::redact(&m)),
                    );
                }
                Err(ModuleError::TargetNotAllowed(t)) => {
                    return text(
                        StatusCode::FORBIDDEN,
                        &format!(
                            "Target `{}` is not allowed: it matches none of probe.allow_targets\n",
                            crate::redact::redact(&t)
                        ),
                    );
                }
                Err(ModuleError::Invalid(m)) => {
                    return text(
                        StatusCode::BAD_REQUEST,
                        &format!("{}\n", crate::redact::redact(&m)),
                    );
                }
            }
        }
        _ => {
            return text(
                StatusCode::BAD_REQUEST,
                "Use /probe?check=PACK/NAME, or /probe?module=MODULE&target=TARGET\n",
            );
        }
    };
    let (slot, record) = result;
    let mut out = Vec::new();
    if debug {
        out.extend_from_slice(
            format!(
                "Probe of {} ({})\n",
                slot.meta.id(),
                slot.meta.kind.as_str()
            )
            .as_bytes(),
        );
        for o in &record.outcome.observations {
            out.extend_from_slice(crate::redact::redact(o).as_bytes());
            out.push(b'\n');
        }
        out.extend_from_slice(
            format!(
                "Result: {} ({}): {}\n\nMetrics that would be returned:\n",
                if record.outcome.success() {
                    "success"
                } else {
                    "failure"
                },
                record.outcome.reason,
                crate::redact::redact(&record.outcome.message)
            )
            .as_bytes(),
        );
    }
    exposition::checks::render_probe(&slot, &record, &mut out);
    respond(StatusCode::OK, exposition::CONTENT_TYPE, out)
}

/// Splits and percent-decodes a query string.
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                if let Some(b) = hex {
                    out.push(b);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    r
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    respond(
        status,
        "text/plain; charset=utf-8",
        body.as_bytes().to_vec(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_queries() {
        assert_eq!(
            parse_query("check=a%2Fb&debug=true"),
            vec![
                ("check".into(), "a/b".into()),
                ("debug".into(), "true".into())
            ]
        );
        assert_eq!(parse_query("x=%zz%4"), vec![("x".into(), "%zz%4".into())]);
        assert_eq!(parse_query("x=a+b%20c"), vec![("x".into(), "a b c".into())]);
    }
}
