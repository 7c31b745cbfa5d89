use std::time::Duration;

use super::*;

fn ctx() -> BuildContext {
    BuildContext {
        timeout: Duration::from_secs(10),
        pack_dir: None,
    }
}

fn build(f: ConnectionFields<'_>, engine: Engine) -> Result<Connection, Vec<FieldError>> {
    Connection::build(&f, Some(engine), "", &ctx())
}

fn fields() -> ConnectionFields<'static> {
    ConnectionFields::default()
}

#[test]
fn url_and_fields_build_the_same_connection() {
    let a = build(
        ConnectionFields {
            url: Some("mysql://ninja@db.local/ninja"),
            ..fields()
        },
        Engine::Mysql,
    )
    .unwrap();
    let b = build(
        ConnectionFields {
            host: Some("db.local"),
            user: Some("ninja"),
            database: Some("ninja"),
            ..fields()
        },
        Engine::Mysql,
    )
    .unwrap();
    assert_eq!(a, b);
    assert_eq!(a.place(), "db.local:3306");
    assert_eq!(a.describe(), "MySQL at db.local:3306");
}

#[test]
fn engine_comes_from_the_url_when_the_kind_serves_both() {
    let c = Connection::build(
        &ConnectionFields {
            url: Some("postgresql://m@127.0.0.1/mastodon"),
            ..fields()
        },
        None,
        "engine",
        &ctx(),
    )
    .unwrap();
    assert_eq!(c.engine, Engine::Postgres);
    let e = Connection::build(
        &ConnectionFields {
            host: Some("h"),
            user: Some("u"),
            ..fields()
        },
        None,
        "engine",
        &ctx(),
    )
    .unwrap_err();
    assert_eq!(e[0].path, "engine");
}

#[test]
fn a_password_in_the_url_is_a_registered_secret() {
    let c = build(
        ConnectionFields {
            url: Some("mysql://u:url-secret-9931@h/db"),
            ..fields()
        },
        Engine::Mysql,
    )
    .unwrap();
    assert!(!format!("{c:?}").contains("url-secret-9931"));
    assert_eq!(
        crate::redact::redact("x url-secret-9931 y"),
        "x <redacted> y"
    );
    let e = build(
        ConnectionFields {
            url: Some("mysql://u:url-secret-9931@h/db"),
            password_env: Some("DB_PASSWORD"),
            ..fields()
        },
        Engine::Mysql,
    )
    .unwrap_err();
    assert!(e[0].message.contains("already holds a password"));
    assert!(!e[0].message.contains("url-secret-9931"));
}

#[test]
fn where_the_server_is_must_be_said_once() {
    let e = build(
        ConnectionFields {
            user: Some("u"),
            ..fields()
        },
        Engine::Postgres,
    )
    .unwrap_err();
    assert_eq!(e[0].path, "host");
    assert!(
        e[0].message.contains("postgres://USER@HOST"),
        "{}",
        e[0].message
    );
    let e = build(
        ConnectionFields {
            host: Some("h"),
            socket: Some(Path::new("/run/mysqld/mysqld.sock")),
            user: Some("u"),
            ..fields()
        },
        Engine::Mysql,
    )
    .unwrap_err();
    assert_eq!(e[0].path, "socket");
}

#[test]
fn postgres_socket_file_or_directory() {
    let c = build(
        ConnectionFields {
            socket: Some(Path::new("/run/postgresql/.s.PGSQL.5433")),
            user: Some("postgres"),
            ..fields()
        },
        Engine::Postgres,
    )
    .unwrap();
    assert_eq!(
        c.endpoint,
        Endpoint::Socket {
            path: "/run/postgresql".into(),
            port: 5433
        }
    );
    let c = build(
        ConnectionFields {
            socket: Some(Path::new("/run/postgresql")),
            user: Some("postgres"),
            ..fields()
        },
        Engine::Postgres,
    )
    .unwrap();
    assert_eq!(c.place(), "socket /run/postgresql/.s.PGSQL.5432");
}

#[test]
fn tls_block_defaults_to_on_and_verified() {
    let tls = DbTlsSpec {
        enabled: true,
        verify: true,
        ca_file: Some("relative.pem".into()),
    };
    let e = build(
        ConnectionFields {
            host: Some("h"),
            user: Some("u"),
            tls: Some(&tls),
            ..fields()
        },
        Engine::Mysql,
    )
    .unwrap_err();
    assert_eq!(e[0].path, "tls.ca_file");
    let node = crate::config::yaml::parse("ca_file: /etc/ca.pem\n")
        .unwrap()
        .unwrap();
    let spec: DbTlsSpec =
        crate::config::yaml::from_node(&node, "", &|s: &str| Ok(s.to_string())).unwrap();
    assert!(spec.enabled && spec.verify);
}

#[test]
fn numbers_from_cells() {
    assert_eq!(parse_number("12"), Some(12.0));
    assert_eq!(parse_number(" 0.75 "), Some(0.75));
    assert_eq!(parse_number("t"), Some(1.0));
    assert_eq!(parse_number("OFF"), Some(0.0));
    assert_eq!(parse_number("NaN"), None);
    assert_eq!(parse_number("abc"), None);
    let rows: Rows = vec![vec![Some("12".into())]];
    assert_eq!(single_number(&rows, "SELECT 12").unwrap(), 12.0);
    let e = single_number(&vec![], "SELECT x FROM t WHERE false").unwrap_err();
    assert_eq!(e.reason, Reason::AssertionFailed);
    assert!(e.message.contains("returned no row"), "{}", e.message);
    let e = single_number(&vec![vec![None]], "SELECT MAX(id) FROM t").unwrap_err();
    assert!(e.message.contains("NULL"), "{}", e.message);
    let e = single_number(&vec![vec![Some("ready".into())]], "SELECT s").unwrap_err();
    assert!(
        e.message.contains("`ready`, which is not a number"),
        "{}",
        e.message
    );
}

#[test]
fn judged_values_say_what_against_what() {
    let judge = ValueJudge::new(
        Some("rows in jobs"),
        Some("the queue worker is not running"),
        &ValueExpect {
            value: ValueBounds {
                equals: Some(0.0),
                ..Default::default()
            },
        },
        "unused",
    );
    let o = judge.judge(12.0, None);
    assert_eq!(o.reason, Reason::AssertionFailed);
    assert_eq!(o.value, Some(12.0));
    assert_eq!(
        o.message,
        "rows in jobs is 12, expected exactly 0 — the queue worker is not running"
    );
    let o = judge.judge(0.0, None);
    assert!(o.success());
    assert_eq!(o.message, "rows in jobs is 0, as expected (exactly 0)");
    let headroom = ValueJudge::new(
        None,
        None,
        &ValueExpect {
            value: ValueBounds {
                max: Some(0.8),
                ..Default::default()
            },
        },
        "Threads_connected/max_connections",
    );
    let o = headroom.judge(0.85, Some("170 of 200 connections".into()));
    assert_eq!(
        o.message,
        "Threads_connected/max_connections is 0.85, above the maximum 0.8 (170 of 200 connections)"
    );
    let free = ValueJudge::new(None, None, &ValueExpect::default(), "x");
    assert_eq!(free.judge(3.0, None).message, "x is 3");
}

#[test]
fn small_helpers() {
    assert_eq!(human_bytes(67108864.0), "64 MiB");
    assert_eq!(human_bytes(16777216.0), "16 MiB");
    assert_eq!(human_bytes(1536.0), "1.5 KiB");
    assert_eq!(human_bytes(100.0), "100 B");
    assert_eq!(
        shorten("SELECT  COUNT(*)\n  FROM jobs", 80),
        "SELECT COUNT(*) FROM jobs"
    );
    assert_eq!(shorten("abcdef", 4), "abc…");
    assert!(validate_identifier("t", "schema_migrations").is_ok());
    assert!(validate_identifier("t", "public.schema_migrations").is_ok());
    assert!(validate_identifier("t", "x; DROP TABLE y").is_err());
    assert!(validate_identifier("t", "a.b.c").is_err());
    assert_eq!(
        quote_identifier(Engine::Postgres, "public.schema_migrations"),
        "\"public\".\"schema_migrations\""
    );
    assert_eq!(
        quote_identifier(Engine::Mysql, "migrations"),
        "`migrations`"
    );
}

#[tokio::test]
async fn localhost_resolves_without_the_network_and_ips_pass_through() {
    assert_eq!(
        resolve("127.0.0.1", 1).await.unwrap(),
        vec!["127.0.0.1".parse::<IpAddr>().unwrap()]
    );
    let ips = resolve("localhost", 1).await.unwrap();
    assert!(ips.iter().all(|ip| ip.is_loopback()), "{ips:?}");
}

#[test]
fn io_errors_in_words() {
    let c = build(
        ConnectionFields {
            host: Some("127.0.0.1"),
            port: Some(1),
            user: Some("u"),
            ..fields()
        },
        Engine::Mysql,
    )
    .unwrap();
    let e = io_error(
        &std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        &c,
        Step::Connect,
    );
    assert_eq!(e.reason, Reason::ConnectionRefused);
    assert!(e.message.contains("127.0.0.1:1"), "{}", e.message);
    let e = io_error(
        &std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
        &c,
        Step::Query,
    );
    assert_eq!(e.reason, Reason::ProtocolError);
    assert!(e.message.contains("during the query"), "{}", e.message);
}
