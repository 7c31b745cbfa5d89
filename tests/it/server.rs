//! The HTTP server under hostile clients: oversized request heads are
//! refused, a client that never finishes its headers is cut off, and neither
//! blocks a scrape.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::agent::AgentProcess;

fn agent() -> AgentProcess {
    AgentProcess::start(&[])
}

#[test]
fn an_oversized_request_head_is_refused() {
    let agent = agent();
    let mut s = TcpStream::connect(agent.address()).unwrap();
    let huge = "x".repeat(64 * 1024);
    let _ = write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: {huge}\r\n\r\n"
    );
    let mut buf = Vec::new();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.read_to_end(&mut buf);
    let head = String::from_utf8_lossy(&buf);
    assert!(
        head.is_empty() || head.starts_with("HTTP/1.1 431"),
        "got: {head}"
    );
    assert_eq!(
        agent.get("/-/healthy").status,
        200,
        "the agent still answers"
    );
}

#[test]
fn a_client_that_never_finishes_its_headers_is_cut_off_without_blocking_scrapes() {
    let agent = agent();
    let mut slow = TcpStream::connect(agent.address()).unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    // Meanwhile scrapes are served.
    assert_eq!(agent.get("/metrics").status, 200);
    let started = Instant::now();
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buf = Vec::new();
    let _ = slow.read_to_end(&mut buf);
    let waited = started.elapsed();
    assert!(
        waited <= healthprobe::server::HEADER_TIMEOUT + Duration::from_secs(3),
        "closed after {waited:?}"
    );
}

#[test]
fn unknown_paths_and_methods_are_answered_plainly() {
    let agent = agent();
    assert_eq!(agent.get("/nope").status, 404);
    let r = crate::support::http::request("POST", &format!("{}/metrics", agent.url()), &[], b"")
        .unwrap();
    assert_eq!(r.status, 405);
    assert_eq!(
        agent.get("/").header("content-type"),
        Some("text/html; charset=utf-8")
    );
}

/// A scraper that accepts gzip (Prometheus does by default) gets the page
/// compressed, the same families inside; one that does not, or refuses it,
/// gets plain text. Both are told the answer varies with Accept-Encoding.
#[test]
fn metrics_are_gzipped_for_scrapers_that_accept_it() {
    use crate::support::http;
    let agent = agent();
    let url = format!("{}/metrics", agent.url());
    let families = |text: &str| -> Vec<String> {
        let mut f: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(str::to_string)
            .collect();
        f.sort();
        f
    };
    let plain = http::get(&url).unwrap();
    assert_eq!(plain.status, 200);
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.header("vary"), Some("Accept-Encoding"));
    let zipped = http::request("GET", &url, &[("Accept-Encoding", "gzip")], &[]).unwrap();
    assert_eq!(zipped.status, 200);
    assert_eq!(zipped.header("content-encoding"), Some("gzip"));
    assert_eq!(zipped.header("vary"), Some("Accept-Encoding"));
    let mut text = String::new();
    flate2::read::GzDecoder::new(&zipped.body[..])
        .read_to_string(&mut text)
        .expect("a gzip body");
    assert!(zipped.body.len() < text.len(), "compressed");
    assert!(
        text.contains("# TYPE healthprobe_check_success gauge"),
        "{text}"
    );
    assert_eq!(families(&text), families(&plain.text()));
    let refused = http::request(
        "GET",
        &url,
        &[("Accept-Encoding", "gzip;q=0, identity")],
        &[],
    )
    .unwrap();
    assert_eq!(refused.header("content-encoding"), None);
    assert!(
        refused
            .text()
            .contains("# TYPE healthprobe_check_success gauge")
    );
}
