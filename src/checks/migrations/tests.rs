use std::time::Duration;

use super::*;
use crate::config::yaml;

fn build(text: &str) -> Result<MigrationsCheck, Vec<FieldError>> {
    let node = yaml::parse(text).unwrap().unwrap();
    let spec: MigrationsSpec = yaml::from_node(&node, "", &|s: &str| Ok(s.to_string())).unwrap();
    MigrationsCheck::build(
        &spec,
        &BuildContext {
            timeout: Duration::from_secs(10),
            pack_dir: None,
        },
    )
}

fn touch(dir: &Path, names: &[&str]) {
    std::fs::create_dir_all(dir).unwrap();
    for n in names {
        std::fs::write(dir.join(n), "").unwrap();
    }
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

#[test]
fn file_names_to_ids() {
    let r = Flavor::Rails;
    assert_eq!(
        r.id_of_file("20240101000000_create_users.rb").as_deref(),
        Some("20240101000000")
    );
    assert_eq!(r.id_of_file("001_init.rb").as_deref(), Some("1"));
    assert_eq!(r.id_of_file("README.md"), None);
    assert_eq!(r.id_of_file("20240101000000.rb"), None);
    assert_eq!(r.id_of_file("abc_x.rb"), None);
    assert_eq!(r.id_of_row("001"), "1");
    let l = Flavor::Laravel;
    assert_eq!(
        l.id_of_file("2014_10_12_000000_create_users_table.php")
            .as_deref(),
        Some("2014_10_12_000000_create_users_table")
    );
    assert_eq!(l.id_of_file(".php"), None);
    assert_eq!(l.id_of_file("notes.txt"), None);
    assert_eq!(order("999", "1000"), std::cmp::Ordering::Less);
    assert_eq!(order("b", "a"), std::cmp::Ordering::Greater);
}

#[test]
fn rails_defaults_and_post_deploy_split() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    touch(
        &r.join("db/migrate"),
        &[
            "20240101000000_create_accounts.rb",
            "20240102000000_add_index.rb",
            "20240103000000_add_column.rb",
        ],
    );
    touch(
        &r.join("db/post_migrate"),
        &["20240104000000_remove_old_column.rb"],
    );
    let c = build(&format!(
        "url: postgres://mastodon@127.0.0.1/mastodon_production\nflavor: rails\nroot: {}\n",
        r.display()
    ))
    .unwrap();
    assert_eq!(c.table, "schema_migrations");
    assert_eq!(c.column, "version");
    let files = read_dirs(c.flavor, &c.dirs).unwrap();
    assert_eq!(files.len(), 4);

    let o = c.compare(&files, &set(&["20240101000000"]));
    assert_eq!(o.reason, Reason::AssertionFailed);
    assert_eq!(o.value, Some(3.0));
    assert_eq!(
        o.message,
        "3 migrations are pending in database `mastodon_production` (2 in db/migrate, 1 in db/post_migrate): \
         20240102000000_add_index, 20240103000000_add_column, 20240104000000_remove_old_column (post-deployment); \
         run `RAILS_ENV=production bin/rails db:migrate`"
    );

    let o = c.compare(
        &files,
        &set(&["20240101000000", "20240102000000", "20240103000000"]),
    );
    assert_eq!(o.value, Some(1.0));
    assert!(
        o.message
            .contains("only post-deployment migrations are pending"),
        "{}",
        o.message
    );

    let all = set(&[
        "20240101000000",
        "20240102000000",
        "20240103000000",
        "20240104000000",
    ]);
    let o = c.compare(&files, &all);
    assert!(o.success(), "{}", o.message);
    assert_eq!(o.value, Some(0.0));
    assert_eq!(
        o.message,
        "all 4 migrations are applied in database `mastodon_production` (3 in db/migrate, 1 in db/post_migrate)"
    );
}

#[test]
fn fail_on_splits_regular_and_post_deploy() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    touch(
        &r.join("db/migrate"),
        &["20240101000000_a.rb", "20240102000000_b.rb"],
    );
    touch(&r.join("db/post_migrate"), &["20240104000000_c.rb"]);
    let base = format!(
        "url: postgres://mastodon@127.0.0.1/mastodon_production\nflavor: rails\nroot: {}\n",
        r.display()
    );
    let regular = build(&format!("{base}fail_on: regular\n")).unwrap();
    let post = build(&format!("{base}fail_on: post_deploy\n")).unwrap();
    let files = read_dirs(regular.flavor, &regular.dirs).unwrap();

    // Only the post-deployment migration is pending: the regular check passes
    // and says so; the post-deployment one fails.
    let applied = set(&["20240101000000", "20240102000000"]);
    let o = regular.compare(&files, &applied);
    assert!(o.success(), "{}", o.message);
    assert_eq!(o.value, Some(0.0));
    assert_eq!(
        o.message,
        "all 2 regular migrations are applied in database `mastodon_production`; \
         1 post-deployment migration is pending (not judged by this check)"
    );
    let o = post.compare(&files, &applied);
    assert_eq!(o.reason, Reason::AssertionFailed);
    assert_eq!(o.value, Some(1.0));
    assert_eq!(
        o.message,
        "1 post-deployment migration is pending in database `mastodon_production`: \
         20240104000000_c (post-deployment); only post-deployment migrations are pending: \
         run `RAILS_ENV=production bin/rails db:migrate` now that the new code is running"
    );

    // A regular one pending: the regular check fails, the other passes.
    let applied = set(&["20240101000000", "20240104000000"]);
    let o = regular.compare(&files, &applied);
    assert_eq!(o.value, Some(1.0));
    assert!(
        o.message.starts_with(
            "1 regular migration is pending in database `mastodon_production`: 20240102000000_b; run `"
        ),
        "{}",
        o.message
    );
    let o = post.compare(&files, &applied);
    assert!(o.success(), "{}", o.message);
    assert!(
        o.message
            .ends_with("1 regular migration is pending (not judged by this check)"),
        "{}",
        o.message
    );

    // Both pending: the post-deployment check does not say "only".
    let o = post.compare(&files, &set(&["20240101000000"]));
    assert_eq!(
        o.message,
        "1 post-deployment migration is pending in database `mastodon_production`: \
         20240104000000_c (post-deployment); run `RAILS_ENV=production bin/rails db:migrate`; \
         1 regular migration is pending (not judged by this check)"
    );

    let e = build(&format!(
        "{base}fail_on: post_deploy\npost_deploy_dirs: []\n"
    ))
    .err()
    .unwrap();
    assert_eq!(e[0].path, "fail_on");
}

#[test]
fn the_database_newer_than_the_code() {
    let root = tempfile::tempdir().unwrap();
    touch(&root.path().join("db/migrate"), &["20240101000000_a.rb"]);
    let text = format!(
        "url: mysql://u@127.0.0.1/app\nflavor: rails\nroot: {}\n",
        root.path().display()
    );
    let c = build(&text).unwrap();
    let files = read_dirs(c.flavor, &c.dirs).unwrap();
    let o = c.compare(&files, &set(&["20240101000000", "20250101000000"]));
    assert_eq!(o.reason, Reason::AssertionFailed);
    assert_eq!(o.value, Some(0.0));
    assert!(
        o.message
            .contains("records 1 migration with no file in db/migrate: 20250101000000"),
        "{}",
        o.message
    );
    assert!(o.message.contains("the database is newer than the code"));

    let c = build(&format!("{text}allow_unknown: true\n")).unwrap();
    let o = c.compare(&files, &set(&["20240101000000", "20250101000000"]));
    assert!(o.success(), "{}", o.message);
    assert!(o.message.contains("(allowed: "), "{}", o.message);
}

#[test]
fn laravel_names_at_most_five() {
    let root = tempfile::tempdir().unwrap();
    let names: Vec<String> = (1..=8)
        .map(|i| format!("2024_01_0{i}_000000_step_{i}.php"))
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    touch(&root.path().join("database/migrations"), &refs);
    let c = build(&format!(
        "host: 127.0.0.1\nuser: ninja\ndatabase: ninja\nengine: mysql\nflavor: laravel\nroot: {}\nfix: docker compose exec app php artisan migrate --force\n",
        root.path().display()
    ))
    .unwrap();
    let files = read_dirs(c.flavor, &c.dirs).unwrap();
    let o = c.compare(&files, &set(&["2024_01_01_000000_step_1"]));
    assert_eq!(o.value, Some(7.0));
    assert!(
        o.message.starts_with(
            "7 migrations are pending in database `ninja`: 2024_01_02_000000_step_2, "
        ),
        "{}",
        o.message
    );
    assert!(o.message.contains("step_6 and 2 more;"), "{}", o.message);
    assert!(
        o.message
            .ends_with("run `docker compose exec app php artisan migrate --force`")
    );
}

#[test]
fn missing_directories_and_bad_fields() {
    let root = tempfile::tempdir().unwrap();
    let c = build(&format!(
        "url: mysql://u@h/app\nflavor: laravel\nroot: {}\n",
        root.path().display()
    ))
    .unwrap();
    let e = read_dirs(c.flavor, &c.dirs).unwrap_err();
    assert_eq!(e.reason, Reason::NotFound);
    assert!(e.message.contains("database/migrations"), "{}", e.message);
    // The default db/post_migrate may be missing; db/migrate may not.
    touch(&root.path().join("db/migrate"), &["1_a.rb"]);
    let c = build(&format!(
        "url: mysql://u@h/app\nflavor: rails\nroot: {}\n",
        root.path().display()
    ))
    .unwrap();
    assert_eq!(read_dirs(c.flavor, &c.dirs).unwrap().len(), 1);
    let c = build(&format!(
        "url: mysql://u@h/app\nflavor: rails\nroot: {}\npost_deploy_dirs: [db/post_migrate]\n",
        root.path().display()
    ))
    .unwrap();
    assert_eq!(
        read_dirs(c.flavor, &c.dirs).unwrap_err().reason,
        Reason::NotFound
    );

    let e = build("url: mysql://u@h/app\nflavor: rails\n")
        .err()
        .unwrap();
    assert_eq!(e[0].path, "root");
    assert!(e[0].message.contains("set `root`"), "{}", e[0].message);
    let e = build("url: mysql://u@h/app\nflavor: rails\nroot: /srv/app\ntable: \"x y\"\n")
        .err()
        .unwrap();
    assert_eq!(e[0].path, "table");
    let e = build("host: h\nuser: u\nflavor: rails\nroot: /srv/app\n")
        .err()
        .unwrap();
    assert_eq!(e[0].path, "engine");
}
