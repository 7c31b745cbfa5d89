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
