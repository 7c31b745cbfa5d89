//! The `migrations` kind against real servers: Mastodon's `schema_migrations`
//! on PostgreSQL (with `db/post_migrate`), Invoice Ninja's Laravel
//! `migrations` table on MariaDB.

use std::path::Path;

use healthprobe::checks::Reason;

use crate::mysql::{assert_reason, invoice_ninja_db, run_check};
use crate::postgres::mastodon_db;
use crate::support::mariadb::{self, Mariadb};
use crate::support::postgres::{self, Postgres};
use crate::support::tempdir;

fn touch(dir: &Path, names: &[&str]) {
    std::fs::create_dir_all(dir).unwrap();
    for n in names {
        std::fs::write(dir.join(n), "# migration\n").unwrap();
    }
}

pub(crate) const MASTODON_MIGRATE: [&str; 4] = [
    "20160220174730_create_accounts.rb",
    "20230904134623_create_notification_requests.rb",
    "20240307180905_create_severed_relationships.rb",
    "20240312105620_add_unique_index_on_preview_cards.rb",
];
pub(crate) const MASTODON_POST: [&str; 2] = [
    "20240307095500_remove_account_default_column.rb",
    "20240320140159_drop_unused_index.rb",
];

#[tokio::test(flavor = "multi_thread")]
async fn migrations_rails_pending_and_post_deploy_pending_are_named() {
    let pg = Postgres::shared();
    let db = mastodon_db(pg);
    let root = tempdir("mastodon");
    touch(&root.path().join("db/migrate"), &MASTODON_MIGRATE);
    touch(&root.path().join("db/post_migrate"), &MASTODON_POST);
    touch(&root.path().join("db/migrate"), &["README"]);
    let yaml = format!(
        "name: mastodon_migrations\nkind: migrations\ntimeout: 5s\nmigrations:\n  url: postgres://{}@127.0.0.1:{}/{db}\n  password: {}\n  flavor: rails\n  root: {}\n",
        postgres::USER,
        pg.port(),
        postgres::PASSWORD,
        root.path().display()
    );
    pg.psql_db(
        &db,
        "INSERT INTO schema_migrations VALUES ('20160220174730'), ('20230904134623')",
    );
    let o = run_check(&yaml).await;
    assert_reason(&o, Reason::AssertionFailed);
    assert_eq!(o.value, Some(4.0));
    assert_eq!(
        o.message,
        format!(
            "4 migrations are pending in database `{db}` (2 in db/migrate, 2 in db/post_migrate): \
             20240307095500_remove_account_default_column (post-deployment), \
             20240307180905_create_severed_relationships, \
             20240312105620_add_unique_index_on_preview_cards, \
             20240320140159_drop_unused_index (post-deployment); \
             run `RAILS_ENV=production bin/rails db:migrate`"
        )
    );
    let states: Vec<(String, f64)> = o
        .samples
        .iter()
        .filter(|s| s.family.name == "healthprobe_migrations")
        .map(|s| (s.labels[0].1.clone(), s.value))
        .collect();
    assert_eq!(
        states,
        [
            ("pending".to_string(), 4.0),
            ("pending_post_deploy".to_string(), 2.0),
            ("unknown".to_string(), 0.0),
            ("applied".to_string(), 2.0)
        ]
    );

    // The pre-deployment ones applied (SKIP_POST_DEPLOYMENT_MIGRATIONS=true).
    pg.psql_db(
        &db,
        "INSERT INTO schema_migrations VALUES ('20240307180905'), ('20240312105620')",
    );
    let o = run_check(&yaml).await;
    assert_eq!(o.value, Some(2.0));
    assert!(
        o.message.contains("only post-deployment migrations are pending: run `RAILS_ENV=production bin/rails db:migrate` now that the new code is running"),
        "{}",
        o.message
    );

    // All applied.
    pg.psql_db(
        &db,
        "INSERT INTO schema_migrations VALUES ('20240307095500'), ('20240320140159')",
    );
    let o = run_check(&yaml).await;
    assert_reason(&o, Reason::Ok);
    assert_eq!(o.value, Some(0.0));
    assert_eq!(
        o.message,
        format!(
            "all 6 migrations are applied in database `{db}` (4 in db/migrate, 2 in db/post_migrate)"
        )
    );

    // The database newer than the code: a migration with no file.
    pg.psql_db(
        &db,
        "INSERT INTO schema_migrations VALUES ('20250101000000')",
    );
    let o = run_check(&yaml).await;
    assert_reason(&o, Reason::AssertionFailed);
    assert_eq!(o.value, Some(0.0));
    assert!(
        o.message.starts_with(&format!(
            "database `{db}` records 1 migration with no file in db/migrate, db/post_migrate: 20250101000000 — the database is newer than the code"
        )),
        "{}",
        o.message
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn migrations_laravel_flavour_on_mariadb() {
    let db = Mariadb::shared();
    let ninja = invoice_ninja_db(db);
    let root = tempdir("ninja");
    let files = [
        "2014_10_12_000000_create_users_table.php",
        "2019_08_19_000000_create_failed_jobs_table.php",
        "2021_09_16_115919_update_designs.php",
        "2024_01_10_000000_add_e_invoice_to_accounts.php",
    ];
    touch(&root.path().join("database/migrations"), &files);
    let yaml = format!(
        "name: ninja_migrations\nkind: migrations\ntimeout: 5s\nmigrations:\n  url: mysql://{}@127.0.0.1:{}/{ninja}\n  password: {}\n  flavor: laravel\n  root: {}\n",
        mariadb::USER,
        db.port(),
        mariadb::PASSWORD,
        root.path().display()
    );
    db.exec_sql(&format!(
        "INSERT INTO `{ninja}`.migrations (migration, batch) VALUES
           ('2014_10_12_000000_create_users_table', 1), ('2019_08_19_000000_create_failed_jobs_table', 1)"
    ));
    let o = run_check(&yaml).await;
    assert_reason(&o, Reason::AssertionFailed);
    assert_eq!(o.value, Some(2.0));
    assert_eq!(
        o.message,
        format!(
            "2 migrations are pending in database `{ninja}`: 2021_09_16_115919_update_designs, \
             2024_01_10_000000_add_e_invoice_to_accounts; run `php artisan migrate`"
        )
    );
    db.exec_sql(&format!(
        "INSERT INTO `{ninja}`.migrations (migration, batch) VALUES
           ('2021_09_16_115919_update_designs', 2), ('2024_01_10_000000_add_e_invoice_to_accounts', 2)"
    ));
    let o = run_check(&yaml).await;
    assert_reason(&o, Reason::Ok);
    assert_eq!(
        o.message,
        format!("all 4 migrations are applied in database `{ninja}`")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn migrations_missing_table_and_missing_directory() {
    let pg = Postgres::shared();
    let root = tempdir("norails");
    touch(&root.path().join("db/migrate"), &["20240101000000_a.rb"]);
    // The `app` database has no schema_migrations table.
    let yaml = |root: &Path| {
        format!(
            "name: m\nkind: migrations\ntimeout: 5s\nmigrations:\n  url: postgres://{}@127.0.0.1:{}/app\n  password: {}\n  flavor: rails\n  root: {}\n",
            postgres::USER,
            pg.port(),
            postgres::PASSWORD,
            root.display()
        )
    };
    let o = run_check(&yaml(root.path())).await;
    assert_reason(&o, Reason::NotFound);
    assert!(
        o.message
            .contains("relation \"schema_migrations\" does not exist")
            && o.message
                .contains("the migrations table `schema_migrations` (column `version`) is missing"),
        "{}",
        o.message
    );
    let empty = tempdir("norails-empty");
    let o = run_check(&yaml(empty.path())).await;
    assert_reason(&o, Reason::NotFound);
    assert!(
        o.message.starts_with(&format!(
            "cannot read the migrations directory {}",
            empty.path().join("db/migrate").display()
        )) && o.message.ends_with("is `root` the app's directory?"),
        "{}",
        o.message
    );
}
