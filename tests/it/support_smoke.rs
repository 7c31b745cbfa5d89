//! Smoke tests of the test support code: each starts a real server and
//! checks one real thing against it.

use std::time::Duration;

use crate::support::certs::Certs;
use crate::support::dockerd::Dockerd;
use crate::support::mariadb::Mariadb;
use crate::support::nginx::Nginx;
use crate::support::postgres::Postgres;
use crate::support::prometheus::{Prometheus, PrometheusOptions, sample_values};
use crate::support::smtp::{Smtp, SmtpMode, SmtpOptions, read_reply, starttls_handshake};
use crate::support::{http, unique_name};

async fn mysql_select_one(url: &str) -> Result<i64, mysql_async::Error> {
    use mysql_async::prelude::Queryable;
    let pool = mysql_async::Pool::new(url);
    let mut conn = pool.get_conn().await?;
    let one: Option<i64> = conn.query_first("SELECT 1").await?;
    drop(conn);
    pool.disconnect().await?;
    Ok(one.unwrap_or_default())
}

#[tokio::test]
async fn support_mariadb_select_one_over_tcp_with_password() {
    let db = Mariadb::shared();
    assert_eq!(mysql_select_one(&db.tcp_url()).await.unwrap(), 1);
    let bad = db.tcp_url().replace(db.password(), "wrong");
    assert!(
        mysql_select_one(&bad).await.is_err(),
        "a wrong password must be refused"
    );
}

#[tokio::test]
async fn support_mariadb_stop_and_start_again_keeps_port_and_data() {
    let mut db = Mariadb::start();
    let port = db.port();
    db.exec_sql("CREATE TABLE app.t (v INT); INSERT INTO app.t VALUES (42);");

    db.kill();
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "still listening after kill"
    );
    db.start_again();
    assert_eq!(db.port(), port);
    assert_eq!(db.exec_sql("SELECT v FROM app.t").trim(), "42");

    db.stop();
    assert!(!db.is_running());
    db.start_again();
    assert_eq!(mysql_select_one(&db.tcp_url()).await.unwrap(), 1);
}

#[tokio::test]
async fn support_postgres_select_one_over_tcp_with_scram_password() {
    let pg = Postgres::shared();
    let (client, conn) = tokio_postgres::connect(&pg.tcp_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let row = client.query_one("SELECT 1::int4", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 1);
    drop(client);
    conn.await.unwrap().unwrap();

    let bad = pg.tcp_url().replace(pg.password(), "wrong");
    let err = tokio_postgres::connect(&bad, tokio_postgres::NoTls)
        .await
        .err()
        .unwrap();
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::INVALID_PASSWORD),
        "{err:?}"
    );
    assert_eq!(pg.psql("SELECT current_database()").trim(), "app");
}

#[test]
fn support_dockerd_runs_a_busybox_container() {
    let d = Dockerd::shared();
    let name = unique_name("smoke");
    let id = d.run_busybox(&name, &[], &["sleep", "600"]);
    let ps = d.docker(&["ps", "--format", "{{.Names}} {{.Image}} {{.Status}}"]);
    d.docker(&["rm", "-f", &id]);
    let line = ps
        .lines()
        .find(|l| l.starts_with(&name))
        .unwrap_or_else(|| panic!("{ps}"));
    assert!(line.contains("hp-busybox") && line.contains("Up"), "{line}");
}

#[test]
fn support_nginx_returns_configured_header() {
    let n = Nginx::start(r#"location / { add_header X-Hp-Smoke yes always; return 200 "ok\n"; }"#);
    let resp = http::get(&n.url("/")).unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-hp-smoke"), Some("yes"));
    assert_eq!(resp.text(), "ok\n");
}

#[tokio::test]
async fn support_smtp_starttls_trusts_ca_and_rejects_expired() {
    let certs = Certs::shared();
    let good = Smtp::start(SmtpOptions {
        tls: Some(certs.leaf.clone()),
        ..Default::default()
    });
    let expired = Smtp::start(SmtpOptions {
        tls: Some(certs.expired.clone()),
        ..Default::default()
    });
    let config = certs.rustls_client_config();
    starttls_handshake(good.addr(), config.clone(), "localhost")
        .await
        .expect("STARTTLS with the CA-signed leaf");
    let err = starttls_handshake(expired.addr(), config, "localhost")
        .await
        .expect_err("the expired certificate must be rejected");
    assert!(err.to_string().to_lowercase().contains("expired"), "{err}");
}

#[tokio::test]
async fn support_smtp_drop_after_banner() {
    let s = Smtp::start(SmtpOptions {
        mode: SmtpMode::DropAfterBanner,
        ..Default::default()
    });
    let stream = tokio::net::TcpStream::connect(s.addr()).await.unwrap();
    let mut r = tokio::io::BufReader::new(stream);
    assert!(read_reply(&mut r).await.unwrap().starts_with("220"));
    assert!(
        read_reply(&mut r).await.is_err(),
        "the connection should be closed"
    );
}

#[test]
fn support_prometheus_scrapes_and_evaluates_rules() {
    let target = Nginx::start(
        r#"location = /metrics { default_type text/plain; return 200 "hp_smoke_value 21\n"; }"#,
    );
    let rules = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        rules.path(),
        "groups:\n  - name: smoke\n    rules:\n      - record: hp_smoke_doubled\n        expr: hp_smoke_value * 2\n",
    )
    .unwrap();
    let prom = Prometheus::start(PrometheusOptions {
        scrape_targets: vec![format!("127.0.0.1:{}", target.port())],
        rule_files: vec![rules.path().to_path_buf()],
        ..Default::default()
    });
    let result = prom.wait_for(
        "hp_smoke_doubled",
        |r| sample_values(r) == [42.0],
        Duration::from_secs(30),
    );
    assert_eq!(result[0]["metric"]["job"], "healthprobe");
    assert_eq!(sample_values(&prom.query("up")), [1.0]);
}

#[test]
fn support_postgres_kill_and_start_again_keeps_committed_data() {
    let mut pg = Postgres::start();
    pg.psql("CREATE TABLE t (v int); INSERT INTO t VALUES (7)");
    pg.kill();
    pg.start_again();
    assert_eq!(pg.psql("SELECT v FROM t").trim(), "7");
}

#[test]
fn support_dockerd_kill_and_start_again() {
    let mut d = Dockerd::start();
    d.run_busybox("left-running", &[], &["sleep", "600"]);
    d.kill();
    // The killed daemon's containerd stays a zombie here; start_again must
    // not wait for it, and the restored container is stopped promptly.
    d.start_again();
    let id = d.run_busybox("after-restart", &[], &["sleep", "600"]);
    assert_eq!(
        d.docker(&["inspect", "-f", "{{.State.Running}}", &id]),
        "true"
    );
}

#[tokio::test]
async fn support_smtp_auth_plain_after_starttls() {
    use tokio::io::AsyncWriteExt;
    let certs = Certs::shared();
    let with_user = Smtp::start(SmtpOptions {
        tls: Some(certs.leaf.clone()),
        auth: Some(("mailer".into(), "s3cret".into())),
        ..Default::default()
    });
    let refusing = Smtp::start(SmtpOptions {
        tls: Some(certs.leaf.clone()),
        ..Default::default()
    });
    // base64("\0mailer\0s3cret")
    let auth = b"AUTH PLAIN AG1haWxlcgBzM2NyZXQ=\r\n";
    for (server, expected) in [(&with_user, "235"), (&refusing, "535")] {
        let tls = starttls_handshake(server.addr(), certs.rustls_client_config(), "127.0.0.1")
            .await
            .unwrap();
        let mut tls = tokio::io::BufReader::new(tls);
        tls.get_mut().write_all(b"EHLO t\r\n").await.unwrap();
        assert!(read_reply(&mut tls).await.unwrap().contains("AUTH"));
        tls.get_mut().write_all(auth).await.unwrap();
        let reply = read_reply(&mut tls).await.unwrap();
        assert!(reply.starts_with(expected), "{reply}");
    }
}
