//! A Laravel-style `.env` reader (the format of `vlucas/phpdotenv`).
//!
//! Written here rather than taken from a crate because it reads untrusted
//! bytes, must never touch the process environment, must keep going after a
//! bad line (the app itself does), and is fuzzed with the other parsers.
//! Supported: `KEY=value`, `export KEY=value`, `#` comments (inline after a
//! space for unquoted values), `'single'` (literal), `"double"` (escapes
//! `\n \" \\` and `${OTHER}` expansion from earlier keys), empty values.

use std::collections::BTreeMap;

/// The keys and values of a `.env`, plus the lines that could not be read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DotEnv {
    pub vars: BTreeMap<String, String>,
    /// `(line number, problem)` for lines that were skipped.
    pub problems: Vec<(usize, String)>,
}

/// Parses the text of a `.env` file.
pub fn parse(text: &str) -> DotEnv {
    let mut env = DotEnv::default();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line
            .strip_prefix("export ")
            .map(str::trim_start)
            .unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            env.problems.push((i + 1, "expected KEY=value".into()));
            continue;
        };
        let key = key.trim();
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            env.problems
                .push((i + 1, format!("`{key}` is not a valid key")));
            continue;
        }
        match value_of(value.trim_start(), &env.vars) {
            Ok(v) => {
                env.vars.insert(key.to_string(), v);
            }
            Err(m) => env.problems.push((i + 1, m)),
        }
    }
    env
}

fn value_of(v: &str, earlier: &BTreeMap<String, String>) -> Result<String, String> {
    if let Some(body) = v.strip_prefix('\'') {
        let end = body.find('\'').ok_or("unterminated single-quoted value")?;
        return Ok(body[..end].to_string());
    }
    if let Some(body) = v.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = body.chars();
        loop {
            match chars.next() {
                None => return Err("unterminated double-quoted value".into()),
                Some('"') => break,
                Some('\\') => match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some(c) => out.push(c),
                    None => return Err("unterminated double-quoted value".into()),
                },
                Some(c) => out.push(c),
            }
        }
        return Ok(expand(&out, earlier));
    }
    let unquoted = match v.find(" #") {
        Some(i) => &v[..i],
        None => v,
    };
    Ok(expand(unquoted.trim_end(), earlier))
}

/// `${KEY}` from keys defined earlier in the file; unknown keys expand to "".
fn expand(v: &str, earlier: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = v;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        match rest[i + 2..].find('}') {
            Some(end) => {
                let name = &rest[i + 2..i + 2 + end];
                out.push_str(earlier.get(name).map(String::as_str).unwrap_or(""));
                rest = &rest[i + 3 + end..];
            }
            None => {
                out.push_str(&rest[i..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_laravel_env() {
        let env = parse(
            "APP_NAME=\"Invoice Ninja\"\n# comment\nDB_HOST=127.0.0.1 # inline\nexport QUEUE_CONNECTION=database\nMAIL_PASSWORD='p@ss #1'\nEMPTY=\nURL=\"https://${DB_HOST}/x\"\nbroken line\n",
        );
        assert_eq!(env.vars["APP_NAME"], "Invoice Ninja");
        assert_eq!(env.vars["DB_HOST"], "127.0.0.1");
        assert_eq!(env.vars["QUEUE_CONNECTION"], "database");
        assert_eq!(env.vars["MAIL_PASSWORD"], "p@ss #1");
        assert_eq!(env.vars["EMPTY"], "");
        assert_eq!(env.vars["URL"], "https://127.0.0.1/x");
        assert_eq!(env.problems, vec![(8, "expected KEY=value".to_string())]);
    }

    #[test]
    fn unterminated_quotes_are_reported_not_fatal() {
        let env = parse("A=\"open\nB=2\n");
        assert_eq!(env.vars.get("B").map(String::as_str), Some("2"));
        assert_eq!(env.problems.len(), 1);
    }
}
