//! The `http` kind against real servers on loopback: nginx (from
//! `support::nginx`, configured here) for what a real web server does
//! (cache headers on a PDF, redirects, JSON, cookies, TLS with good and bad
//! certificates, a slow and a hanging upstream), and small tokio servers for
//! what nginx cannot be made to do (never answer, drip, send garbage, send
//! an endless body, listen on `[::1]` only).
//!
//! Every check runs through `runner::execute` as the agent runs it, so a
//! test also proves the check ends within its timeout with its own message.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use healthprobe::checks::{Outcome, Reason};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::probe_util::assert_outcome;
use crate::support::certs::{Certs, KeyPair};
use crate::support::nginx::{Nginx, NginxOptions};

/// Runs the check `kind: {kind}` with the flow-style block `block` and this
/// `timeout` through `probe_util::run` (as the agent runs it, debug on);
/// returns the outcome and how long the run took.
pub(crate) async fn run_check(kind: &str, block: &str, timeout: Duration) -> (Outcome, Duration) {
    let yaml = format!(
        "name: t\nkind: {kind}\ntimeout: {}ms\n{kind}: {block}\n",
        timeout.as_millis()
    );
    let started = Instant::now();
    let outcome = crate::probe_util::run(&yaml).await;
    (outcome, started.elapsed())
}

/// The value of a kind-specific sample, by family name and labels.
pub(crate) fn sample(o: &Outcome, family: &str, labels: &[(&str, &str)]) -> Option<f64> {
    o.samples
        .iter()
        .find(|s| {
            s.family.name == family
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|s| s.value)
}

/// Runs the check with the 5s timeout and asserts its reason and message
/// fragments (see [`assert_outcome`]); returns the outcome for more checks.
pub(crate) async fn check(kind: &str, block: &str, reason: Reason, fragments: &[&str]) -> Outcome {
    let (o, _) = run_check(kind, block, T5).await;
    assert_outcome(&o, reason, fragments);
    o
}

/// A tokio server on `addr` running `handler` for each connection; returns
/// its address. It lives as long as the test's runtime.
pub(crate) async fn serve<F, Fut>(addr: &str, handler: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind(addr).await.unwrap();
    let local = listener.local_addr().unwrap();
    let handler = Arc::new(handler);
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(handler(sock));
        }
    });
    local
}

/// Reads a request's head (up to the blank line).
pub(crate) async fn read_head(sock: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut b = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match sock.read(&mut b).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&b[..n]),
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// A port on 127.0.0.1 where nothing listens.
pub(crate) fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

const PDF: &[u8] = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n";

/// nginx as an Invoice Ninja host would run it, plus a slow and a hanging
/// upstream behind `proxy_pass`.
async fn app_nginx() -> Nginx {
    let slow = serve("127.0.0.1:0", |mut s| async move {
        read_head(&mut s).await;
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nslow\n")
            .await;
    })
    .await;
    let hang = serve("127.0.0.1:0", |mut s| async move {
        read_head(&mut s).await;
        tokio::time::sleep(Duration::from_secs(3600)).await;
        drop(s);
    })
    .await;
    let server = format!(
        r#"
        location = /invoice.pdf {{ add_header Cache-Control no-store; }}
        location = /cached.pdf {{ add_header Cache-Control "public, max-age=60"; }}
        location = /old {{ return 301 /invoice.pdf; }}
        location = /loop {{ return 302 /loop; }}
        location = /health.json {{
            default_type application/json;
            return 200 '{{"status":"degraded","db":{{"ok":true,"latency_ms":3}}}}';
        }}
        location = /cookie {{
            add_header Set-Cookie "session=sess-canary-4242; HttpOnly";
            add_header X-Powered-By "PHP/8.2";
            return 200 "hello from nginx\n";
        }}
        location = /error {{ return 500 "Whoops, looks like something went wrong.\n"; }}
        location /slow/ {{ proxy_pass http://{slow}; }}
        location /hang/ {{ proxy_pass http://{hang}; proxy_read_timeout 60s; }}
        "#
    );
    let nginx = nginx_with(server).await;
    std::fs::write(nginx.html_dir().join("invoice.pdf"), PDF).unwrap();
    std::fs::write(nginx.html_dir().join("cached.pdf"), PDF).unwrap();
    nginx
}

/// nginx with this `server { }` body, started off the async runtime.
async fn nginx_with(server: String) -> Nginx {
    tokio::task::spawn_blocking(move || {
        Nginx::start_with(NginxOptions {
            server,
            ..Default::default()
        })
    })
    .await
    .unwrap()
}

const PHASES: [&str; 5] = ["resolve", "connect", "tls", "processing", "transfer"];
pub(crate) const T5: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_pdf_with_no_store_passes_and_exports_phases() {
    let n = app_nginx().await;
    let block = format!(
        "{{url: '{}', expect: {{status: [200], headers: [{{name: Cache-Control, matches: no-store}}, \
         {{name: X-Debug-Token, absent: true}}], body_starts_with: '%PDF-'}}}}",
        n.url("/invoice.pdf")
    );
    let o = check(
        "http",
        &block,
        Reason::Ok,
        &["200 OK from http://127.0.0.1:", "/invoice.pdf in "],
    )
    .await;
    let total = o.value.expect("the response time is the value");
    assert!(total > 0.0 && total < 5.0, "{total}");
    for p in PHASES {
        let v = sample(
            &o,
            "healthprobe_http_phase_duration_seconds",
            &[("phase", p)],
        )
        .unwrap_or_else(|| panic!("no sample for phase {p}"));
        assert!(v >= 0.0 && v <= total, "{p} = {v}");
    }
    assert!(
        sample(
            &o,
            "healthprobe_http_phase_duration_seconds",
            &[("phase", "connect")]
        )
        .unwrap()
            > 0.0
    );
    assert_eq!(sample(&o, "healthprobe_http_status_code", &[]), Some(200.0));
    assert_eq!(sample(&o, "healthprobe_http_redirects", &[]), Some(0.0));
    assert_eq!(
        sample(&o, "healthprobe_tls_cert_not_after_timestamp_seconds", &[]),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_pdf_without_no_store_fails_naming_the_header_and_value() {
    let n = app_nginx().await;
    let block = format!(
        "{{url: '{}', expect: {{headers: [{{name: Cache-Control, matches: no-store}}], body_starts_with: '%PDF-'}}}}",
        n.url("/cached.pdf")
    );
    let o = check(
        "http",
        &block,
        Reason::AssertionFailed,
        &["header Cache-Control is `public, max-age=60`, expected to match `no-store`"],
    )
    .await;
    assert!(
        !o.message.contains("PDF"),
        "only the failing expectation: {}",
        o.message
    );
    assert_eq!(sample(&o, "healthprobe_http_status_code", &[]), Some(200.0));
    assert!(o.value.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_body_status_and_json_failures_say_expected_and_seen() {
    let n = app_nginx().await;
    // An HTML error page where a PDF is expected.
    let block = format!(
        "{{url: '{}', expect: {{status: [200], body_starts_with: '%PDF-'}}}}",
        n.url("/error")
    );
    let o = check(
        "http",
        &block,
        Reason::AssertionFailed,
        &[
            "status is 500 Internal Server Error, expected 200",
            "body starts with `Whoops, looks li…`, expected `%PDF-`",
        ],
    )
    .await;
    assert_eq!(sample(&o, "healthprobe_http_status_code", &[]), Some(500.0));

    // Default status range is 200-399.
    check(
        "http",
        &format!("{{url: '{}'}}", n.url("/error")),
        Reason::AssertionFailed,
        &["status is 500 Internal Server Error, expected 200-399"],
    )
    .await;

    let block = format!(
        "{{url: '{}', expect: {{json: [{{pointer: /status, equals: ok}}, {{pointer: /db/ok, equals: true}}, \
         {{pointer: /db/latency_ms, equals: 3}}, {{pointer: /queue}}], body_matches: '\"db\"', body_not_matches: degraded}}}}",
        n.url("/health.json")
    );
    let o = check(
        "http",
        &block,
        Reason::AssertionFailed,
        &[
            "JSON /status is `\"degraded\"`, expected `ok`",
            "JSON /queue is missing",
            "body matches `degraded` at byte 11 (`degraded`), expected not to",
        ],
    )
    .await;
    assert!(!o.message.contains("/db/ok"), "{}", o.message);

    // The same body, not JSON where JSON is expected.
    let block = format!(
        "{{url: '{}', expect: {{json: [{{pointer: /status}}]}}}}",
        n.url("/cookie")
    );
    check(
        "http",
        &block,
        Reason::AssertionFailed,
        &["body is not JSON", "it starts with `hello from nginx\\n`"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_redirects_are_reported_or_followed_and_loops_stop() {
    let n = app_nginx().await;
    let block = format!("{{url: '{}', expect: {{status: [200]}}}}", n.url("/old"));
    let (o, _) = run_check("http", &block, T5).await;
    assert_outcome(
        &o,
        Reason::AssertionFailed,
        &[
            "status is 301 Moved Permanently (redirect to http://127.0.0.1:",
            "/invoice.pdf), expected 200; set follow_redirects: true",
        ],
    );

    let block = format!(
        "{{url: '{}', follow_redirects: true, expect: {{status: [200], body_starts_with: '%PDF-'}}}}",
        n.url("/old")
    );
    let o = check(
        "http",
        &block,
        Reason::Ok,
        &[
            "200 OK from http://127.0.0.1:",
            "/invoice.pdf",
            "after 1 redirect",
        ],
    )
    .await;
    assert_eq!(sample(&o, "healthprobe_http_redirects", &[]), Some(1.0));
    assert!(
        o.observations
            .iter()
            .any(|l| l.starts_with("redirect 1: 301 Moved Permanently -> "))
    );

    let block = format!("{{url: '{}', follow_redirects: true}}", n.url("/loop"));
    let o = check(
        "http",
        &block,
        Reason::AssertionFailed,
        &[
            "more than 10 redirects (a redirect loop?)",
            "/loop redirects again to ",
        ],
    )
    .await;
    assert_eq!(sample(&o, "healthprobe_http_redirects", &[]), Some(10.0));
    assert_eq!(sample(&o, "healthprobe_http_status_code", &[]), Some(302.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_slow_upstream_breaks_max_response_time() {
    let n = app_nginx().await;
    let block = format!(
        "{{url: '{}', expect: {{max_response_time: 800ms, body_matches: '^slow'}}}}",
        n.url("/slow/x")
    );
    let o = check(
        "http",
        &block,
        Reason::AssertionFailed,
        &[
            "response took ",
            "expected at most 800ms (max_response_time)",
        ],
    )
    .await;
    let processing = sample(
        &o,
        "healthprobe_http_phase_duration_seconds",
        &[("phase", "processing")],
    )
    .unwrap();
    assert!(
        processing >= 1.1,
        "the wait is in the processing phase: {processing}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_hanging_upstream_times_out_in_processing_within_the_timeout() {
    let n = app_nginx().await;
    let timeout = Duration::from_secs(2);
    let (o, took) = run_check("http", &format!("{{url: '{}'}}", n.url("/hang/x")), timeout).await;
    assert_outcome(
        &o,
        Reason::Timeout,
        &[
            "no response headers from 127.0.0.1:",
            "after sending the request",
        ],
    );
    assert!(took < timeout + Duration::from_millis(300), "took {took:?}");
    assert_eq!(sample(&o, "healthprobe_http_status_code", &[]), Some(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_server_that_never_answers_times_out_with_its_phase() {
    let addr = serve("127.0.0.1:0", |s| async move {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        drop(s);
    })
    .await;
    let timeout = Duration::from_millis(1500);
    let (o, took) = run_check("http", &format!("{{url: 'http://{addr}/'}}"), timeout).await;
    assert_outcome(
        &o,
        Reason::Timeout,
        &[
            &format!("no response headers from {addr} within 1."),
            "after sending the request",
        ],
    );
    assert!(took < timeout + Duration::from_millis(200), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_dripping_body_times_out_in_transfer() {
    let addr = serve("127.0.0.1:0", |mut s| async move {
        read_head(&mut s).await;
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
            .await;
        for _ in 0..100 {
            if s.write_all(b"x").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
    .await;
    let timeout = Duration::from_millis(2500);
    let (o, took) = run_check("http", &format!("{{url: 'http://{addr}/'}}"), timeout).await;
    assert_outcome(
        &o,
        Reason::Timeout,
        &[
            &format!("the response body from {addr} was still arriving after 2."),
            "bytes read)",
        ],
    );
    assert!(took < timeout + Duration::from_millis(200), "took {took:?}");
    assert_eq!(sample(&o, "healthprobe_http_status_code", &[]), Some(200.0));
    let transfer = sample(
        &o,
        "healthprobe_http_phase_duration_seconds",
        &[("phase", "transfer")],
    )
    .unwrap();
    assert!(transfer > 2.0, "{transfer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_garbage_and_silence_are_protocol_errors() {
    let ssh = serve("127.0.0.1:0", |mut s| async move {
        let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    })
    .await;
    check(
        "http",
        &format!("{{url: 'http://{ssh}/'}}"),
        Reason::ProtocolError,
        &[
            &format!("the answer from {ssh} is not HTTP"),
            "it starts with `SSH-2.0-OpenSSH_9.2p1",
        ],
    )
    .await;

    let broken = serve("127.0.0.1:0", |mut s| async move {
        read_head(&mut s).await;
        let _ = s
            .write_all(b"HTTP/1.1 OK\r\nContent-Length: 0\r\n\r\n")
            .await;
    })
    .await;
    check(
        "http",
        &format!("{{url: 'http://{broken}/'}}"),
        Reason::ProtocolError,
        &[
            &format!("the answer from {broken} is not valid HTTP ("),
            "it starts with `HTTP/1.1 OK\\r\\n",
        ],
    )
    .await;

    let closer = serve("127.0.0.1:0", |mut s| async move {
        read_head(&mut s).await;
    })
    .await;
    check(
        "http",
        &format!("{{url: 'http://{closer}/'}}"),
        Reason::ProtocolError,
        &[&format!(
            "{closer} closed the connection without answering the request"
        )],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_endless_body_is_read_up_to_the_cap_only() {
    let written = Arc::new(AtomicU64::new(0));
    let w = written.clone();
    let addr = serve("127.0.0.1:0", move |mut s| {
        let w = w.clone();
        async move {
            read_head(&mut s).await;
            // No Content-Length, no chunking: the body ends when the
            // connection does, which is never.
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
                .await;
            let chunk = vec![b'a'; 64 * 1024];
            while s.write_all(&chunk).await.is_ok() {
                w.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
        }
    })
    .await;
    let block = format!(
        "{{url: 'http://{addr}/', max_body_bytes: 100000, expect: {{body_matches: '^a+$', body_starts_with: aaa}}}}"
    );
    let (o, took) = run_check("http", &block, T5).await;
    assert_outcome(&o, Reason::Ok, &["200 OK from"]);
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert!(
        o.observations
            .iter()
            .any(|l| l.starts_with("body: 100000 bytes")
                && l.contains("cut at max_body_bytes (100000)")),
        "{:?}",
        o.observations
    );
    // Give the server a moment to notice the closed connection: what it could
    // send is bounded by the cap plus socket buffers, not by its will.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = written.load(Ordering::Relaxed);
    assert!(
        sent < 16 << 20,
        "the server wrote {sent} bytes: the check kept reading"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_ipv6_only_server_is_reached_through_localhost_fallback() {
    let addr = serve("[::1]:0", |mut s| async move {
        read_head(&mut s).await;
        let _ = s
            .write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
            .await;
    })
    .await;
    let port = addr.port();
    let o = check(
        "http",
        &format!("{{url: 'http://localhost:{port}/'}}"),
        Reason::Ok,
        &[&format!("204 No Content from http://localhost:{port}/")],
    )
    .await;
    let notes = o.observations.join("\n");
    assert!(
        notes.contains("resolved localhost to 127.0.0.1, ::1"),
        "{notes}"
    );
    assert!(
        notes.contains(&format!("connected to [::1]:{port}")),
        "{notes}"
    );

    check(
        "http",
        &format!("{{url: 'http://localhost:{port}/', ip_family: ipv4_only}}"),
        Reason::ConnectionRefused,
        &[&format!("127.0.0.1:{port} refused the connection")],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_unresolvable_host_and_closed_port() {
    let o = check(
        "http",
        "{url: 'http://nonexistent.invalid/health'}",
        Reason::DnsError,
        &["cannot resolve `nonexistent.invalid`"],
    )
    .await;
    assert_eq!(sample(&o, "healthprobe_http_status_code", &[]), Some(0.0));

    let port = closed_port();
    check(
        "http",
        &format!("{{url: 'http://127.0.0.1:{port}/'}}"),
        Reason::ConnectionRefused,
        &[&format!("127.0.0.1:{port} refused the connection")],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_secret_query_values_never_appear() {
    const SECRET: &str = "hunter2-canary-91";
    let n = app_nginx().await;
    // A failing run (500), a passing run (with debug observations), and a
    // connection failure: the secret shows in none of them.
    for (path, reason) in [("/error", Reason::AssertionFailed), ("/cookie", Reason::Ok)] {
        let url = n.url(&format!("{path}?secret={SECRET}&lang=fr"));
        let (o, _) = run_check("http", &format!("{{url: '{url}'}}"), T5).await;
        assert_eq!(o.reason, reason, "{}", o.message);
        assert!(!o.message.contains(SECRET), "message: {}", o.message);
        let notes = o.observations.join("\n");
        assert!(!notes.contains(SECRET), "observations: {notes}");
        assert!(notes.contains("secret=<redacted>&lang=fr"), "{notes}");
    }
    let block = format!(
        "{{url: 'http://127.0.0.1:{}/update?token={SECRET}', follow_redirects: true}}",
        closed_port()
    );
    let (o, _) = run_check("http", &block, T5).await;
    assert_eq!(o.reason, Reason::ConnectionRefused);
    assert!(!o.message.contains(SECRET) && !o.observations.join("\n").contains(SECRET));
    // The redirect message shows the URL: redacted.
    let block = format!(
        "{{url: '{}', follow_redirects: true}}",
        n.url(&format!("/loop?secret={SECRET}"))
    );
    let (o, _) = run_check("http", &block, T5).await;
    assert_eq!(o.reason, Reason::AssertionFailed);
    assert!(!o.message.contains(SECRET), "{}", o.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_debug_observations_show_phases_status_headers_and_body_without_cookies() {
    let n = app_nginx().await;
    let block = format!(
        "{{url: '{}', headers: {{Authorization: 'Bearer tok-canary-77', Accept: text/plain}}, \
         expect: {{headers: [{{name: X-Powered-By, absent: true}}]}}}}",
        n.url("/cookie")
    );
    let o = check(
        "http",
        &block,
        Reason::AssertionFailed,
        &["header X-Powered-By is `PHP/8.2`, expected to be absent"],
    )
    .await;
    let notes = o.observations.join("\n");
    for expected in [
        "resolved 127.0.0.1 to 127.0.0.1 in ",
        "connected to 127.0.0.1:",
        "> GET /cookie HTTP/1.1",
        "> authorization: <redacted>",
        "> accept: text/plain",
        "> user-agent: healthprobe/",
        "< HTTP/1.1 200 OK (headers after ",
        "< set-cookie: <redacted>",
        "< x-powered-by: PHP/8.2",
        "body: 17 bytes in ",
        "`hello from nginx\\n`",
    ] {
        assert!(
            notes.contains(expected),
            "observations lack {expected:?}:\n{notes}"
        );
    }
    assert!(
        !notes.contains("sess-canary") && !notes.contains("tok-canary"),
        "{notes}"
    );
}

/// nginx serving `kp` over TLS.
async fn tls_nginx(kp: &KeyPair) -> Nginx {
    let kp = kp.clone();
    tokio::task::spawn_blocking(move || {
        Nginx::start_with(NginxOptions {
            server: "location / { return 200 \"secure\\n\"; }".into(),
            tls: Some(kp),
            ..Default::default()
        })
    })
    .await
    .unwrap()
}

fn certs() -> &'static Certs {
    Certs::shared()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_tls_with_custom_ca_passes_and_exports_expiry() {
    let c = tokio::task::spawn_blocking(certs).await.unwrap();
    let n = tls_nginx(&c.leaf).await;
    let ca = c.ca.cert.display();
    for host in ["127.0.0.1", "localhost"] {
        let url = format!("https://{host}:{}/", n.port());
        let block = format!(
            "{{url: '{url}', tls: {{ca_file: '{ca}'}}, expect: {{cert_min_days: 30, body_matches: secure}}}}"
        );
        let o = check("http", &block, Reason::Ok, &[&format!("200 OK from {url}")]).await;
        let not_after =
            sample(&o, "healthprobe_tls_cert_not_after_timestamp_seconds", &[]).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let days = (not_after - now) / 86_400.0;
        assert!((800.0..=826.0).contains(&days), "{days}");
        assert!(
            sample(
                &o,
                "healthprobe_http_phase_duration_seconds",
                &[("phase", "tls")]
            )
            .unwrap()
                > 0.0
        );
        let notes = o.observations.join("\n");
        assert!(
            notes.contains("TLS handshake in ")
                && notes.contains("issued by CN=healthprobe test CA"),
            "{notes}"
        );
    }
    // Expiring too soon for cert_min_days.
    let block = format!(
        "{{url: '{}', tls: {{ca_file: '{ca}'}}, expect: {{cert_min_days: 1000}}}}",
        n.url("/")
    );
    check(
        "http",
        &block,
        Reason::AssertionFailed,
        &[
            "TLS certificate CN=localhost expires on ",
            "expected at least 1000 days (cert_min_days)",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_tls_failures_are_spelled_out() {
    let c = tokio::task::spawn_blocking(certs).await.unwrap();
    let ca = c.ca.cert.display().to_string();
    let leaf = tls_nginx(&c.leaf).await;
    let expired = tls_nginx(&c.expired).await;
    let self_signed = tls_nginx(&c.self_signed).await;
    let wrong = tls_nginx(&c.wrong_name).await;

    // The test CA is not among the system's roots.
    check("http", &format!("{{url: '{}'}}", leaf.url("/")), Reason::TlsError, &[
            "TLS certificate of `127.0.0.1` (CN=localhost) is signed by an unknown authority (issuer CN=healthprobe test CA)",
            "set tls.ca_file",
        ]).await;

    let o = check(
        "http",
        &format!("{{url: '{}', tls: {{ca_file: '{ca}'}}}}", expired.url("/")),
        Reason::TlsError,
        &[
            "TLS certificate of `127.0.0.1` (CN=localhost) expired on 2020-02-01T00:00:00Z",
            "days ago",
        ],
    )
    .await;
    assert_eq!(
        sample(&o, "healthprobe_tls_cert_not_after_timestamp_seconds", &[]),
        Some(1_580_515_200.0),
        "the expiry of a rejected certificate is still exported"
    );

    check(
        "http",
        &format!("{{url: '{}'}}", self_signed.url("/")),
        Reason::TlsError,
        &["TLS certificate of `127.0.0.1` (CN=localhost) is self-signed"],
    )
    .await;

    check("http", &format!("{{url: '{}', tls: {{ca_file: '{ca}'}}}}", wrong.url("/")), Reason::TlsError, &[
            "TLS certificate name mismatch: the certificate is for wrong.example.invalid, not for `127.0.0.1`",
            "tls.server_name",
        ]).await;

    // The ways out the messages offer work.
    check(
        "http",
        &format!(
            "{{url: '{}', tls: {{ca_file: '{ca}', server_name: wrong.example.invalid}}}}",
            wrong.url("/")
        ),
        Reason::Ok,
        &[],
    )
    .await;
    check(
        "http",
        &format!(
            "{{url: '{}', tls: {{verify: false}}, expect: {{cert_min_days: 1}}}}",
            self_signed.url("/")
        ),
        Reason::Ok,
        &[],
    )
    .await;
    check(
        "http",
        &format!(
            "{{url: '{}', tls: {{verify: false}}, expect: {{cert_min_days: 1}}}}",
            expired.url("/")
        ),
        Reason::AssertionFailed,
        &["TLS certificate CN=localhost expired on 2020-02-01T00:00:00Z"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_scheme_and_port_mismatches() {
    // https:// to a plain-HTTP port.
    let n = app_nginx().await;
    let url = n.url("/cookie").replace("http://", "https://");
    check(
        "http",
        &format!("{{url: '{url}'}}"),
        Reason::TlsError,
        &["does not speak TLS", "is this a plain-text port?"],
    )
    .await;

    // http:// to a TLS port: what comes back is not HTTP.
    let c = tokio::task::spawn_blocking(certs).await.unwrap();
    let t = tls_nginx(&c.leaf).await;
    let url = t.url("/").replace("https://", "http://");
    check(
        "http",
        &format!("{{url: '{url}'}}"),
        Reason::AssertionFailed,
        &["status is 400 Bad Request, expected 200-399"],
    )
    .await;
}

/// nginx counting what reaches it: an upload location with a 1 MiB limit
/// and one with 100M, and a page whose scripts and stylesheets are present,
/// missing, or on a port nobody listens on.
async fn upload_and_assets_nginx(dead_port: u16) -> Nginx {
    let server = format!(
        r#"
        location = /small/upload {{ client_max_body_size 1m; return 204; }}
        location = /big/upload {{ client_max_body_size 100M; return 204; }}
        location /assets/ {{ try_files $uri =404; }}
        location = /page {{ default_type text/html; return 200 '<html><head>
<link rel="stylesheet" href="/assets/app.css"><link rel="icon" href="/favicon.ico">
<script src="assets/app.js"></script></head></html>'; }}
        location = /broken-page {{ default_type text/html; return 200 '<html><head>
<link rel="stylesheet" href="/assets/app.css"><script src="/assets/gone-1f2e.js"></script>
<script src="http://127.0.0.1:{dead_port}/cdn.js"></script></head></html>'; }}
        location = /plain {{ default_type text/html; return 200 '<p>no assets here</p>'; }}
        "#
    );
    let nginx = nginx_with(server).await;
    std::fs::create_dir_all(nginx.html_dir().join("assets")).unwrap();
    std::fs::write(nginx.html_dir().join("assets/app.css"), "body{}\n").unwrap();
    std::fs::write(nginx.html_dir().join("assets/app.js"), "1;\n").unwrap();
    nginx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_body_size_uploads_hit_or_pass_the_limit() {
    let nginx = upload_and_assets_nginx(crate::support::free_port()).await;
    // 2 MiB of zeros: over the 1 MiB limit, under the 100M one.
    let o = check(
        "http",
        &format!(
            "{{url: '{}', method: POST, body_size: 2097152, expect: {{status: [204]}}}}",
            nginx.url("/small/upload")
        ),
        Reason::AssertionFailed,
        &["status is 413 Payload Too Large, expected 204"],
    )
    .await;
    assert_eq!(sample(&o, "healthprobe_http_status_code", &[]), Some(413.0));
    check(
        "http",
        &format!(
            "{{url: '{}', method: POST, body_size: 2097152, expect: {{status: [204]}}}}",
            nginx.url("/big/upload")
        ),
        Reason::Ok,
        &["204 No Content"],
    )
    .await;
    // nginx took the request (it logs once the response is sent).
    let mut log = String::new();
    for _ in 0..100 {
        log = std::fs::read_to_string(nginx.access_log()).unwrap_or_default();
        if log.contains("\"POST /big/upload HTTP/1.1\" 204") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(log.contains("\"POST /big/upload HTTP/1.1\" 204"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_assets_resolve_names_each_asset_that_does_not_load() {
    let dead = crate::support::free_port();
    let nginx = upload_and_assets_nginx(dead).await;
    let block = |path: &str| {
        format!(
            "{{url: '{}', expect: {{assets_resolve: true}}}}",
            nginx.url(path)
        )
    };
    check(
        "http",
        &block("/page"),
        Reason::Ok,
        &["200 OK", "; 2 assets load"],
    )
    .await;
    let o = check(
        "http",
        &block("/broken-page"),
        Reason::AssertionFailed,
        &[
            "2 of 3 assets the page references do not load: /assets/gone-1f2e.js (404 Not Found), ",
            &format!("http://127.0.0.1:{dead}/cdn.js (connection_refused: "),
        ],
    )
    .await;
    // The page's own phases are exported, not the assets'.
    assert_eq!(sample(&o, "healthprobe_http_status_code", &[]), Some(200.0));
    assert!(
        o.observations
            .iter()
            .any(|n| n == "asset /assets/app.css: 200 OK"),
        "{:?}",
        o.observations
    );
    check(
        "http",
        &block("/plain"),
        Reason::AssertionFailed,
        &["the page references no script or stylesheet"],
    )
    .await;
}
