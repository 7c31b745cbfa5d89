//! The built-in `mastodon` pack against an instance that looks real, healthy
//! then broken, through the real binary (`healthprobe check --pack
//! mastodon`): the `live` checkout (`.env.production`, `db/migrate`,
//! `db/post_migrate`, `public/packs` with its `manifest.json`), a real
//! PostgreSQL reached the way Mastodon's setup writes it (DB_HOST is the
//! socket directory), nginx serving the front page Rails renders, `/health`
//! with the request id and the streaming health check, and a web process
//! renamed as Puma renames itself, with or without RAILS_ENV=production.
//!
//! Broken: after an upgrade whose precompile failed half-way (a pack the
//! front page names is missing), whose migrations were not run (one regular,
//! one post-deployment), with Puma and the streaming server down (nginx
//! answers 502 without a request id) and Puma restarted without
//! RAILS_ENV=production. Swap cannot be added or removed by a test: the
//! `min_swap_bytes` var is set to what this machine has (passes) and one byte
//! more (fails).

use std::path::{Path, PathBuf};

use crate::migrations::{MASTODON_MIGRATE as MIGRATE, MASTODON_POST as POST_MIGRATE};
use crate::pack_util::{assert_broken_report, check_json, chmod, fixture, titled_process, write};
use crate::postgres::mastodon_db;
use crate::probe_util::meminfo_bytes;
use crate::support::nginx::Nginx;
use crate::support::postgres::{self, Postgres};
use crate::support::process::ServerProcess;
use crate::support::{free_port, tempdir};

const NEW_MIGRATE: &str = "20240724181224_add_polymorphic_index_to_notifications.rb";
const NEW_POST_MIGRATE: &str = "20240725085421_remove_devices_public_key.rb";
const PACKS: [&str; 4] = [
    "css/common-9f3e2b1c.css",
    "js/common-1e8f5a0b.js",
    "js/application-7d1c3a9e.js",
    "js/locale/en-4b2a6c1d.js",
];

const ENABLED: [&str; 9] = [
    "web_health",
    "streaming_health",
    "request_id",
    "assets_fresh",
    "assets_precompiled",
    "migrations_pending",
    "post_migrations_pending",
    "rails_env",
    "swap_present",
];

struct Instance {
    dir: tempfile::TempDir,
    db: String,
    nginx: Nginx,
    puma: Option<ServerProcess>,
    puma_port: u16,
    dead_port: u16,
    config: PathBuf,
}

impl Instance {
    fn root(&self) -> PathBuf {
        self.dir.path().join("live")
    }

    fn healthy() -> Instance {
        let pg = Postgres::shared();
        let db = mastodon_db(pg);
        let dir = tempdir("pack-mastodon");
        chmod(dir.path(), 0o755);
        let root = dir.path().join("live");
        let dead_port = free_port();
        write_site(dir.path(), &root, "nginx-healthy.conf", dead_port);
        let nginx = Nginx::start(&format!(
            "include {};",
            dir.path().join("site.conf").display()
        ));
        let mut m = Instance {
            config: dir.path().join("healthprobe.yaml"),
            dir,
            db,
            nginx,
            puma: None,
            puma_port: free_port(),
            dead_port,
        };
        m.make_tree(pg);
        m.start_puma(Some("production"));
        m
    }

    fn make_tree(&self, pg: &Postgres) {
        let root = self.root();
        write(
            &root.join(".env.production"),
            &format!(
                "# Generated with mastodon:setup\nLOCAL_DOMAIN=social.example\nSINGLE_USER_MODE=false\n\
                 SECRET_KEY_BASE=4f0c1d9e8b7a6f5e4d3c2b1a09f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f0\n\
                 OTP_SECRET=a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2\n\
                 DB_HOST={}\nDB_PORT={}\nDB_NAME={}\nDB_USER={}\nDB_PASS=\n\
                 REDIS_HOST=localhost\nREDIS_PORT=6379\nS3_ENABLED=false\n\
                 SMTP_SERVER=localhost\nSMTP_PORT=25\nSMTP_FROM_ADDRESS=notifications@social.example\n",
                pg.socket_dir().display(),
                pg.port(),
                self.db,
                postgres::USER,
            ),
        );
        write(
            &root.join("lib/mastodon/version.rb"),
            "module Mastodon\n  module Version\n    def major = 4\n    def minor = 2\n  end\nend\n",
        );
        for m in MIGRATE {
            write(&root.join("db/migrate").join(m), "class Migration; end\n");
        }
        for m in POST_MIGRATE {
            write(
                &root.join("db/post_migrate").join(m),
                "class Migration; end\n",
            );
        }
        write(
            &root.join("public/packs/manifest.json"),
            &fixture("mastodon/manifest.json"),
        );
        for p in PACKS {
            write(&root.join("public/packs").join(p), "/* compiled */\n");
        }
        // Installed an hour ago, compiled after.
        set_mtime(&root.join("lib/mastodon/version.rb"), 3600);
        set_mtime(&root.join("public/packs/manifest.json"), 3000);
        let versions: Vec<String> = MIGRATE
            .iter()
            .chain(&POST_MIGRATE)
            .map(|m| format!("('{}')", &m[..14]))
            .collect();
        pg.psql_db(
            &self.db,
            &format!(
                "INSERT INTO schema_migrations VALUES {}",
                versions.join(", ")
            ),
        );
    }

    /// Puma as Mastodon's unit starts it, renamed the way Puma renames itself.
    fn start_puma(&mut self, rails_env: Option<&str>) {
        let title = format!("puma 6.4.2 (tcp://127.0.0.1:{}) [live]", self.puma_port);
        let mut env = vec![("LD_PRELOAD", "libjemalloc.so"), ("PORT", "3000")];
        if let Some(e) = rails_env {
            env.push(("RAILS_ENV", e));
        }
        self.puma = None;
        self.puma = Some(titled_process(&title, None, &env, self.dir.path()));
    }

    fn write_config(&self, min_swap: u64) {
        write(
            &self.config,
            &format!(
                "packs:
  mastodon:
    vars:
      root: {root}
      url: {url}
      web_process: '^puma 6\\.4\\.2 \\(tcp://127\\.0\\.0\\.1:{port}\\)'
      min_swap_bytes: '{min_swap}'
",
                root = self.root().display(),
                url = self.nginx.url(""),
                port = self.puma_port,
            ),
        );
    }

    fn args(&self) -> Vec<String> {
        vec![
            "--config".into(),
            self.config.display().to_string(),
            "--pack".into(),
            "mastodon".into(),
        ]
    }

    fn break_everything(&mut self) {
        let root = self.root();
        // An upgrade: new migrations not run, a precompile that died half-way.
        write(&root.join("db/migrate").join(NEW_MIGRATE), "class M; end\n");
        write(
            &root.join("db/post_migrate").join(NEW_POST_MIGRATE),
            "class M; end\n",
        );
        std::fs::remove_file(root.join("public/packs/js/application-7d1c3a9e.js")).unwrap();
        write(
            &root.join("lib/mastodon/version.rb"),
            "module Mastodon\n  module Version\n    def major = 4\n    def minor = 3\n  end\nend\n",
        );
        // Puma and the streaming server down behind nginx.
        write_site(self.dir.path(), &root, "nginx-broken.conf", self.dead_port);
        self.nginx.start_again();
        // Puma started by hand, without RAILS_ENV.
        self.start_puma(None);
    }
}

/// Sets the modification time of `path` to `secs_ago` seconds ago.
fn set_mtime(path: &Path, secs_ago: u64) {
    let t = std::time::SystemTime::now() - std::time::Duration::from_secs(secs_ago);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

fn write_site(dir: &Path, root: &Path, name: &str, dead_port: u16) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/packs/mastodon");
    write(
        &dir.join("site.conf"),
        &fixture(&format!("mastodon/{name}"))
            .replace("@ROOT@", &root.to_string_lossy())
            .replace("@FIXTURES@", &fixtures.to_string_lossy())
            .replace("@DEAD@", &dead_port.to_string()),
    );
}

#[test]
fn mastodon_pack_flips_between_a_healthy_and_a_broken_instance() {
    let mut m = Instance::healthy();
    let swap = meminfo_bytes("SwapTotal");
    m.write_config(swap);
    let args = m.args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    let healthy = check_json(&args);
    healthy.assert_all_pass(&ENABLED);
    for (name, part) in [
        ("assets_fresh", "4 assets load"),
        ("migrations_pending", "all 6 migrations are applied"),
        (
            "post_migrations_pending",
            "(4 in db/migrate, 2 in db/post_migrate)",
        ),
        ("rails_env", "RAILS_ENV as expected"),
    ] {
        let msg = healthy.get(name)["message"].as_str().unwrap().to_string();
        assert!(msg.contains(part), "{name}: {part:?} is not in {msg}");
    }

    m.break_everything();
    m.write_config(swap + 1);
    let broken = check_json(&args);
    let new = &NEW_MIGRATE[..NEW_MIGRATE.len() - 3];
    let new_post = &NEW_POST_MIGRATE[..NEW_POST_MIGRATE.len() - 3];
    let no_swap = if swap == 0 {
        "there is no swap at all".to_string()
    } else {
        "the swap is smaller than the minimum".to_string()
    };
    broken.assert_failures(&[
        ("web_health", "assertion_failed", &["status is 502 Bad Gateway, expected 200"]),
        ("streaming_health", "assertion_failed", &["status is 502 Bad Gateway, expected 200"]),
        ("request_id", "assertion_failed", &["header X-Request-Id is absent"]),
        ("assets_fresh", "assertion_failed", &[
            "1 of 4 assets the page references does not load: /packs/js/application-7d1c3a9e.js (404 Not Found)",
        ]),
        ("migrations_pending", "assertion_failed", &[
            &format!("1 regular migration is pending in database `{}`: {new}", m.db),
            "RAILS_ENV=production bin/rails db:migrate",
            "1 post-deployment migration is pending (not judged by this check)",
        ]),
        ("post_migrations_pending", "assertion_failed", &[
            &format!("1 post-deployment migration is pending in database `{}`: {new_post} (post-deployment)", m.db),
        ]),
        ("assets_precompiled", "assertion_failed", &[
            "public/packs/manifest.json: it was last modified ",
            "lib/mastodon/version.rb",
            "it was not rebuilt since that changed",
        ]),
        ("rails_env", "assertion_failed", &["RAILS_ENV is not set"]),
        ("swap_present", "assertion_failed", &[&no_swap]),
    ]);

    let text = assert_broken_report(
        &args,
        &[
            (
                "web_health",
                &["journalctl -u mastodon-web", "docker logs mastodon_web_1"],
            ),
            ("streaming_health", &["journalctl -u mastodon-streaming"]),
            ("request_id", &["request id"]),
            (
                "assets_fresh",
                &[
                    "RAILS_ENV=production bin/rails assets:precompile",
                    "restart the web",
                ],
            ),
            (
                "migrations_pending",
                &["RAILS_ENV=production bin/rails db:migrate", "PgBouncer"],
            ),
            (
                "post_migrations_pending",
                &["RAILS_ENV=production bin/rails db:migrate"],
            ),
            (
                "rails_env",
                &["RAILS_ENV=production", "uninitialized constant"],
            ),
            ("swap_present", &["swap", "public/packs"]),
            (
                "assets_precompiled",
                &["RAILS_ENV=production bin/rails assets:precompile"],
            ),
        ],
    );
    assert!(
        text.contains(
            "guide: https://docs.joinmastodon.org/admin/troubleshooting/#:~:text=assets:precompile"
        ),
        "{text}"
    );
    assert!(
        text.contains("9 of 9 checks failed (4 critical, 5 warning)."),
        "{text}"
    );
}
