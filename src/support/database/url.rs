//! Connection URLs as apps write them (`DATABASE_URL`): `mysql://user:pw@host:3306/db`,
//! `postgres://user@host/db?sslmode=verify-full`, `postgresql:///db?host=/run/postgresql`.
//! Errors never repeat the URL: it may hold a password.

use std::path::PathBuf;

use super::{DbTlsSpec, Engine};

/// Parsed URL with its engine known.
pub struct Parsed {
    pub engine: Engine,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub socket: Option<PathBuf>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub database: Option<String>,
    pub tls: Option<DbTlsSpec>,
}

/// Parses a database URL. Query parameters other than the TLS and socket ones
/// (`pool=5`, `encoding=unicode` in Rails URLs) are ignored.
pub fn parse(text: &str) -> Result<Parsed, String> {
    let text = text.trim();
    let invalid =
        |e| format!("not a valid URL ({e}): write for example mysql://USER@HOST:3306/DATABASE");
    // `postgresql://user@/db?host=/run/postgresql` (libpq's socket form) has
    // an empty host, which the URL parser refuses: parse it with a stand-in.
    let (u, no_host) = match ::url::Url::parse(text) {
        Ok(u) => (u, false),
        Err(::url::ParseError::EmptyHost) if text.contains("@/") => (
            ::url::Url::parse(&text.replacen("@/", "@_/", 1)).map_err(invalid)?,
            true,
        ),
        Err(e) => return Err(invalid(e)),
    };
    let engine = match u.scheme() {
        "mysql" | "mariadb" => Engine::Mysql,
        "postgres" | "postgresql" => Engine::Postgres,
        other => {
            return Err(format!(
                "unknown scheme `{other}://`: use mysql:// (or mariadb://) or postgres://"
            ));
        }
    };
    let mut host = u
        .host_str()
        .map(|h| pct_decode(h.trim_start_matches('[').trim_end_matches(']')))
        .filter(|h| !h.is_empty() && !no_host);
    let mut socket = None;
    if let Some(h) = &host
        && h.starts_with('/')
    {
        socket = Some(PathBuf::from(h));
        host = None;
    }
    let mut port = u.port();
    let user = Some(pct_decode(u.username())).filter(|s| !s.is_empty());
    let password = u.password().map(pct_decode);
    let path = u.path().trim_start_matches('/');
    let database = if path.is_empty() {
        None
    } else if path.contains('/') {
        return Err("the path of the URL must be just the database name (`/DATABASE`)".into());
    } else {
        Some(pct_decode(path))
    };
    let mut tls: Option<DbTlsSpec> = None;
    let mut ca_file = None;
    for (key, value) in u.query_pairs() {
        let value = value.into_owned();
        match (engine, key.as_ref()) {
            (Engine::Postgres, "host") | (Engine::Mysql, "socket") if value.starts_with('/') => {
                socket = Some(PathBuf::from(value));
                host = None;
            }
            (Engine::Postgres, "host") => host = Some(value),
            (Engine::Postgres, "port") => {
                port = Some(
                    value
                        .parse()
                        .map_err(|_| format!("the URL's port `{value}` is not a port number"))?,
                );
            }
            (Engine::Postgres, "sslmode")
            | (Engine::Mysql, "ssl-mode" | "ssl_mode" | "sslmode") => {
                tls = Some(tls_from_mode(&value)?);
            }
            (Engine::Postgres, "sslrootcert") | (Engine::Mysql, "ssl-ca" | "ssl_ca") => {
                ca_file = Some(PathBuf::from(value));
            }
            _ => {}
        }
    }
    if let Some(ca) = ca_file {
        let t = tls.get_or_insert(DbTlsSpec {
            enabled: true,
            verify: true,
            ca_file: None,
        });
        t.ca_file = Some(ca);
    }
    Ok(Parsed {
        engine,
        host,
        port,
        socket,
        user,
        password,
        database,
        tls,
    })
}

/// libpq's `sslmode` and MySQL's `ssl-mode`. Modes that fall back to plain
/// text (`prefer`, `allow`, `PREFERRED`) mean no TLS here: a check must know
/// which it tests. `require`/`REQUIRED` encrypt without verifying (as libpq
/// does without a root certificate); the `verify` modes verify the chain and
/// the name.
fn tls_from_mode(mode: &str) -> Result<DbTlsSpec, String> {
    let m = mode.to_ascii_lowercase().replace('_', "-");
    let (enabled, verify) = match m.as_str() {
        "disable" | "disabled" | "allow" | "prefer" | "preferred" => (false, false),
        "require" | "required" => (true, false),
        "verify-ca" | "verify-full" | "verify-identity" => (true, true),
        _ => {
            return Err(format!(
                "unknown TLS mode `{mode}` in the URL: use disable, require, verify-ca or verify-full (or a `tls:` block)"
            ));
        }
    };
    Ok(DbTlsSpec {
        enabled,
        verify,
        ca_file: None,
    })
}

/// `%XX` decoding; malformed sequences are kept as written.
fn pct_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mysql_url_with_everything() {
        let p = parse("mysql://ninja:p%40ss%3Aword@db.local:3307/ninja?ssl-mode=VERIFY_IDENTITY&ssl-ca=/etc/ca.pem").unwrap();
        assert_eq!(p.engine, Engine::Mysql);
        assert_eq!(p.host.as_deref(), Some("db.local"));
        assert_eq!(p.port, Some(3307));
        assert_eq!(p.user.as_deref(), Some("ninja"));
        assert_eq!(p.password.as_deref(), Some("p@ss:word"));
        assert_eq!(p.database.as_deref(), Some("ninja"));
        let tls = p.tls.unwrap();
        assert!(tls.enabled && tls.verify);
        assert_eq!(tls.ca_file, Some(PathBuf::from("/etc/ca.pem")));
    }

    #[test]
    fn postgres_socket_and_modes() {
        let p =
            parse("postgresql://mastodon@/mastodon_production?host=/var/run/postgresql").unwrap();
        assert_eq!(p.engine, Engine::Postgres);
        assert_eq!(p.host, None);
        assert_eq!(p.socket, Some(PathBuf::from("/var/run/postgresql")));
        let p = parse("postgres://u@%2Frun%2Fpostgresql/db").unwrap();
        assert_eq!(p.socket, Some(PathBuf::from("/run/postgresql")));
        let p = parse("postgres://u@[::1]:5433/db?sslmode=require&pool=5").unwrap();
        assert_eq!(p.host.as_deref(), Some("::1"));
        assert_eq!(p.port, Some(5433));
        let t = p.tls.unwrap();
        assert!(t.enabled && !t.verify);
        assert!(
            !parse("postgres://u@h/db?sslmode=prefer")
                .unwrap()
                .tls
                .unwrap()
                .enabled
        );
    }

    #[test]
    fn errors_never_repeat_the_url() {
        let e = parse("redis://u:topsecret@h/0").err().unwrap();
        assert!(e.contains("unknown scheme `redis://`"), "{e}");
        assert!(!e.contains("topsecret"));
        let e = parse("mysql://u:topsecret@h:notaport/db").err().unwrap();
        assert!(!e.contains("topsecret"), "{e}");
        let e = parse("mysql://u@h/a/b").err().unwrap();
        assert!(e.contains("database name"), "{e}");
        let e = parse("postgres://u@h/db?sslmode=sometimes").err().unwrap();
        assert!(e.contains("unknown TLS mode"), "{e}");
    }
}
