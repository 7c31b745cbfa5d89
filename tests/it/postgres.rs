//! The `postgres` kind against a real PostgreSQL (Debian's), started on
//! 127.0.0.1 by the support code, with tables that look like Mastodon's.

use std::time::{Duration, Instant};

use healthprobe::checks::Reason;

use crate::mysql::{DbKind, assert_reason, run_check, run_raw};
use crate::support::certs::{Certs, KeyPair};
use crate::support::postgres::{Postgres, USER};
use crate::support::unique_name;

/// A database like Mastodon's on `pg`, owned by the `app` user; returns its name.
pub(crate) fn mastodon_db(pg: &Postgres) -> String {
    let name = unique_name("mastodon").replace('-', "_");
    pg.psql(&format!("CREATE DATABASE {name} OWNER {USER}"));
    pg.psql_db(
        &name,
        &format!(
            "SET ROLE {USER};
             CREATE TABLE schema_migrations (version character varying NOT NULL PRIMARY KEY);
             CREATE TABLE ar_internal_metadata (key character varying NOT NULL PRIMARY KEY, value character varying,
               created_at timestamp(6) NOT NULL, updated_at timestamp(6) NOT NULL);
             CREATE TABLE accounts (id bigint PRIMARY KEY, username character varying NOT NULL DEFAULT '',
               domain character varying, suspended_at timestamp, created_at timestamp NOT NULL DEFAULT now(),
               updated_at timestamp NOT NULL DEFAULT now());"
        ),
    );
    name
}

const POSTGRES: DbKind = DbKind {
    name: "postgres",
    scheme: "postgres",
    display: "PostgreSQL",
    auth_code: "(SQLSTATE 28P01)",
    tls_query: "SELECT ssl::int FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
};

fn conn(pg: &Postgres, database: &str) -> String {
    POSTGRES.conn(pg.port(), database)
}

fn check(body: &str) -> String {
    POSTGRES.check("5s", body)
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_query_value_against_bounds() {
    let pg = Postgres::shared();
    let db = mastodon_db(pg);
    let suspended = |max: u32| {
        check(&format!(
            "{}  query: SELECT count(*) FROM accounts WHERE suspended_at IS NOT NULL AND domain IS NULL\n  what: suspended local accounts\n  expect: {{ value: {{ max: {max} }} }}\n",
            conn(pg, &db)
        ))
    };
    let o = run_check(&suspended(0)).await;
    assert_reason(&o, Reason::Ok);
    assert_eq!(o.value, Some(0.0));
    assert_eq!(
        o.message,
        "suspended local accounts is 0, within the maximum 0"
    );

    pg.psql_db(
        &db,
        "INSERT INTO accounts (id, username, suspended_at) VALUES (1, 'a', now()), (2, 'b', now()), (3, 'c', NULL)",
    );
    let o = run_check(&suspended(1)).await;
    assert_reason(&o, Reason::AssertionFailed);
    assert_eq!(o.value, Some(2.0));
    assert_eq!(
        o.message,
        "suspended local accounts is 2, above the maximum 1"
    );

    // Booleans and decimals read as numbers; a write is refused (read-only).
    let o = run_check(&check(&format!(
        "{}  query: SELECT EXISTS (SELECT 1 FROM accounts WHERE username = 'a')\n  expect: {{ value: {{ equals: 1 }} }}\n",
        conn(pg, &db)
    )))
    .await;
    assert_reason(&o, Reason::Ok);
    let o = run_check(&check(&format!(
        "{}  query: DELETE FROM accounts RETURNING 1\n",
        conn(pg, &db)
    )))
    .await;
    assert_reason(&o, Reason::PermissionDenied);
    assert!(o.message.contains("read-only transaction"), "{}", o.message);
    assert_eq!(pg.psql_db(&db, "SELECT count(*) FROM accounts").trim(), "3");
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_wrong_password_is_auth_failed_and_never_echoed() {
    let pg = Postgres::shared();
    POSTGRES.wrong_password(pg.port()).await;
    // No password at all, where the server asks for one.
    let o = run_raw(&check(&format!(
        "{}  query: SELECT 1\n",
        POSTGRES.url(pg.port(), "app")
    )))
    .await;
    assert_reason(&o, Reason::AuthFailed);
    assert!(o.message.contains("none is configured"), "{}", o.message);
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_unknown_database_and_missing_table_are_not_found() {
    let pg = Postgres::shared();
    let o = run_check(&check(&format!(
        "{}  query: SELECT 1\n",
        conn(pg, "nope_db")
    )))
    .await;
    assert_reason(&o, Reason::NotFound);
    assert!(
        o.message.starts_with(&format!(
            "database `nope_db` does not exist on PostgreSQL at 127.0.0.1:{}",
            pg.port()
        )),
        "{}",
        o.message
    );
    let o = run_check(&check(&format!(
        "{}  query: SELECT count(*) FROM no_such_accounts\n",
        conn(pg, "app")
    )))
    .await;
    assert_reason(&o, Reason::NotFound);
    assert!(
        o.message
            .contains("relation \"no_such_accounts\" does not exist (SQLSTATE 42P01)"),
        "{}",
        o.message
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_refused_and_silent_servers() {
    POSTGRES.refused().await;
    POSTGRES.silent().await;

    // A query that runs past query_timeout.
    let pg = Postgres::shared();
    let started = Instant::now();
    let o = run_check(&check(&format!(
        "{}  query_timeout: 1s\n  query: SELECT 1 FROM pg_sleep(10)\n",
        conn(pg, "app")
    )))
    .await;
    assert_reason(&o, Reason::Timeout);
    assert!(
        o.message.contains(
            "while running the query `SELECT 1 FROM pg_sleep(10)`: gave up after query_timeout 1s"
        ),
        "{}",
        o.message
    );
    // It gave up long before the query would have ended (10 s); the margin
    // leaves room for a loaded machine, this is no speed target.
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_killed_server_fails_then_recovers() {
    let pg = std::sync::Mutex::new(Postgres::start());
    let port = pg.lock().unwrap().port();
    POSTGRES
        .kill_and_recover(
            port,
            || pg.lock().unwrap().kill(),
            || pg.lock().unwrap().start_again(),
        )
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_tls_verified_and_its_failures_spelled_out() {
    let pg = Postgres::start();
    let install = |pair: &KeyPair| {
        let cert = pg.install_file(&pair.cert, "server.crt");
        let key = pg.install_file(&pair.key, "server.key");
        pg.psql("ALTER SYSTEM SET ssl = on");
        pg.psql(&format!(
            "ALTER SYSTEM SET ssl_cert_file = '{}'",
            cert.display()
        ));
        pg.psql(&format!(
            "ALTER SYSTEM SET ssl_key_file = '{}'",
            key.display()
        ));
        pg.psql("SELECT pg_reload_conf()");
        // The reload is asynchronous: wait until new sessions see it.
        let until = Instant::now() + Duration::from_secs(10);
        while pg.psql("SHOW ssl").trim() != "on" {
            assert!(Instant::now() < until, "ssl did not turn on");
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    install(&Certs::shared().leaf);
    POSTGRES
        .tls(pg.port(), Postgres::shared().port(), install)
        .await;
}
