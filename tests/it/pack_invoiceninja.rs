//! The built-in `invoiceninja` pack against an install that looks real, in a
//! healthy and then a broken state, through the real binary (`healthprobe
//! check --pack invoiceninja`): a tree with `.env`, `artisan`, `storage/`,
//! `bootstrap/cache`, the `public/storage` link, `database/migrations`, logs,
//! and snappdf's Chromium (a real ELF built here with gcc that needs a shared
//! library through `$ORIGIN`, as Chrome needs libatk); a real MariaDB with
//! Invoice Ninja's `accounts`, `jobs`, `failed_jobs` and `migrations` tables;
//! a real SMTP server (aiosmtpd) checking the `.env` login; nginx serving the
//! PDFs with and without the guide's headers and with and without
//! `client_max_body_size 100M`; a queue worker running as `www-data`.
//!
//! The broken state is every fault of the guide at once: cron stopped, the
//! queue stuck, jobs failing, MySQL's max_allowed_packet at 16 MiB and its
//! connections nearly used up, Chromium downloaded by another user without
//! its library, `storage/` and `bootstrap/cache` owned by another user, the
//! storage link gone, `.env` back to its shipped values, the guide's error
//! lines in the logs, a migration not run, nginx's 1 MiB upload limit. Every
//! check of the pack passes on the first and fails on the second with the
//! reason and message a person can act on, and the text report names each
//! fault with the guide's fix.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::binary::gcc;
use crate::pack_util::{
    Report, assert_broken_report, check_json, chmod, chown_r, fixture, switched_off,
    titled_process, write,
};
use crate::probe_util::hp_other;
use crate::status_page::{docs_path, dump_dom, laid_out_width, screenshot, wait_all_ran};
use crate::support::agent::AgentProcess;
use crate::support::mariadb::{Mariadb, PASSWORD, USER};
use crate::support::nginx::Nginx;
use crate::support::process::ServerProcess;
use crate::support::smtp::{Smtp, SmtpOptions};
use crate::support::{require_binary, tempdir};

/// The Chromium revision snappdf downloads (its `versions/revision.txt`).
const REVISION: &str = "1045629";
/// The library the fixture's Chromium needs. The real libatk-1.0.so.0 is
/// installed on this machine (Debian's chromium needs it), so the fixture's
/// stand-in has its own name; the message names it as it would name libatk.
const ATK: &str = "libatk-1.0-hp.so.0";
const MAIL_USER: &str = "billing@invoices.example";
const MAIL_PASSWORD: &str = "mail-Pw-4242";

const MIGRATIONS: [&str; 5] = [
    "2014_10_12_100000_create_password_resets_table",
    "2014_10_13_000000_create_users_table",
    "2019_08_19_000000_create_failed_jobs_table",
    "2020_10_12_204517_project_number_column",
    "2023_09_11_003230_add_client_and_company_name",
];
const NEW_MIGRATION: &str = "2024_05_02_091532_add_e_invoice_type_to_clients_table";

/// Every check of the pack that applies to this install (snappdf, the
/// database queue without the internal queue, SMTP with a login, a PDF URL).
const ENABLED: [&str; 26] = [
    "scheduler_fresh",
    "scheduler_running",
    "jobs_backlog",
    "jobs_stuck",
    "failed_jobs",
    "queue_worker",
    "mysql_max_allowed_packet",
    "mysql_connection_headroom",
    "snappdf_binary",
    "snappdf_libraries",
    "snappdf_owner",
    "snappdf_smoke",
    "pdf_no_store",
    "pdf_body",
    "pdf_robots_tag",
    "smtp_reachable",
    "env_mail_from",
    "storage_writable",
    "bootstrap_cache_writable",
    "public_storage_link",
    "env_update_secret",
    "app_debug_off",
    "laravel_log_errors",
    "invoiceninja_log_errors",
    "migrations_pending",
    "upload_limit",
];

/// What `.env` says; the broken state changes some of it.
struct Env {
    app_debug: &'static str,
    update_secret: &'static str,
    mail_from: &'static str,
    mail_password: &'static str,
    pdf_generator: &'static str,
    phantomjs_key: &'static str,
    queue: &'static str,
    mail_username: &'static str,
}

const HEALTHY_ENV: Env = Env {
    app_debug: "false",
    update_secret: "9a4f2c71e0b3d8a6",
    mail_from: "billing@invoices.example",
    mail_password: MAIL_PASSWORD,
    pdf_generator: "snappdf",
    phantomjs_key: "",
    queue: "database",
    mail_username: MAIL_USER,
};

/// A fixture install of Invoice Ninja and the servers around it.
struct Install {
    dir: tempfile::TempDir,
    db: Mariadb,
    smtp: Smtp,
    nginx: Nginx,
    worker: Option<ServerProcess>,
    /// Connections held open to use up MySQL's max_connections.
    holders: Vec<ServerProcess>,
    config: PathBuf,
}

impl Install {
    fn root(&self) -> PathBuf {
        self.dir.path().join("invoiceninja")
    }

    fn chrome_dir(&self) -> PathBuf {
        self.root().join(format!(
            "vendor/beganovich/snappdf/versions/{REVISION}/chrome-linux"
        ))
    }

    /// A healthy install, every server started.
    fn healthy() -> Install {
        let dir = tempdir("pack-ninja");
        chmod(dir.path(), 0o755);
        let db = Mariadb::start();
        let smtp = Smtp::start(SmtpOptions {
            auth: Some((MAIL_USER.into(), MAIL_PASSWORD.into())),
            auth_allow_plaintext: true,
            ..Default::default()
        });
        let root = dir.path().join("invoiceninja");
        let site = dir.path().join("site.conf");
        write(
            &site,
            &fixture("invoiceninja/nginx-healthy.conf").replace("@ROOT@", &root.to_string_lossy()),
        );
        std::fs::create_dir_all(root.join("public")).unwrap();
        let nginx = Nginx::start(&format!("include {};", site.display()));
        let mut i = Install {
            config: dir.path().join("healthprobe.yaml"),
            dir,
            db,
            smtp,
            nginx,
            worker: None,
            holders: Vec::new(),
        };
        i.make_tree();
        i.write_env(&HEALTHY_ENV);
        i.fill_database();
        i.start_worker();
        i.write_config();
        i
    }

    /// The files of an install made by the release zip and `php artisan
    /// storage:link`, with snappdf's Chromium downloaded as the web user.
    fn make_tree(&self) {
        let root = self.root();
        write(&root.join("artisan"), "#!/usr/bin/env php\n<?php\n");
        write(
            &root.join("public/index.html"),
            "<!doctype html><title>Invoice Ninja</title>\n",
        );
        write(&root.join("public/index.php"), "<?php\n");
        for d in [
            "bootstrap/cache",
            "storage/app/public/invoices",
            "storage/framework/cache",
            "storage/framework/sessions",
            "storage/framework/views",
            "storage/logs",
            "database/migrations",
        ] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        write(
            &root.join("bootstrap/cache/packages.php"),
            "<?php return [];\n",
        );
        write(
            &root.join("storage/app/public/invoices/INV-0001.pdf"),
            &fixture("invoiceninja/INV-0001.pdf"),
        );
        write(
            &root.join("storage/logs/laravel.log"),
            &fixture("invoiceninja/laravel-healthy.log"),
        );
        for m in MIGRATIONS {
            write(
                &root.join(format!("database/migrations/{m}.php")),
                "<?php\nreturn new class extends Migration {};\n",
            );
        }
        std::os::unix::fs::symlink(root.join("storage/app/public"), root.join("public/storage"))
            .unwrap();

        // snappdf's Chromium: revision.txt names the directory of the binary,
        // which finds its library next to it through RUNPATH $ORIGIN.
        let versions = root.join("vendor/beganovich/snappdf/versions");
        write(&versions.join("revision.txt"), REVISION);
        let chrome = self.chrome_dir();
        std::fs::create_dir_all(&chrome).unwrap();
        write(&chrome.join("chrome.c"), &fixture("invoiceninja/chrome.c"));
        write(&chrome.join("atk.c"), &fixture("invoiceninja/atk.c"));
        gcc(
            &chrome,
            &[
                "-shared",
                "-fPIC",
                &format!("-Wl,-soname,{ATK}"),
                "-o",
                ATK,
                "atk.c",
            ],
        );
        gcc(
            &chrome,
            &[
                "-o",
                "chrome",
                "chrome.c",
                &format!("-l:{ATK}"),
                "-L.",
                "-Wl,-rpath,$ORIGIN",
                "-Wl,--enable-new-dtags",
            ],
        );
        for f in ["chrome.c", "atk.c"] {
            std::fs::remove_file(chrome.join(f)).unwrap();
        }
        chmod(&root, 0o755);
        for d in [
            "storage",
            "bootstrap/cache",
            "public/storage",
            "vendor/beganovich/snappdf/versions",
        ] {
            chown_r(&root.join(d), "www-data");
        }
    }

    fn write_env(&self, e: &Env) {
        write(
            &self.root().join(".env"),
            &format!(
                r#"APP_NAME="Invoice Ninja"
APP_ENV=production
APP_KEY=base64:RR++yx2rJ9kdxbdh3+AmbHLDQu+Q76i++co9Y8ybbno=
APP_DEBUG={app_debug}
APP_URL={url}
REQUIRE_HTTPS=false
NINJA_ENVIRONMENT=selfhost

DB_TYPE=mysql
DB_STRICT=false
DB_HOST=127.0.0.1
DB_PORT={db_port}
DB_DATABASE=app
DB_USERNAME={db_user}
DB_PASSWORD="{db_password}"

QUEUE_CONNECTION={queue}
INTERNAL_QUEUE_ENABLED=false
UPDATE_SECRET={update_secret}

PDF_GENERATOR={pdf_generator}
PHANTOMJS_KEY='{phantomjs_key}'
PHANTOMJS_SECRET=b7e4d1c9a2f35e8

MAIL_MAILER=smtp
MAIL_HOST=127.0.0.1
MAIL_PORT={mail_port}
MAIL_USERNAME="{mail_username}"
MAIL_PASSWORD="{mail_password}"
MAIL_ENCRYPTION=null
MAIL_FROM_ADDRESS="{mail_from}"
MAIL_FROM_NAME="Example Invoicing"
"#,
                app_debug = e.app_debug,
                url = self.nginx.url(""),
                db_port = self.db.port(),
                db_user = USER,
                db_password = PASSWORD,
                queue = e.queue,
                update_secret = e.update_secret,
                pdf_generator = e.pdf_generator,
                phantomjs_key = e.phantomjs_key,
                mail_port = self.smtp.port(),
                mail_username = e.mail_username,
                mail_password = e.mail_password,
                mail_from = e.mail_from,
            ),
        );
    }

    /// The schema, an account the scheduler touched two minutes ago, one job
    /// just queued (a working queue is not always empty), a failure from
    /// last week, and every migration applied.
    fn fill_database(&self) {
        let rows: Vec<String> = MIGRATIONS.iter().map(|m| format!("('{m}', 1)")).collect();
        self.db.exec_sql(&format!(
            "USE app;
             {schema}
             INSERT INTO accounts (plan, is_scheduler_running, created_at, updated_at)
               VALUES ('free', 1, NOW() - INTERVAL 30 DAY, NOW() - INTERVAL 2 MINUTE);
             INSERT INTO jobs (queue, payload, attempts, available_at, created_at)
               VALUES ('default', '{{\"displayName\":\"App\\\\Jobs\\\\Mail\\\\NinjaMailerJob\"}}', 0, UNIX_TIMESTAMP(), UNIX_TIMESTAMP());
             INSERT INTO failed_jobs (uuid, connection, queue, payload, exception, failed_at)
               VALUES ('0b6e1a52-5c3e-4f1a-9d55-1f0f4c1e9a01', 'database', 'default', '{{}}', 'Swift_TransportException', NOW() - INTERVAL 7 DAY);
             INSERT INTO migrations (migration, batch) VALUES {rows};
             SET GLOBAL max_allowed_packet = 268435456;",
            schema = fixture("invoiceninja/schema.sql"),
            rows = rows.join(", ")
        ));
    }

    /// A worker as supervisor runs it: `php artisan queue:work` as www-data.
    fn start_worker(&mut self) {
        let title = format!(
            "php {}/artisan queue:work database --sleep=3 --tries=3",
            self.root().display()
        );
        self.worker = Some(titled_process(
            &title,
            Some("www-data"),
            &[],
            self.dir.path(),
        ));
    }

    fn write_config(&self) {
        write(
            &self.config,
            &format!(
                "# One check at a time, so the connection count is the pack's only.
concurrency: 1
packs:
  invoiceninja:
    vars:
      root: {root}
      url: {url}
      pdf_url: {url}/storage/invoices/INV-0001.pdf
      smtp_mode: plain
      worker_cmdline: '{root}/artisan queue:work'
",
                root = self.root().display(),
                url = self.nginx.url(""),
            ),
        );
    }

    fn args(&self) -> Vec<String> {
        vec![
            "--config".into(),
            self.config.display().to_string(),
            "--pack".into(),
            "invoiceninja".into(),
        ]
    }

    /// Every fault of the guide at once.
    fn break_everything(&mut self) {
        let root = self.root();
        // Cron stopped two hours ago; the queue is stuck; jobs fail.
        self.db.exec_sql(
            "USE app;
             UPDATE accounts SET updated_at = NOW() - INTERVAL 2 HOUR, is_scheduler_running = 0;
             INSERT INTO jobs (queue, payload, attempts, available_at, created_at) VALUES
               ('default', '{}', 0, UNIX_TIMESTAMP() - 3600, UNIX_TIMESTAMP() - 3600),
               ('default', '{}', 0, UNIX_TIMESTAMP() - 3000, UNIX_TIMESTAMP() - 3000),
               ('default', '{}', 0, UNIX_TIMESTAMP() - 2400, UNIX_TIMESTAMP() - 2400);
             INSERT INTO jobs (queue, payload, attempts, reserved_at, available_at, created_at) VALUES
               ('default', '{}', 1, UNIX_TIMESTAMP() - 7200, UNIX_TIMESTAMP() - 7300, UNIX_TIMESTAMP() - 7300);
             INSERT INTO failed_jobs (uuid, connection, queue, payload, exception) VALUES
               ('4c2d8f0e-0d7a-4b8e-a3f5-2e9b7d1c6a10', 'database', 'default', '{}', 'PDOException: 1153'),
               ('9e7f1b2c-3a4d-4e5f-8a9b-0c1d2e3f4a5b', 'database', 'default', '{}', 'ProcessSignaledException');
             SET GLOBAL max_allowed_packet = 16777216;
             SET GLOBAL max_connections = 20;"
        );
        self.worker = None;
        // 17 connections held: with the probe's own, 18 of 20 are in use.
        let client = require_binary("mariadb");
        for _ in 0..17 {
            let mut cmd = Command::new(&client);
            cmd.arg("--no-defaults")
                .arg(format!("--socket={}", self.db.socket_path().display()))
                .args(["-uroot", "-e", "SELECT SLEEP(600)"]);
            self.holders.push(ServerProcess::spawn(
                "mariadb (held connection)",
                cmd,
                &self.dir.path().join("holders.log"),
            ));
        }
        let db = &self.db;
        self.holders[0].wait_ready(Duration::from_secs(30), || {
            let n = db.exec_sql("SHOW STATUS LIKE 'Threads_connected'");
            let n: u32 = n
                .split_whitespace()
                .last()
                .unwrap_or("0")
                .parse()
                .unwrap_or(0);
            if n >= 18 {
                Ok(())
            } else {
                Err(format!("{n} connections"))
            }
        });

        // Chromium downloaded by another user, private to it, its library gone.
        let chrome = self.chrome_dir();
        std::fs::remove_file(chrome.join(ATK)).unwrap();
        chown_r(&root.join("vendor/beganovich/snappdf/versions"), hp_other());
        chmod(&chrome.join("chrome"), 0o700);

        // storage/ and bootstrap/cache written by root or another user; the
        // storage link removed.
        chown_r(&root.join("storage"), hp_other());
        chown_r(&root.join("bootstrap/cache"), "root");
        std::fs::remove_file(root.join("public/storage")).unwrap();

        // .env back to what ships, the mail password wrong.
        self.write_env(&Env {
            app_debug: "true",
            update_secret: "",
            mail_from: "hello@example.com",
            mail_password: "wrong-Pw-1",
            ..HEALTHY_ENV
        });

        // The guide's error lines in the logs.
        let mut log = fixture("invoiceninja/laravel-healthy.log");
        log.push_str(&fixture("invoiceninja/laravel-broken.log"));
        write(&root.join("storage/logs/laravel.log"), &log);
        write(
            &root.join("storage/logs/invoiceninja.log"),
            &fixture("invoiceninja/invoiceninja-broken.log"),
        );

        // A new release's migration not run.
        write(
            &root.join(format!("database/migrations/{NEW_MIGRATION}.php")),
            "<?php\n",
        );

        // nginx without the guide's settings.
        write(
            &self.dir.path().join("site.conf"),
            &fixture("invoiceninja/nginx-broken.conf").replace("@ROOT@", &root.to_string_lossy()),
        );
        self.nginx.start_again();
    }
}

#[test]
fn invoiceninja_pack_flips_between_a_healthy_and_a_broken_install() {
    let mut install = Install::healthy();
    let args = install.args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    let healthy = check_json(&args);
    healthy.assert_all_pass(&ENABLED);
    assert_messages(
        &healthy,
        &[
            ("scheduler_fresh", "within the maximum 900"),
            ("jobs_backlog", "jobs waiting for more than 5 minutes is 0"),
            ("queue_worker", "/artisan queue:work`, user www-data: pid "),
            ("mysql_max_allowed_packet", "256 MiB"),
            ("snappdf_binary", "versions/1045629/chrome-linux/chrome"),
            ("snappdf_smoke", "smoke run exited with 0"),
            ("smtp_reachable", "AUTH"),
            (
                "migrations_pending",
                "all 5 migrations are applied in database `app`",
            ),
            ("upload_limit", "403 Forbidden"),
        ],
    );

    install.break_everything();
    let broken = check_json(&args);
    broken.assert_failures(&[
        (
            "scheduler_fresh",
            "assertion_failed",
            &[
                "seconds since the scheduler last touched accounts.updated_at is 720",
                "above the maximum 900",
                "cron is not running `php artisan schedule:run`",
            ],
        ),
        (
            "scheduler_running",
            "assertion_failed",
            &["accounts with is_scheduler_running = 0 is 1"],
        ),
        (
            "jobs_backlog",
            "assertion_failed",
            &[
                "jobs waiting for more than 5 minutes is 3",
                "the queue is not being worked",
            ],
        ),
        (
            "jobs_stuck",
            "assertion_failed",
            &["jobs reserved for more than 30 minutes is 1"],
        ),
        (
            "failed_jobs",
            "assertion_failed",
            &["jobs failed in the last 24 hours is 2"],
        ),
        (
            "queue_worker",
            "assertion_failed",
            &[
                "no process matches command line `",
                "/artisan queue:work`, user www-data",
            ],
        ),
        (
            "mysql_max_allowed_packet",
            "assertion_failed",
            &["16 MiB", "64 MiB", "1153 Got a packet bigger"],
        ),
        (
            "mysql_connection_headroom",
            "assertion_failed",
            &["of 20 connections", "above the maximum 0.8"],
        ),
        (
            "snappdf_binary",
            "permission_denied",
            &["www-data", "chrome-linux/chrome"],
        ),
        (
            "snappdf_libraries",
            "assertion_failed",
            &[&format!("{ATK} not found (needed by chrome)")],
        ),
        (
            "snappdf_owner",
            "assertion_failed",
            &["hp-other", "www-data"],
        ),
        ("snappdf_smoke", "permission_denied", &["www-data"]),
        ("pdf_no_store", "assertion_failed", &["Cache-Control"]),
        (
            "pdf_body",
            "assertion_failed",
            &["status is 404 Not Found, expected 200", "expected `%PDF-`"],
        ),
        ("pdf_robots_tag", "assertion_failed", &["X-Robots-Tag"]),
        ("smtp_reachable", "auth_failed", &["535"]),
        (
            "env_mail_from",
            "assertion_failed",
            &["`MAIL_FROM_ADDRESS` is still the shipped default `hello@example.com`"],
        ),
        (
            "storage_writable",
            "permission_denied",
            &["www-data", "hp-other", "chown -R www-data:www-data"],
        ),
        (
            "bootstrap_cache_writable",
            "permission_denied",
            &["www-data", "bootstrap/cache"],
        ),
        ("public_storage_link", "not_found", &["public/storage"]),
        (
            "env_update_secret",
            "assertion_failed",
            &["`UPDATE_SECRET` is empty"],
        ),
        (
            "app_debug_off",
            "assertion_failed",
            &["`APP_DEBUG` is `true`"],
        ),
        (
            "laravel_log_errors",
            "assertion_failed",
            &[
                "`signal_5`",
                "`max_allowed_packet`",
                "`flock`",
                "`libatk`",
                "`compiled_route`",
                "`unresolvable_dependency`",
            ],
        ),
        (
            "invoiceninja_log_errors",
            "assertion_failed",
            &["`certificate_verify_failed`"],
        ),
        (
            "migrations_pending",
            "assertion_failed",
            &[
                &format!("1 migration is pending in database `app`: {NEW_MIGRATION}"),
                "php artisan migrate",
            ],
        ),
        (
            "upload_limit",
            "assertion_failed",
            &["status is 413 Payload Too Large"],
        ),
    ]);
    let all: String = broken.checks.values().map(|v| v.to_string()).collect();
    for secret in [MAIL_PASSWORD, "wrong-Pw-1", PASSWORD] {
        assert!(!all.contains(secret), "{secret} leaked into the report");
    }

    // What a person at the terminal reads.
    let text = assert_broken_report(
        &args,
        &[
            (
                "scheduler_fresh",
                &["* * * * * cd ", "php artisan schedule:run"],
            ),
            ("jobs_backlog", &["php artisan queue:restart"]),
            ("jobs_stuck", &["php artisan queue:restart"]),
            ("queue_worker", &["queue:work"]),
            ("mysql_max_allowed_packet", &["max_allowed_packet = 1024M"]),
            ("mysql_connection_headroom", &["max_connections"]),
            (
                "snappdf_binary",
                &["sudo -u www-data vendor/bin/snappdf download"],
            ),
            ("snappdf_libraries", &["libatk1.0-0"]),
            (
                "snappdf_owner",
                &[
                    "signal 5",
                    "sudo chown -R www-data:www-data vendor/beganovich/snappdf/versions",
                ],
            ),
            ("snappdf_smoke", &["snappdf convert --html"]),
            ("pdf_no_store", &["add_header Cache-Control no-store;"]),
            ("pdf_robots_tag", &["X-Robots-Tag \"noindex, nofollow\""]),
            ("smtp_reachable", &["MAIL_PASSWORD in double quotes"]),
            ("env_mail_from", &["MAIL_FROM_ADDRESS"]),
            (
                "storage_writable",
                &["sudo chown -R www-data:www-data storage/"],
            ),
            (
                "bootstrap_cache_writable",
                &["sudo chown -R www-data:www-data bootstrap/cache"],
            ),
            ("public_storage_link", &["php artisan storage:link"]),
            ("env_update_secret", &["UPDATE_SECRET=a_secret_passcode"]),
            ("app_debug_off", &["APP_DEBUG=false"]),
            ("laravel_log_errors", &["sudo -H composer self-update"]),
            ("migrations_pending", &["php artisan migrate"]),
            ("upload_limit", &["client_max_body_size 100M;"]),
        ],
    );
    assert!(text.contains("invoiceninja - Invoice Ninja"), "{text}");
    assert!(
        text.contains("  off   2 checks not applicable here: phantomjs_key, smtp_relay (`healthprobe list --pack invoiceninja` says why)"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{} of {} checks failed (",
            ENABLED.len(),
            ENABLED.len()
        )),
        "{text}"
    );
    assert!(
        text.contains("guide: https://invoiceninja.github.io/fr_CA/self-host-troubleshooting/#nginx-413-request-entity-too-large"),
        "{text}"
    );
    drop(install);
}

/// The status page of an agent running the pack on an install with a few of
/// the guide's faults (and the host pack beside it), in headless Chromium:
/// each fault with its fix and guide link, failing first. With
/// `HP_UPDATE_DOCS=1` the screenshots become docs/status-page.png (desktop)
/// and docs/status-page-phone.png.
#[test]
fn invoiceninja_status_page_names_each_fault_with_its_fix() {
    let install = Install::healthy();
    let root = install.root();
    // A few of the guide's faults: storage/ written by another user,
    // Chromium's library missing, nginx without the PDF headers and the
    // upload limit, the shipped MAIL_FROM_ADDRESS.
    chown_r(&root.join("storage"), hp_other());
    std::fs::remove_file(install.chrome_dir().join(ATK)).unwrap();
    write(
        &install.dir.path().join("site.conf"),
        &fixture("invoiceninja/nginx-broken.conf").replace("@ROOT@", &root.to_string_lossy()),
    );
    let mut install = install;
    install.nginx.start_again();
    install.write_env(&Env {
        mail_from: "hello@example.com",
        ..HEALTHY_ENV
    });
    // The PDF is still served (the storage link is there), without headers.
    std::os::unix::fs::symlink(root.join("storage/app/public"), root.join("public/storage"))
        .or_else(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Ok(())
            } else {
                Err(e)
            }
        })
        .unwrap();

    let config = install.config.display().to_string();
    let agent = AgentProcess::start(&[
        "--config",
        &config,
        "--pack",
        "invoiceninja",
        "--pack",
        "host",
    ]);
    wait_all_ran(&agent);
    let url = format!("{}/", agent.url());
    let failing = [
        (
            "invoiceninja/storage_writable",
            "sudo chown -R www-data:www-data storage/",
        ),
        ("invoiceninja/snappdf_libraries", "libatk1.0-0"),
        ("invoiceninja/snappdf_smoke", "snappdf convert --html"),
        (
            "invoiceninja/pdf_no_store",
            "add_header Cache-Control no-store;",
        ),
        ("invoiceninja/pdf_robots_tag", "X-Robots-Tag"),
        ("invoiceninja/upload_limit", "client_max_body_size 100M;"),
        ("invoiceninja/env_mail_from", "MAIL_FROM_ADDRESS"),
    ];
    let dom = dump_dom(&url, 390, 844);
    let first_passing = dom
        .find(r#"<article class="check passing" id="invoiceninja/"#)
        .expect("passing checks are shown");
    for (id, fix) in failing {
        let at = dom
            .find(&format!(r#"<article class="check failing" id="{id}">"#))
            .unwrap_or_else(|| panic!("{id} is not shown failing:\n{dom}"));
        assert!(at < first_passing, "{id} comes after a passing check");
        let block = &dom[at..at + dom[at..].find("</article>").unwrap()];
        assert!(block.contains("<strong>Fix:</strong>"), "{block}");
        assert!(
            block.contains(&healthprobe::status_page::esc(fix)),
            "{fix:?} not in {block}"
        );
        assert!(
            block.contains(
                r#"<a href="https://invoiceninja.github.io/fr_CA/self-host-troubleshooting/#"#
            ),
            "{block}"
        );
    }
    assert!(dom.contains(r#"<a href="https://invoiceninja.github.io/fr_CA/self-host-troubleshooting/">troubleshooting guide</a>"#));
    assert!(
        dom.contains("<li><code>phantomjs_key</code>: enabled_if:"),
        "{dom}"
    );
    assert!(dom.contains(r#"id="pack-host""#), "{dom}");
    let html = crate::support::http::get(&url).unwrap().text();
    assert_eq!(laid_out_width(&html, 390, install.dir.path()), 390);

    let phone = install.dir.path().join("phone.png");
    let desktop = install.dir.path().join("desktop.png");
    assert_eq!(screenshot(&url, 390, 844, &phone), (390, 844));
    assert_eq!(screenshot(&url, 1280, 900, &desktop), (1280, 900));
    if let Some(path) = docs_path("status-page.png") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::copy(&desktop, &path).unwrap();
        std::fs::copy(&phone, path.with_file_name("status-page-phone.png")).unwrap();
    }
}

#[track_caller]
fn assert_messages(r: &Report, expected: &[(&str, &str)]) {
    for (name, part) in expected {
        let m = r.get(name)["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(m.contains(part), "{name}: {part:?} is not in: {m}");
    }
}

/// `enabled_if` follows the app's own `.env`: with PhantomJS instead of
/// snappdf, the sync queue and an SMTP relay without a login, the snappdf and
/// jobs checks switch off, and the PhantomJS key and relay checks switch on
/// and flip.
#[test]
fn invoiceninja_checks_follow_the_env() {
    let dir = tempdir("pack-ninja-env");
    chmod(dir.path(), 0o755);
    let root = dir.path().join("app");
    let mut relay = Smtp::start(SmtpOptions::default());
    let env = |key: &str| {
        format!(
            "APP_ENV=production\nDB_HOST=127.0.0.1\nDB_PORT=1\nDB_DATABASE=ninja\nDB_USERNAME=ninja\n\
             QUEUE_CONNECTION=sync\nPDF_GENERATOR=phantom\nPHANTOMJS_KEY='{key}'\n\
             MAIL_MAILER=smtp\nMAIL_HOST=127.0.0.1\nMAIL_PORT={}\nMAIL_USERNAME=\nMAIL_PASSWORD=\n",
            relay.port()
        )
    };
    write(&root.join(".env"), &env("ak-8f3e9c2d1b7a-real-key"));
    let root_var = format!("invoiceninja.root={}", root.display());
    let args = [
        "--pack",
        "invoiceninja",
        "--var",
        &root_var,
        "--var",
        "invoiceninja.smtp_mode=plain",
    ];

    let off = switched_off(&args);
    for (name, why) in [
        ("jobs_backlog", "`sync` is not `database`"),
        ("jobs_stuck", "`sync` is not `database`"),
        ("failed_jobs", "`sync` is not `database`"),
        ("queue_worker", "`sync/true` is not `database/false`"),
        ("snappdf_binary", "`phantom` is not `snappdf`"),
        ("snappdf_smoke", "`phantom` is not `snappdf`"),
        ("smtp_reachable", "does not match `^smtp/.`"),
        ("pdf_body", "enabled_if"),
    ] {
        let got = off
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not off: {off:?}"));
        assert!(got.contains(why), "{name}: {why:?} is not in {got:?}");
    }
    assert!(!off.contains_key("phantomjs_key"), "{off:?}");
    assert!(!off.contains_key("smtp_relay"), "{off:?}");

    let r = check_json(&args);
    for name in ["phantomjs_key", "smtp_relay"] {
        assert_eq!(r.get(name)["state"], "passing", "{}", r.get(name));
    }

    write(
        &root.join(".env"),
        &env("a-demo-key-with-low-quota-per-ip-address"),
    );
    relay.stop();
    let r = check_json(&args);
    let key = r.get("phantomjs_key");
    assert_eq!(key["reason"], "assertion_failed", "{key}");
    assert!(
        key["message"]
            .as_str()
            .unwrap()
            .contains("`PHANTOMJS_KEY` is still the value the application ships with"),
        "{key}"
    );
    assert_eq!(r.get("smtp_relay")["reason"], "connection_refused");
}

/// The pack's defaults are the paths of a standard install; pointed at a
/// directory without `.env`, loading says what to set.
#[test]
fn invoiceninja_without_its_env_says_to_set_root() {
    let dir = tempdir("pack-ninja-noenv");
    let root_var = format!("invoiceninja.root={}", dir.path().display());
    let out = Command::new(crate::support::agent::binary())
        .args(["validate", "--pack", "invoiceninja", "--var", &root_var])
        .env_remove("HEALTHPROBE_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot read the app's .env at")
            && err.contains("set the pack's vars to where the app lives"),
        "{err}"
    );
    let _ = Path::new("");
}
