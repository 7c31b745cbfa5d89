//! The `mysql` kind against a real MariaDB (Debian's), started on 127.0.0.1
//! by the support code, with a schema that looks like Invoice Ninja's (`jobs`,
//! `failed_jobs`, `accounts`, `migrations`). Also the helpers the `postgres`
//! and `migrations` tests share: build a check from its YAML, run it, a port
//! nobody listens on, a listener that never answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use healthprobe::checks::{BuildContext, CheckSpec, Outcome, Probe, Reason, RunContext, runner};
use healthprobe::config::yaml;
use tokio::net::TcpListener;

use crate::support::certs::{Certs, KeyPair};
use crate::support::mariadb::{Mariadb, MariadbOptions, PASSWORD, USER};
use crate::support::{free_port, tempdir, unique_name};

/// A check built from the YAML of one check (as in a pack's `checks:`), and
/// its timeout.
pub(crate) fn build(check_yaml: &str) -> (Arc<Probe>, Duration) {
    let node = yaml::parse(check_yaml).unwrap().unwrap();
    let spec: CheckSpec = yaml::from_node(&node, "", &|s: &str| Ok(s.to_string()))
        .unwrap_or_else(|e| panic!("{e:?}\n{check_yaml}"));
    let timeout = spec
        .timeout
        .map(Into::into)
        .unwrap_or(Duration::from_secs(10));
    let ctx = BuildContext {
        timeout,
        pack_dir: None,
    };
    let probe = Probe::build(&spec, &ctx).unwrap_or_else(|e| panic!("{e:?}\n{check_yaml}"));
    (Arc::new(probe), timeout)
}

/// Runs the check once through the runner (hard timeout, redaction), keeping
/// observations.
pub(crate) use crate::probe_util::run as run_check;

/// Runs the check once *without* the runner, so nothing masks what the kind
/// itself wrote (for the tests that a secret never appears).
pub(crate) async fn run_raw(check_yaml: &str) -> Outcome {
    let (probe, timeout) = build(check_yaml);
    let ctx = RunContext {
        deadline: tokio::time::Instant::now() + timeout,
        debug: true,
    };
    probe.run(&ctx).await
}

#[track_caller]
pub(crate) fn assert_reason(o: &Outcome, reason: Reason) {
    assert_eq!(
        o.reason, reason,
        "expected {reason}, got {}: {}\nobservations: {:?}",
        o.reason, o.message, o.observations
    );
}

#[track_caller]
pub(crate) fn assert_absent(o: &Outcome, secret: &str) {
    let all = format!("{o:?}");
    assert!(!all.contains(secret), "the secret leaked: {all}");
}

/// A TCP listener that accepts connections and never says a word.
pub(crate) async fn silent_listener() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    (port, task)
}

/// Results of repeated runs, with when each was recorded.
pub(crate) type Seen = Arc<std::sync::Mutex<Vec<(Instant, Outcome)>>>;

/// Runs `probe` every `every` in the background, recording each result, until
/// the returned flag is set.
pub(crate) fn run_repeatedly(
    probe: Arc<Probe>,
    timeout: Duration,
    every: Duration,
) -> (Arc<AtomicBool>, Seen) {
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (s, r) = (stop.clone(), seen.clone());
    tokio::spawn(async move {
        while !s.load(Ordering::Relaxed) {
            let rec = runner::execute(probe.clone(), timeout, false).await;
            r.lock().unwrap().push((Instant::now(), rec.outcome));
            tokio::time::sleep(every).await;
        }
    });
    (stop, seen)
}

/// Waits (up to `limit`) for a result after `after` that satisfies `pred`;
/// returns when it was recorded.
pub(crate) async fn wait_for(
    seen: &std::sync::Mutex<Vec<(Instant, Outcome)>>,
    after: Instant,
    limit: Duration,
    what: &str,
    pred: impl Fn(&Outcome) -> bool,
) -> Instant {
    let until = Instant::now() + limit;
    loop {
        if let Some((t, _)) = seen
            .lock()
            .unwrap()
            .iter()
            .find(|(t, o)| *t > after && pred(o))
        {
            return *t;
        }
        if Instant::now() > until {
            let got: Vec<String> = seen
                .lock()
                .unwrap()
                .iter()
                .map(|(_, o)| format!("{}: {}", o.reason, o.message))
                .collect();
            panic!("no {what} within {limit:?}; results: {got:#?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `probe` every 200 ms while the server is crashed with `kill` and
/// started again with `start_again`: the check must pass, fail within one
/// interval plus its timeout of the kill (and report `connection_refused`
/// while the server is down), then pass again.
pub(crate) async fn kill_and_recover(
    probe: Arc<Probe>,
    timeout: Duration,
    kill: impl FnOnce(),
    start_again: impl FnOnce(),
) {
    let every = Duration::from_millis(200);
    let (stop, seen) = run_repeatedly(probe, timeout, every);
    let secs = Duration::from_secs;
    wait_for(
        &seen,
        Instant::now(),
        secs(20),
        "first success",
        Outcome::success,
    )
    .await;

    let killed_at = Instant::now();
    tokio::task::block_in_place(kill);
    let failing = |o: &Outcome| !o.success();
    let failed_at = wait_for(
        &seen,
        killed_at,
        secs(10),
        "failure after the kill",
        failing,
    )
    .await;
    assert!(
        failed_at - killed_at <= every + timeout + Duration::from_millis(500),
        "failing only {:?} after the kill",
        failed_at - killed_at
    );
    let refused = |o: &Outcome| o.reason == Reason::ConnectionRefused;
    wait_for(&seen, killed_at, secs(10), "connection_refused", refused).await;

    let restarted_at = Instant::now();
    tokio::task::block_in_place(start_again);
    wait_for(&seen, restarted_at, secs(20), "recovery", Outcome::success).await;
    stop.store(true, Ordering::Relaxed);
}

/// What differs between the two database kinds in the tests they share.
pub(crate) struct DbKind {
    /// The kind's name, also its block's name.
    pub name: &'static str,
    pub scheme: &'static str,
    /// How messages name the server.
    pub display: &'static str,
    /// How a refused login is quoted from the server.
    pub auth_code: &'static str,
    /// A query that returns 1 when the session is encrypted.
    pub tls_query: &'static str,
}

pub(crate) const MYSQL: DbKind = DbKind {
    name: "mysql",
    scheme: "mysql",
    display: "MySQL",
    auth_code: "(MySQL error 1045)",
    tls_query: "SELECT VARIABLE_VALUE <> '' FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'Ssl_cipher'",
};

impl DbKind {
    /// The YAML of a check of this kind named `t`, whose block is `body`
    /// (lines indented by two spaces).
    pub(crate) fn check(&self, timeout: &str, body: &str) -> String {
        let kind = self.name;
        format!("name: t\nkind: {kind}\ntimeout: {timeout}\n{kind}:\n{body}")
    }

    /// The `url:` line for the test user on `port`.
    pub(crate) fn url(&self, port: u16, database: &str) -> String {
        format!(
            "  url: {}://{USER}@127.0.0.1:{port}/{database}\n",
            self.scheme
        )
    }

    /// The connection lines (url and the right password) for `port`.
    pub(crate) fn conn(&self, port: u16, database: &str) -> String {
        format!("{}  password: {PASSWORD}\n", self.url(port, database))
    }

    /// Nobody listens on the port: `connection_refused`, naming the address.
    pub(crate) async fn refused(&self) {
        let port = free_port();
        let o = run_check(&self.check(
            "5s",
            &format!("{}  query: SELECT 1\n", self.url(port, "app")),
        ))
        .await;
        assert_reason(&o, Reason::ConnectionRefused);
        let expected =
            format!("nothing accepts connections at 127.0.0.1:{port} (connection refused)");
        assert!(o.message.starts_with(&expected), "{}", o.message);
    }

    /// A listener that accepts and never answers: `timeout` naming the step,
    /// before the check's own timeout, with and without `connect_timeout`.
    pub(crate) async fn silent(&self) {
        let (port, _task) = silent_listener().await;
        let block = format!("{}  query: SELECT 1\n", self.url(port, "app"));
        let started = Instant::now();
        let o = run_check(&self.check("2s", &format!("{block}  connect_timeout: 1s\n"))).await;
        assert_reason(&o, Reason::Timeout);
        assert_eq!(
            o.message,
            format!(
                "{} at 127.0.0.1:{port} did not answer in time while connecting (TCP, login as `app`): gave up after connect_timeout 1s",
                self.display
            )
        );
        assert!(
            // The message proves which limit fired; this only proves nothing
            // hung (with room for a loaded machine).
            started.elapsed() < Duration::from_secs(4),
            "took {:?}",
            started.elapsed()
        );

        // Without connect_timeout the step still ends before the check's
        // timeout, with a message naming the step (not the runner's).
        let started = Instant::now();
        let o = run_check(&self.check("2s", &block)).await;
        assert_reason(&o, Reason::Timeout);
        assert!(
            o.message.contains("while connecting")
                && o.message.contains("what was left of the check's timeout"),
            "{}",
            o.message
        );
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "took {:?}",
            started.elapsed()
        );
    }

    /// A wrong password (in the block, in the URL, in a file): `auth_failed`,
    /// the server's refusal quoted, the password nowhere in the outcome.
    pub(crate) async fn wrong_password(&self, port: u16) {
        let canary = format!("Wrong-{}-canary-5521", self.name);
        let url = self.url(port, "app");
        let o = run_raw(&self.check(
            "5s",
            &format!("{url}  password: {canary}\n  query: SELECT 1\n"),
        ))
        .await;
        assert_reason(&o, Reason::AuthFailed);
        assert_absent(&o, &canary);
        assert!(
            o.message.contains("refused the login of user `app`")
                && o.message.contains(self.auth_code)
                && o.message
                    .contains("check the password (from the value in the pack)"),
            "{}",
            o.message
        );
        assert_eq!(o.value, None);

        let in_url = url.replace(&format!("{USER}@"), &format!("{USER}:{canary}@"));
        let o = run_raw(&self.check("5s", &format!("{in_url}  query: SELECT 1\n"))).await;
        assert_reason(&o, Reason::AuthFailed);
        assert_absent(&o, &canary);

        let dir = tempdir("db-pw");
        let pw = dir.path().join("pw");
        std::fs::write(&pw, &canary).unwrap();
        let o = run_raw(&self.check(
            "5s",
            &format!(
                "{url}  password_file: {}\n  query: SELECT 1\n",
                pw.display()
            ),
        ))
        .await;
        assert_reason(&o, Reason::AuthFailed);
        assert_absent(&o, &canary);
        assert!(
            o.message.contains(&pw.display().to_string()),
            "{}",
            o.message
        );
    }

    /// The server on `port` crashed and started again while the check runs
    /// every 200 ms: see [`kill_and_recover`].
    pub(crate) async fn kill_and_recover(
        &self,
        port: u16,
        kill: impl FnOnce(),
        start_again: impl FnOnce(),
    ) {
        let (probe, timeout) = build(&self.check(
            "2s",
            &format!("{}  query: SELECT 1\n", self.conn(port, "app")),
        ));
        kill_and_recover(probe, timeout, kill, start_again).await;
    }

    /// TLS against the server on `port`, which presents `certs.leaf` and on
    /// which `install` puts another certificate in place: verified, unknown
    /// authority, `verify: false`, expired, name mismatch; and a server
    /// without TLS (`plain_port`) asked for it.
    pub(crate) async fn tls(&self, port: u16, plain_port: u16, install: impl Fn(&KeyPair)) {
        let certs = Certs::shared();
        let tls_check = |tls: String| {
            self.check(
                "5s",
                &format!(
                    "{}  tls: {tls}\n  query: {}\n  expect: {{ value: {{ equals: 1 }} }}\n",
                    self.conn(port, "app"),
                    self.tls_query
                ),
            )
        };
        let ca = certs.ca.cert.display();
        let other_ca = certs.self_signed.cert.display();
        let o = run_check(&tls_check(format!("{{ ca_file: {ca} }}"))).await;
        assert_reason(&o, Reason::Ok);
        let o = run_check(&tls_check(format!("{{ ca_file: {other_ca} }}"))).await;
        assert_reason(&o, Reason::TlsError);
        let unknown = "certificate verify failed: unknown authority";
        assert!(o.message.contains(unknown), "{}", o.message);
        let o = run_check(&tls_check(format!(
            "{{ ca_file: {other_ca}, verify: false }}"
        )))
        .await;
        assert_reason(&o, Reason::Ok);

        for (pair, expected) in [
            (
                &certs.expired,
                "certificate verify failed: the server's certificate has expired",
            ),
            (
                &certs.wrong_name,
                "name mismatch: the server's certificate is not valid for `127.0.0.1`",
            ),
        ] {
            tokio::task::block_in_place(|| install(pair));
            let o = run_check(&tls_check(format!("{{ ca_file: {ca} }}"))).await;
            assert_reason(&o, Reason::TlsError);
            assert!(o.message.contains(expected), "{}", o.message);
        }

        let body = format!(
            "{}  tls: {{ ca_file: {ca} }}\n  query: SELECT 1\n",
            self.conn(plain_port, "app")
        );
        let o = run_check(&self.check("5s", &body)).await;
        assert_reason(&o, Reason::TlsError);
        assert!(o.message.contains("does not offer TLS"), "{}", o.message);
    }
}

/// A database like Invoice Ninja's on `db` (granted to the `app` user);
/// returns its name.
pub(crate) fn invoice_ninja_db(db: &Mariadb) -> String {
    let name = unique_name("ninja").replace('-', "_");
    db.exec_sql(&format!(
        "CREATE DATABASE `{name}`;
         GRANT ALL PRIVILEGES ON `{name}`.* TO '{USER}'@'127.0.0.1';
         USE `{name}`;
         CREATE TABLE jobs (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, queue VARCHAR(255) NOT NULL,
           payload LONGTEXT NOT NULL, attempts TINYINT UNSIGNED NOT NULL, reserved_at INT UNSIGNED NULL,
           available_at INT UNSIGNED NOT NULL, created_at INT UNSIGNED NOT NULL, KEY jobs_queue_index (queue));
         CREATE TABLE failed_jobs (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, uuid VARCHAR(255) NOT NULL UNIQUE,
           connection TEXT NOT NULL, queue TEXT NOT NULL, payload LONGTEXT NOT NULL, exception LONGTEXT NOT NULL,
           failed_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP);
         CREATE TABLE accounts (id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY, plan VARCHAR(255) NULL,
           created_at TIMESTAMP NULL, updated_at TIMESTAMP NULL);
         CREATE TABLE migrations (id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY, migration VARCHAR(255) NOT NULL,
           batch INT NOT NULL);"
    ));
    name
}

/// The `mysql:` block's connection lines for `db` / `database`.
fn conn(db: &Mariadb, database: &str) -> String {
    MYSQL.conn(db.port(), database)
}

fn check(body: &str) -> String {
    MYSQL.check("5s", body)
}

fn jobs_check(db: &Mariadb, database: &str) -> String {
    check(&format!(
        "{}  query: SELECT COUNT(*) FROM jobs\n  what: rows in jobs\n  meaning: the queue worker is not running\n  expect: {{ value: {{ equals: 0 }} }}\n",
        conn(db, database)
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_jobs_empty_passes_and_rows_fail_with_the_count() {
    let db = Mariadb::shared();
    let ninja = invoice_ninja_db(db);

    let o = run_check(&jobs_check(db, &ninja)).await;
    assert_reason(&o, Reason::Ok);
    assert_eq!(o.value, Some(0.0));
    assert_eq!(o.message, "rows in jobs is 0, as expected (exactly 0)");
    let phases: Vec<&str> = o
        .samples
        .iter()
        .filter(|s| s.family.name == "healthprobe_database_phase_duration_seconds")
        .map(|s| s.labels[0].1.as_str())
        .collect();
    assert_eq!(phases, ["connect", "query"], "an IP needs no dns step");

    let rows: Vec<String> = (0..12)
        .map(|i| format!("('default', '{{\"job\":{i}}}', 0, UNIX_TIMESTAMP(), UNIX_TIMESTAMP())"))
        .collect();
    db.exec_sql(&format!(
        "INSERT INTO `{ninja}`.jobs (queue, payload, attempts, available_at, created_at) VALUES {}",
        rows.join(", ")
    ));
    let o = run_check(&jobs_check(db, &ninja)).await;
    assert_reason(&o, Reason::AssertionFailed);
    assert_eq!(o.value, Some(12.0), "the value is exported on failure too");
    assert_eq!(
        o.message,
        "rows in jobs is 12, expected exactly 0 — the queue worker is not running"
    );

    // A freshness query on accounts.updated_at, and a query with no row.
    db.exec_sql(&format!(
        "INSERT INTO `{ninja}`.accounts (plan, created_at, updated_at) VALUES ('pro', NOW() - INTERVAL 2 DAY, NOW() - INTERVAL 1 HOUR)"
    ));
    let o = run_check(&check(&format!(
        "{}  query: SELECT TIMESTAMPDIFF(SECOND, MAX(updated_at), NOW()) FROM accounts\n  what: seconds since an account changed\n  expect: {{ value: {{ max: 600 }} }}\n",
        conn(db, &ninja)
    )))
    .await;
    assert_reason(&o, Reason::AssertionFailed);
    assert!(
        o.value.is_some_and(|v| (3600.0..3700.0).contains(&v)),
        "{o:?}"
    );
    assert!(
        o.message
            .starts_with("seconds since an account changed is 36")
            && o.message.ends_with("above the maximum 600"),
        "{}",
        o.message
    );
    let o = run_check(&check(&format!(
        "{}  query: SELECT id FROM failed_jobs WHERE id = 1\n",
        conn(db, &ninja)
    )))
    .await;
    assert_reason(&o, Reason::AssertionFailed);
    assert!(o.message.contains("returned no row"), "{}", o.message);
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_password_from_the_apps_env_file_and_from_a_file() {
    let db = Mariadb::shared();
    let ninja = invoice_ninja_db(db);
    let dir = tempdir("mysql-pack");
    std::fs::write(
        dir.path().join(".env"),
        format!("DB_HOST=127.0.0.1\nDB_PORT={}\nDB_DATABASE={ninja}\nDB_USERNAME={USER}\nDB_PASSWORD=\"{PASSWORD}\"\n", db.port()),
    )
    .unwrap();
    std::fs::write(dir.path().join("pw"), format!("{PASSWORD}\n")).unwrap();
    std::fs::write(
        dir.path().join("ninja.yaml"),
        format!(
            "pack: ninja
title: Invoice Ninja
guide: https://example.org/guide
env_file: {env}
checks:
  - name: jobs_empty
    kind: mysql
    timeout: 5s
    mysql:
      host: ${{env.DB_HOST}}
      port: ${{env.DB_PORT}}
      user: ${{env.DB_USERNAME}}
      database: ${{env.DB_DATABASE}}
      password: ${{env.DB_PASSWORD}}
      query: SELECT COUNT(*) FROM jobs
      expect: {{ value: {{ equals: 0 }} }}
  - name: jobs_empty_file
    kind: mysql
    timeout: 5s
    mysql:
      url: mysql://{USER}@127.0.0.1:{port}/{ninja}
      password_file: {pw}
      query: SELECT COUNT(*) FROM jobs
",
            env = dir.path().join(".env").display(),
            pw = dir.path().join("pw").display(),
            port = db.port(),
        ),
    )
    .unwrap();
    let loaded = healthprobe::config::load::load_with_env(
        &healthprobe::config::Options {
            checks_dirs: vec![dir.path().to_path_buf()],
            no_builtin: true,
            ..Default::default()
        },
        &|_| None,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.checks.len(), 2);
    for c in loaded.checks {
        assert!(
            !format!("{:?}", c.spec).contains(PASSWORD),
            "the spec's Debug shows the password"
        );
        let rec = runner::execute(Arc::new(c.probe), Duration::from_secs(5), true).await;
        assert_reason(&rec.outcome, Reason::Ok);
        assert_eq!(rec.outcome.value, Some(0.0));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_wrong_password_is_auth_failed_and_never_echoed() {
    MYSQL.wrong_password(Mariadb::shared().port()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_unknown_database_and_missing_table_are_not_found() {
    let db = Mariadb::shared();
    // A user with global privileges (root, over the socket) learns that the
    // database does not exist; the app's user only that it may not use it.
    let socket = db.socket_path().display().to_string();
    let o = run_check(&check(&format!(
        "  socket: {socket}\n  user: root\n  database: nope_db\n  query: SELECT 1\n"
    )))
    .await;
    assert_reason(&o, Reason::NotFound);
    assert!(
        o.message.starts_with(&format!("database `nope_db` does not exist on MySQL at socket {socket}: Unknown database 'nope_db' (MySQL error 1049)")),
        "{}",
        o.message
    );
    let o = run_check(&check(&format!(
        "{}  query: SELECT 1\n",
        conn(db, "nope_db")
    )))
    .await;
    assert_reason(&o, Reason::PermissionDenied);
    assert!(
        o.message.contains(
            "(MySQL error 1044); either the database does not exist or the user has no grant on it"
        ),
        "{}",
        o.message
    );
    let o = run_check(&check(&format!(
        "{}  query: SELECT COUNT(*) FROM no_such_jobs\n",
        conn(db, "app")
    )))
    .await;
    assert_reason(&o, Reason::NotFound);
    assert!(
        o.message
            .contains("Table 'app.no_such_jobs' doesn't exist (MySQL error 1146)"),
        "{}",
        o.message
    );
    let o = run_check(&check(&format!(
        "{}  variable: no_such_variable\n",
        conn(db, "app")
    )))
    .await;
    assert_reason(&o, Reason::NotFound);
    assert!(
        o.message.contains("no server variable `no_such_variable`"),
        "{}",
        o.message
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_server_not_listening_is_connection_refused() {
    MYSQL.refused().await;
    let o = run_check(&check(&format!(
        "  socket: /tmp/hp-no-such-dir/mysqld.sock\n  user: {USER}\n  query: SELECT 1\n"
    )))
    .await;
    assert_reason(&o, Reason::NotFound);
    assert!(
        o.message
            .contains("socket /tmp/hp-no-such-dir/mysqld.sock does not exist"),
        "{}",
        o.message
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_a_listener_that_never_answers_times_out_within_the_check_timeout() {
    MYSQL.silent().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_max_allowed_packet_and_connection_headroom() {
    let db = Mariadb::start();
    let packet = |db: &Mariadb| {
        check(&format!(
            "{}  variable: max_allowed_packet\n  meaning: large queued jobs fail with error 1153\n  expect: {{ value: {{ min: 67108864 }} }}\n",
            conn(db, "app")
        ))
    };
    db.exec_sql("SET GLOBAL max_allowed_packet = 16777216");
    let o = run_check(&packet(&db)).await;
    assert_reason(&o, Reason::AssertionFailed);
    assert_eq!(o.value, Some(16777216.0));
    assert_eq!(
        o.message,
        "max_allowed_packet is 16777216, below the minimum 67108864 (16 MiB, minimum 64 MiB) — large queued jobs fail with error 1153"
    );
    db.exec_sql("SET GLOBAL max_allowed_packet = 134217728");
    let o = run_check(&packet(&db)).await;
    assert_reason(&o, Reason::Ok);
    assert_eq!(
        o.message,
        "max_allowed_packet is 134217728, at least the expected 67108864 (128 MiB, minimum 64 MiB)"
    );

    db.exec_sql("SET GLOBAL max_connections = 10");
    // Wait until the checks above are counted out (only this client is left).
    let until = Instant::now() + Duration::from_secs(10);
    while db
        .exec_sql("SHOW GLOBAL STATUS LIKE 'Threads_connected'")
        .trim()
        != "Threads_connected\t1"
    {
        assert!(
            Instant::now() < until,
            "earlier connections are still counted"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut held = Vec::new();
    for _ in 0..7 {
        held.push(
            mysql_async::Conn::from_url(db.tcp_url())
                .await
                .expect("extra connection"),
        );
    }
    let headroom = |mode: &str, max: f64| {
        check(&format!(
            "{}  connection_headroom: {mode}\n  expect: {{ value: {{ max: {max} }} }}\n",
            conn(&db, "app")
        ))
    };
    // 7 held + the check's own = 8 of 10.
    let o = run_check(&headroom("threads_connected", 0.7)).await;
    assert_reason(&o, Reason::AssertionFailed);
    assert_eq!(o.value, Some(0.8));
    assert_eq!(
        o.message,
        "Threads_connected/max_connections is 0.8, above the maximum 0.7 (8 of 10 connections)"
    );
    let used: Vec<(String, f64)> = o
        .samples
        .iter()
        .filter(|s| s.family.name.starts_with("healthprobe_mysql_"))
        .map(|s| (s.family.name.to_string(), s.value))
        .collect();
    assert_eq!(
        used,
        [
            ("healthprobe_mysql_connections".to_string(), 8.0),
            ("healthprobe_mysql_max_connections".to_string(), 10.0)
        ]
    );
    for c in held {
        c.disconnect().await.unwrap();
    }
    // The server counts a closed connection out a moment after it closes.
    let until = Instant::now() + Duration::from_secs(10);
    let o = loop {
        let o = run_check(&headroom("threads_connected", 0.7)).await;
        if o.success() || Instant::now() > until {
            break o;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_reason(&o, Reason::Ok);
    // The peak stays: Max_used_connections remembers the 8.
    let o = run_check(&headroom("max_used_connections", 0.7)).await;
    assert_reason(&o, Reason::AssertionFailed);
    assert!(o.value.is_some_and(|v| v >= 0.8), "{o:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_killed_server_fails_within_interval_plus_timeout_then_recovers() {
    let db = std::sync::Mutex::new(Mariadb::start());
    let port = db.lock().unwrap().port();
    MYSQL
        .kill_and_recover(
            port,
            || db.lock().unwrap().kill(),
            || db.lock().unwrap().start_again(),
        )
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_tls_verified_and_its_failures_spelled_out() {
    let dir = tempdir("mysql-tls");
    let (cert, key) = (dir.path().join("server.pem"), dir.path().join("server.key"));
    let copy = |pair: &KeyPair| {
        std::fs::copy(&pair.cert, &cert).unwrap();
        std::fs::copy(&pair.key, &key).unwrap();
    };
    copy(&Certs::shared().leaf);
    let db = Mariadb::start_with(MariadbOptions {
        extra_args: vec![
            format!("--ssl-cert={}", cert.display()),
            format!("--ssl-key={}", key.display()),
        ],
    });
    let install = |pair: &KeyPair| {
        copy(pair);
        db.exec_sql("FLUSH SSL");
    };
    MYSQL
        .tls(db.port(), Mariadb::shared().port(), install)
        .await;
}
