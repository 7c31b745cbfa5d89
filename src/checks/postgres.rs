//! The `postgres` kind: one number from a PostgreSQL server, against bounds.
//!
//! The same query-to-value model as `mysql` (`query`, `what`, `meaning`,
//! `expect.value`) and the same connection fields; everything but the
//! driver lives in [`crate::support::database`].

use super::{BuildContext, Check, FieldError, Outcome, RunContext};
use crate::support::database::{Connection, Engine, ValueJudge, database_spec, measure_query};

database_spec! { query;
    /// The `postgres:` block: where the server is, how to log in, and the
    /// `query` whose number becomes the check's value (always exported),
    /// held to `expect.value`.
    pub struct PostgresSpec {}
}

/// A prepared `postgres` check.
pub struct PostgresCheck {
    conn: Connection,
    sql: String,
    judge: ValueJudge,
}

impl Check for PostgresCheck {
    type Spec = PostgresSpec;

    fn build(spec: &PostgresSpec, ctx: &BuildContext) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let conn = Connection::build(&spec.connection_fields(), Some(Engine::Postgres), "", ctx)
            .map_err(|mut e| errors.append(&mut e))
            .ok();
        let (sql, judge, mut value_errors) = spec.value_model(None);
        if spec.query.is_none() {
            errors.push(FieldError::new(
                "query",
                "a `query` is required: SQL that returns one number (`SELECT count(*) FROM ...`)",
            ));
        }
        errors.append(&mut value_errors);
        match (conn, sql) {
            (Some(conn), Some(sql)) if errors.is_empty() => Ok(PostgresCheck { conn, sql, judge }),
            _ => Err(errors),
        }
    }

    async fn run(&self, ctx: &RunContext) -> Outcome {
        measure_query(&self.conn, ctx, &self.sql, &self.judge).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml;
    use std::time::Duration;

    fn build(text: &str) -> Result<PostgresCheck, Vec<FieldError>> {
        let node = yaml::parse(text).unwrap().unwrap();
        let spec: PostgresSpec = yaml::from_node(&node, "", &|s: &str| Ok(s.to_string())).unwrap();
        PostgresCheck::build(
            &spec,
            &BuildContext {
                timeout: Duration::from_secs(10),
                pack_dir: None,
            },
        )
    }

    #[test]
    fn builds_from_url_or_fields() {
        let c = build("url: postgres://mastodon@127.0.0.1/mastodon_production?sslmode=verify-full\nquery: SELECT count(*) FROM accounts\n").unwrap();
        assert_eq!(c.conn.database_name(), Some("mastodon_production"));
        assert!(c.conn.tls.as_ref().unwrap().verify);
        let c =
            build("socket: /var/run/postgresql/.s.PGSQL.5433\nuser: postgres\nquery: SELECT 1\n")
                .unwrap();
        assert_eq!(c.conn.place(), "socket /var/run/postgresql/.s.PGSQL.5433");
        assert_eq!(c.conn.database_name(), Some("postgres"));
    }

    #[test]
    fn query_is_required() {
        let e = build("host: h\nuser: u\n").err().unwrap();
        assert_eq!(e[0].path, "query");
        let e = build("url: mysql://u@h/db\nquery: SELECT 1\n")
            .err()
            .unwrap();
        assert!(e[0].message.contains("MySQL URL"), "{}", e[0].message);
    }
}
