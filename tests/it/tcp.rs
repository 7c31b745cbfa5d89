//! The `tcp` kind against real servers on loopback: nginx (plain and TLS,
//! from `support::nginx`) and small tokio servers for banners, silence,
//! endless output and IPv6-only listeners. Helpers come from the `http`
//! tests (`run_check` builds and runs a check as the agent does).

use std::time::Duration;

use healthprobe::checks::Reason;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::http::{T5, check, closed_port, run_check, sample, serve};
use crate::probe_util::assert_outcome;
use crate::support::certs::{Certs, KeyPair};
use crate::support::nginx::{Nginx, NginxOptions};

async fn nginx(tls: Option<KeyPair>) -> Nginx {
    tokio::task::spawn_blocking(move || {
        Nginx::start_with(NginxOptions {
            server: "location / { return 200 \"hi\\n\"; }".into(),
            tls,
            ..Default::default()
        })
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_connect_time_is_the_value_and_a_dialogue_with_nginx_matches() {
    let n = nginx(None).await;
    let port = n.port();
    let o = check(
        "tcp",
        &format!("{{address: '127.0.0.1:{port}'}}"),
        Reason::Ok,
        &[&format!(
            "connected to 127.0.0.1:{port} (127.0.0.1:{port}) in "
        )],
    )
    .await;
    let v = o.value.expect("connect time");
    assert!(v > 0.0 && v < 1.0, "{v}");
    assert_eq!(
        sample(
            &o,
            "healthprobe_tcp_phase_duration_seconds",
            &[("phase", "connect")]
        ),
        Some(v)
    );

    // Single-quoted YAML: the escapes are ours to read.
    let block = format!(
        r#"{{address: '127.0.0.1:{port}', send: 'GET / HTTP/1.0\r\nHost: x\r\n\r\n', expect: {{matches: '^HTTP/1\.1 200 OK'}}}}"#
    );
    check(
        "tcp",
        &block,
        Reason::Ok,
        &[
            "the answer `HTTP/1.1 200 OK\\r\\n",
            "matches `^HTTP/1\\.1 200 OK`",
        ],
    )
    .await;

    let block = format!("{{address: '127.0.0.1:{port}', expect: {{value: {{max: 0}}}}}}");
    check(
        "tcp",
        &block,
        Reason::AssertionFailed,
        &["connect time (seconds) is ", "above the maximum 0"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_banner_mismatch_and_silence() {
    let banner = serve("127.0.0.1:0", |mut s| async move {
        let _ = s.write_all(b"220 mail.example ESMTP\r\n").await;
    })
    .await;
    let (o, _) = run_check(
        "tcp",
        &format!("{{address: '{banner}', expect: {{matches: '^250 '}}}}"),
        T5,
    )
    .await;
    assert_outcome(
        &o,
        Reason::AssertionFailed,
        &[&format!(
            "{banner} sent `220 mail.example ESMTP\\r\\n` and closed the connection; that does not match `^250 `"
        )],
    );

    let silent = serve("127.0.0.1:0", |s| async move {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        drop(s);
    })
    .await;
    let timeout = Duration::from_millis(1500);
    let (o, took) = run_check(
        "tcp",
        &format!("{{address: '{silent}', expect: {{matches: '^220'}}}}"),
        timeout,
    )
    .await;
    assert_outcome(
        &o,
        Reason::Timeout,
        &[
            &format!("no data from {silent} within 1."),
            "after connecting",
        ],
    );
    assert!(took < timeout + Duration::from_millis(200), "{took:?}");

    let closes = serve("127.0.0.1:0", |s| async move { drop(s) }).await;
    check(
        "tcp",
        &format!("{{address: '{closes}', expect: {{matches: '^220'}}}}"),
        Reason::ProtocolError,
        &["closed the connection without sending anything"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_send_escapes_and_read_cap() {
    let pong = serve("127.0.0.1:0", |mut s| async move {
        let mut b = [0u8; 64];
        let n = s.read(&mut b).await.unwrap_or(0);
        let reply: &[u8] = if &b[..n] == b"PING\r\n" {
            b"+PONG\r\n"
        } else {
            b"-ERR unknown\r\n"
        };
        let _ = s.write_all(reply).await;
    })
    .await;
    check(
        "tcp",
        &format!(r#"{{address: '{pong}', send: 'PING\r\n', expect: {{matches: '^\+PONG'}}}}"#),
        Reason::Ok,
        &["`+PONG\\r\\n` matches"],
    )
    .await;

    let endless = serve("127.0.0.1:0", |mut s| async move {
        let chunk = vec![b'z'; 4096];
        while s.write_all(&chunk).await.is_ok() {}
    })
    .await;
    let (o, took) = run_check(
        "tcp",
        &format!("{{address: '{endless}', max_read_bytes: 10000, expect: {{matches: '^220'}}}}"),
        T5,
    )
    .await;
    assert_outcome(
        &o,
        Reason::AssertionFailed,
        &[&format!(
            "read max_read_bytes (10000) from {endless} without a match for `^220`; it starts with `zzzz"
        )],
    );
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_refused_unresolvable_and_ipv6() {
    let port = closed_port();
    check(
        "tcp",
        &format!("{{address: '127.0.0.1:{port}'}}"),
        Reason::ConnectionRefused,
        &[&format!("127.0.0.1:{port} refused the connection")],
    )
    .await;

    check(
        "tcp",
        "{address: 'nonexistent.invalid:25'}",
        Reason::DnsError,
        &["cannot resolve `nonexistent.invalid`"],
    )
    .await;

    let v6 = serve("[::1]:0", |mut s| async move {
        let _ = s.write_all(b"hello over v6\n").await;
    })
    .await;
    let port = v6.port();
    for address in [format!("[::1]:{port}"), format!("localhost:{port}")] {
        check(
            "tcp",
            &format!("{{address: '{address}', expect: {{matches: v6}}}}"),
            Reason::Ok,
            &[&format!("connected to {address} ([::1]:{port})")],
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_tls_verifies_and_reports_certificates() {
    let c = tokio::task::spawn_blocking(Certs::shared).await.unwrap();
    let ca = c.ca.cert.display().to_string();
    let good = nginx(Some(c.leaf.clone())).await;
    let expired = nginx(Some(c.expired.clone())).await;
    let self_signed = nginx(Some(c.self_signed.clone())).await;

    let block = format!(
        "{{address: 'localhost:{}', tls: {{ca_file: '{ca}'}}, send: 'GET / HTTP/1.0\\r\\n\\r\\n', \
         expect: {{matches: '^HTTP/1.1 200', cert_min_days: 30}}}}",
        good.port()
    );
    let o = check("tcp", &block, Reason::Ok, &["TLS handshake in "]).await;
    assert!(sample(&o, "healthprobe_tls_cert_not_after_timestamp_seconds", &[]).unwrap() > 1.7e9);
    assert!(
        sample(
            &o,
            "healthprobe_tcp_phase_duration_seconds",
            &[("phase", "tls")]
        )
        .unwrap()
            > 0.0
    );

    let block = format!(
        "{{address: '127.0.0.1:{}', tls: {{ca_file: '{ca}'}}, expect: {{cert_min_days: 2000}}}}",
        good.port()
    );
    check(
        "tcp",
        &block,
        Reason::AssertionFailed,
        &["expected at least 2000 days (cert_min_days)"],
    )
    .await;

    let block = format!(
        "{{address: '127.0.0.1:{}', tls: {{ca_file: '{ca}'}}}}",
        expired.port()
    );
    let o = check(
        "tcp",
        &block,
        Reason::TlsError,
        &["expired on 2020-02-01T00:00:00Z"],
    )
    .await;
    assert_eq!(
        sample(&o, "healthprobe_tls_cert_not_after_timestamp_seconds", &[]),
        Some(1_580_515_200.0)
    );

    let block = format!("{{address: '127.0.0.1:{}', tls: {{}}}}", self_signed.port());
    check("tcp", &block, Reason::TlsError, &["is self-signed"]).await;

    // TLS to a plain port.
    let plain = nginx(None).await;
    let block = format!("{{address: '127.0.0.1:{}', tls: {{}}}}", plain.port());
    check("tcp", &block, Reason::TlsError, &["does not speak TLS"]).await;
}
