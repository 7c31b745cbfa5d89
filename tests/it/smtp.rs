//! The `smtp` kind against a real SMTP server (aiosmtpd, from
//! `support::smtp`) with certificates made by `support::certs`, plus small
//! in-test servers for what a real server will not do (implicit TLS on an
//! odd port, garbage, silence).

use std::sync::Arc;
use std::time::Duration;

use healthprobe::checks::Reason;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::probe_util::{assert_outcome, build_errors, sample};
use crate::probes::{BinaryRun, all_text, blocking, build, run_binary, run_once, wait_state};
use crate::support::agent::AgentProcess;
use crate::support::certs::{Certs, KeyPair};
use crate::support::smtp::{Smtp, SmtpMode, SmtpOptions};
use crate::support::{free_port, tempdir};

const USER: &str = "alice";
const PASSWORD: &str = "Corr3ct-H0rse-canary";
const STEP: &str = "healthprobe_smtp_step_duration_seconds";
const NOT_AFTER: &str = "healthprobe_tls_cert_not_after_timestamp_seconds";

/// Starts a server off the async runtime (the support API blocks).
async fn smtp(options: SmtpOptions) -> Smtp {
    tokio::task::spawn_blocking(move || Smtp::start(options))
        .await
        .unwrap()
}

fn tls_server(pair: &KeyPair) -> SmtpOptions {
    SmtpOptions {
        tls: Some(pair.clone()),
        auth: Some((USER.into(), PASSWORD.into())),
        ..Default::default()
    }
}

/// A check of the server on `port`; `extra` is more of the `smtp:` block.
fn check(port: u16, extra: &str) -> String {
    format!(
        "name: mail\nkind: smtp\ntimeout: 5s\nsmtp:\n  host: 127.0.0.1\n  port: {port}\n  \
         ehlo_domain: app.example.org\n{extra}"
    )
}

fn with_ca(extra: &str) -> String {
    format!(
        "  tls: {{ ca_file: {} }}\n{extra}",
        Certs::shared().ca.cert.display()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn smtp_starttls_with_the_ca_passes_and_exports_steps_and_expiry() {
    let server = smtp(tls_server(&Certs::shared().leaf)).await;
    let o = run_once(&check(server.port(), &with_ca(""))).await;
    assert_outcome(&o, Reason::Ok, &["STARTTLS"]);
    assert!(
        o.message.contains("certificate CN=localhost valid until"),
        "{}",
        o.message
    );
    for step in ["connect", "banner", "ehlo", "starttls"] {
        assert!(
            sample(&o, STEP, Some(("step", step))).is_some(),
            "no {step} step in {:?}",
            o.samples
        );
    }
    assert!(sample(&o, STEP, Some(("step", "auth"))).is_none());
    let not_after = sample(&o, NOT_AFTER, None).expect("the certificate's expiry");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(not_after > now + 700.0 * 86_400.0, "{not_after}");
    // The transcript shows both EHLOs, the second after the handshake.
    let ehlos = o
        .observations
        .iter()
        .filter(|l| l.starts_with("C: EHLO app.example.org"))
        .count();
    assert_eq!(ehlos, 2, "{:#?}", o.observations);
    assert!(
        o.observations.iter().any(|l| l == "C: QUIT"),
        "{:#?}",
        o.observations
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn smtp_expired_certificate_is_a_tls_error_with_the_date() {
    let server = smtp(tls_server(&Certs::shared().expired)).await;
    let o = run_once(&check(server.port(), &with_ca(""))).await;
    assert_outcome(&o, Reason::TlsError, &["expired on 2020-02-01"]);
    // The expiry is exported even though the certificate was refused.
    assert_eq!(sample(&o, NOT_AFTER, None), Some(1_580_515_200.0));
}

#[tokio::test(flavor = "multi_thread")]
async fn smtp_wrong_name_is_a_tls_error_naming_both_names() {
    let server = smtp(tls_server(&Certs::shared().wrong_name)).await;
    let o = run_once(&check(server.port(), &with_ca(""))).await;
    assert_outcome(&o, Reason::TlsError, &["name mismatch"]);
    assert!(o.message.contains("wrong.example.invalid"), "{}", o.message);
    assert!(o.message.contains("`127.0.0.1`"), "{}", o.message);

    // Verifying against the name the certificate has fixes it.
    let fixed = format!(
        "  tls: {{ ca_file: {}, server_name: wrong.example.invalid }}\n",
        Certs::shared().ca.cert.display()
    );
    let o = run_once(&check(server.port(), &fixed)).await;
    assert_eq!(o.reason, Reason::Ok, "{}", o.message);
}

#[tokio::test(flavor = "multi_thread")]
async fn smtp_unknown_authority_without_the_ca_then_verify_off() {
    let server = smtp(tls_server(&Certs::shared().leaf)).await;
    let o = run_once(&check(server.port(), "")).await;
    assert_outcome(&o, Reason::TlsError, &["unknown authority"]);
    assert!(o.message.contains("healthprobe test CA"), "{}", o.message);
    assert!(o.message.contains("tls.ca_file"), "{}", o.message);

    let o = run_once(&check(server.port(), "  tls: { verify: false }\n")).await;
    assert_eq!(o.reason, Reason::Ok, "{}", o.message);
    assert!(sample(&o, NOT_AFTER, None).is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn smtp_server_without_starttls_fails_when_starttls_is_asked() {
    let server = smtp(SmtpOptions::default()).await;
    let o = run_once(&check(server.port(), "")).await;
    assert_outcome(
        &o,
        Reason::AssertionFailed,
        &["the server does not offer STARTTLS (its EHLO lists: "],
    );
    // The same server is fine for a plain check.
    let o = run_once(&check(server.port(), "  mode: plain\n")).await;
    assert_eq!(o.reason, Reason::Ok, "{}", o.message);
}

#[tokio::test(flavor = "multi_thread")]
async fn smtp_auth_plain_and_login_accepted() {
    let server = smtp(tls_server(&Certs::shared().leaf)).await;
    for (mechanism, shown) in [("auto", "PLAIN"), ("plain", "PLAIN"), ("login", "LOGIN")] {
        let auth = format!(
            "  auth: {{ username: {USER}, password: {PASSWORD}, mechanism: {mechanism} }}\n"
        );
        let o = run_once(&check(server.port(), &with_ca(&auth))).await;
        assert_eq!(o.reason, Reason::Ok, "{mechanism}: {}", o.message);
        assert!(
            o.message
                .contains(&format!("AUTH {shown} accepted for `{USER}`")),
            "{}",
            o.message
        );
        assert!(sample(&o, STEP, Some(("step", "auth"))).is_some());
        assert!(!all_text(&o).contains(PASSWORD));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn smtp_auth_password_from_the_environment_through_the_binary() {
    let server = smtp(tls_server(&Certs::shared().leaf)).await;
    let item = format!(
        "  - name: mail\n    kind: smtp\n    timeout: 5s\n    smtp:\n      host: 127.0.0.1\n      \
             port: {}\n      tls: {{ ca_file: {} }}\n      auth: {{ username: {USER}, \
             password_env: HP_SMTP_PASSWORD }}\n",
        server.port(),
        Certs::shared().ca.cert.display()
    );
    let (code, report) = tokio::task::spawn_blocking(move || {
        let ok = run_binary(
            &item,
            &BinaryRun {
                env: &[("HP_SMTP_PASSWORD", PASSWORD)],
                ..Default::default()
            },
        );
        let refused = run_binary(
            &item,
            &BinaryRun {
                env: &[("HP_SMTP_PASSWORD", "Not-The-Passw0rd")],
                ..Default::default()
            },
        );
        assert_eq!(refused.0, 1, "{}", refused.1);
        let c = &refused.1["checks"][0];
        assert_eq!(c["reason"], "auth_failed", "{c}");
        assert!(
            !refused.1.to_string().contains("Not-The-Passw0rd"),
            "{}",
            refused.1
        );
        ok
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{report}");
    let c = &report["checks"][0];
    assert_eq!(c["state"], "passing", "{c}");
    assert!(!report.to_string().contains(PASSWORD));
}

#[tokio::test(flavor = "multi_thread")]
async fn smtp_auth_refused_is_auth_failed_and_never_shows_the_password() {
    let server = smtp(tls_server(&Certs::shared().leaf)).await;
    let wrong = "Wr0ng-Passw0rd-canary";
    for mechanism in ["plain", "login"] {
        let auth =
            format!("  auth: {{ username: {USER}, password: {wrong}, mechanism: {mechanism} }}\n");
        let o = run_once(&check(server.port(), &with_ca(&auth))).await;
        assert_outcome(
            &o,
            Reason::AuthFailed,
            &[&format!("the server refused the credentials of `{USER}`")],
        );
        assert!(o.message.contains("535"), "{}", o.message);
        let text = all_text(&o);
        assert!(!text.contains(wrong), "the password leaked: {text}");
        // Nor its base64 forms (AUTH PLAIN's token, AUTH LOGIN's line).
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        assert!(!text.contains(&b64.encode(wrong)), "{text}");
        assert!(
            !text.contains(&b64.encode(format!("\0{USER}\0{wrong}"))),
            "{text}"
        );
        assert!(
            o.observations
                .iter()
                .any(|l| l.contains("<credentials>") || l.contains("<password>")),
            "{:#?}",
            o.observations
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn smtp_auth_not_offered_before_tls_in_plain_mode() {
    // aiosmtpd hides AUTH until STARTTLS unless told otherwise.
    let server = smtp(tls_server(&Certs::shared().leaf)).await;
    let o = run_once(&check(
        server.port(),
        &format!("  mode: plain\n  auth: {{ username: {USER}, password: {PASSWORD} }}\n"),
    ))
    .await;
    assert_outcome(&o, Reason::AssertionFailed, &["does not offer AUTH"]);
    assert!(o.message.contains("mode: starttls"), "{}", o.message);
}

#[tokio::test(flavor = "multi_thread")]
async fn smtp_drop_after_banner_is_a_protocol_error_naming_ehlo() {
    let server = smtp(SmtpOptions {
        mode: SmtpMode::DropAfterBanner,
        ..Default::default()
    })
    .await;
    let o = run_once(&check(server.port(), "  mode: plain\n")).await;
    assert_outcome(
        &o,
        Reason::ProtocolError,
        &["closed the connection after its banner, instead of answering EHLO"],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn smtp_nothing_listening_is_connection_refused() {
    let port = free_port();
    let o = run_once(&check(port, "")).await;
    assert_outcome(
        &o,
        Reason::ConnectionRefused,
        &[&format!("127.0.0.1:{port}")],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn smtp_server_killed_then_started_again_fails_then_recovers() {
    let server = smtp(tls_server(&Certs::shared().leaf)).await;
    let c = build(&check(server.port(), &with_ca("")));
    assert_eq!(c.run().await.reason, Reason::Ok);
    let server = blocking(server, Smtp::kill).await;
    let o = c.run().await;
    assert_eq!(o.reason, Reason::ConnectionRefused, "{}", o.message);
    let _server = blocking(server, Smtp::start_again).await;
    let o = c.run().await;
    assert_eq!(o.reason, Reason::Ok, "{}", o.message);
}

/// A one-connection server: `script` gets the accepted socket.
async fn serve_once<F, Fut>(script: F) -> u16
where
    F: FnOnce(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        if let Ok((sock, _)) = listener.accept().await {
            script(sock).await;
        }
    });
    port
}

#[tokio::test]
async fn smtp_garbage_reply_is_a_protocol_error() {
    let port = serve_once(|mut sock| async move {
        let _ = sock
            .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    })
    .await;
    let o = run_once(&check(port, "  mode: plain\n")).await;
    assert_outcome(
        &o,
        Reason::ProtocolError,
        &["to the banner is not SMTP: not an SMTP reply line: `HTTP/1.1 400"],
    );
}

#[tokio::test]
async fn smtp_silent_server_times_out_at_the_banner_before_the_hard_timeout() {
    let port = serve_once(|sock| async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(sock);
    })
    .await;
    let c = build(&check(port, "  mode: plain\n").replace("timeout: 5s", "timeout: 1s"));
    let o = c.run().await;
    assert_outcome(&o, Reason::Timeout, &["sent no banner within"]);
}

#[tokio::test]
async fn smtp_multi_line_ehlo_and_implicit_tls() {
    // Implicit TLS (port 465 style) on a test server that answers EHLO with
    // a multi-line reply, so the `tls` mode is proven end to end.
    let certs = Certs::shared();
    let acceptor = tls_acceptor(&certs.leaf);
    let port = serve_once(move |sock| async move {
        let Ok(tls) = acceptor.accept(sock).await else {
            return;
        };
        let mut io = BufReader::new(tls);
        let _ = io
            .get_mut()
            .write_all(b"220 localhost ESMTP test\r\n")
            .await;
        let mut line = String::new();
        while io.read_line(&mut line).await.unwrap_or(0) > 0 {
            let answer: &[u8] = if line.starts_with("EHLO") {
                b"250-localhost\r\n250-PIPELINING\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n"
            } else if line.starts_with("AUTH PLAIN") {
                b"235 2.7.0 ok\r\n"
            } else {
                b"221 bye\r\n"
            };
            let _ = io.get_mut().write_all(answer).await;
            if line.starts_with("QUIT") {
                break;
            }
            line.clear();
        }
    })
    .await;
    let o = run_once(&check(
        port,
        &with_ca(&format!(
            "  mode: tls\n  auth: {{ username: {USER}, password: {PASSWORD} }}\n"
        )),
    ))
    .await;
    assert_outcome(&o, Reason::Ok, &["AUTH PLAIN accepted"]);
    assert!(sample(&o, STEP, Some(("step", "tls"))).is_some());
    assert!(sample(&o, STEP, Some(("step", "starttls"))).is_none());
    assert!(sample(&o, NOT_AFTER, None).is_some());
}

fn tls_acceptor(pair: &KeyPair) -> tokio_rustls::TlsAcceptor {
    let chain = std::fs::read(&pair.chain).unwrap();
    let certs = rustls_pemfile::certs(&mut chain.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = std::fs::read(&pair.key).unwrap();
    let key = rustls_pemfile::private_key(&mut key.as_slice())
        .unwrap()
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

#[test]
fn smtp_bad_blocks_are_refused_with_their_paths() {
    let errs = build_errors(
        "name: mail\nkind: smtp\nsmtp:\n  host: mail.example.org\n  mode: plain\n  \
         tls: { verify: false }\n  auth: { username: u }\n",
    );
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["smtp.tls", "smtp.auth"]);
}

/// Through the real agent: a scheduled check turns failing within one
/// interval plus its timeout after the server dies, recovers after it comes
/// back, exports its samples, and the password shows nowhere.
#[test]
fn smtp_through_the_agent_fails_within_interval_plus_timeout_and_recovers() {
    let mut server = Smtp::start(tls_server(&Certs::shared().leaf));
    let dir = tempdir("smtp-pack");
    std::fs::write(
        dir.path().join("mail.yaml"),
        format!(
            "pack: mail\nchecks:\n  - name: relay\n    kind: smtp\n    interval: 2s\n    \
             timeout: 2s\n    smtp:\n      host: 127.0.0.1\n      port: {}\n      \
             tls: {{ ca_file: {} }}\n      auth: {{ username: {USER}, password_env: \
             HP_TEST_SMTP_PW }}\n",
            server.port(),
            Certs::shared().ca.cert.display()
        ),
    )
    .unwrap();
    let agent = AgentProcess::start_with_env(
        &["--checks", dir.path().to_str().unwrap()],
        &[("HP_TEST_SMTP_PW", PASSWORD)],
    );
    let bound = Duration::from_secs(2 + 2 + 1);
    wait_state(&agent, "relay", "passing", Duration::from_secs(10));
    let metrics = agent.get("/metrics").text();
    for want in [
        "healthprobe_smtp_step_duration_seconds{",
        "step=\"starttls\"",
        "step=\"auth\"",
        "healthprobe_tls_cert_not_after_timestamp_seconds{",
    ] {
        assert!(metrics.contains(want), "no {want} in /metrics:\n{metrics}");
    }

    server.kill();
    let failing = wait_state(&agent, "relay", "failing", bound);
    assert_eq!(failing["reason"], "connection_refused", "{failing}");
    server.start_again();
    wait_state(&agent, "relay", "passing", bound);

    for path in [
        "/metrics",
        "/api/v1/checks",
        "/",
        "/probe?check=mail/relay&debug=true",
    ] {
        assert!(
            !agent.get(path).text().contains(PASSWORD),
            "{path} leaks the password"
        );
    }
    assert!(
        !agent.log_tail(500).contains(PASSWORD),
        "the log leaks the password"
    );
}
