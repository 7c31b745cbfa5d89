//! `${VAR}` interpolation in config scalars.
//!
//! `${name}` is a pack var, else a process environment variable; `${env.KEY}`
//! is a key of the pack's `env_file` (the app's own `.env`); `${name:-default}`
//! uses `default` when the value is unset or empty; `$${` writes a literal `${`.

use std::collections::BTreeMap;

/// Where names are looked up.
pub struct Scope<'a> {
    pub vars: &'a BTreeMap<String, String>,
    pub env_file: Option<&'a BTreeMap<String, String>>,
    pub process_env: &'a dyn Fn(&str) -> Option<String>,
}

impl Scope<'_> {
    fn lookup(&self, name: &str) -> Result<Option<String>, String> {
        if let Some(key) = name.strip_prefix("env.") {
            return match self.env_file {
                Some(env) => Ok(env.get(key).cloned()),
                None => Err(format!(
                    "`${{{name}}}` reads the app's .env, but this pack has no `env_file`"
                )),
            };
        }
        Ok(self
            .vars
            .get(name)
            .cloned()
            .or_else(|| (self.process_env)(name)))
    }
}

/// Expands every `${...}` in `text`.
pub fn expand(text: &str, scope: &Scope<'_>) -> Result<String, String> {
    if !text.contains('$') {
        return Ok(text.to_string());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(lit) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = lit;
        } else if let Some(body) = after.strip_prefix("${") {
            // The text is not repeated in these errors: it may be a
            // password that happens to hold `${`.
            let at = text.len() - after.len() + 1;
            let end = body.find('}').ok_or_else(|| {
                format!("unclosed `${{` at character {at} (write `$${{` for a literal `${{`)")
            })?;
            let expr = &body[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            {
                return Err(format!(
                    "the `${{...}}` at character {at} is not a valid variable reference: names are letters, digits, `_` and `.` (write `$${{` for a literal `${{`)"
                ));
            }
            match (scope.lookup(name)?, default) {
                (Some(v), Some(d)) if v.is_empty() => out.push_str(d),
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(if name.starts_with("env.") {
                        format!(
                            "`${{{name}}}` is not set in the pack's env_file (write `${{{name}:-default}}` if it may be missing)"
                        )
                    } else {
                        format!(
                            "`${{{name}}}` is not defined: it is not a var of this pack and not set in the environment"
                        )
                    });
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope_expand(text: &str) -> Result<String, String> {
        let vars = BTreeMap::from([
            ("root".to_string(), "/srv/app".to_string()),
            ("empty".to_string(), String::new()),
        ]);
        let env = BTreeMap::from([("DB_PASSWORD".to_string(), "pw".to_string())]);
        let penv = |k: &str| (k == "HOME").then(|| "/root".to_string());
        expand(
            text,
            &Scope {
                vars: &vars,
                env_file: Some(&env),
                process_env: &penv,
            },
        )
    }

    #[test]
    fn expands_vars_env_and_defaults() {
        assert_eq!(scope_expand("${root}/storage").unwrap(), "/srv/app/storage");
        assert_eq!(scope_expand("${HOME}").unwrap(), "/root");
        assert_eq!(scope_expand("${env.DB_PASSWORD}").unwrap(), "pw");
        assert_eq!(scope_expand("${env.NOPE:-sync}").unwrap(), "sync");
        assert_eq!(scope_expand("${empty:-x}").unwrap(), "x");
        assert_eq!(
            scope_expand("cost $5 $${literal}").unwrap(),
            "cost $5 ${literal}"
        );
    }

    #[test]
    fn undefined_and_malformed_are_errors() {
        assert!(
            scope_expand("${nope}")
                .unwrap_err()
                .contains("is not defined")
        );
        assert!(
            scope_expand("${env.NOPE}")
                .unwrap_err()
                .contains("env_file")
        );
        assert_eq!(
            scope_expand("pw${root").unwrap_err(),
            "unclosed `${` at character 3 (write `$${` for a literal `${`)"
        );
        let e = scope_expand("x9${Qw! z}").unwrap_err();
        assert!(e.contains("at character 3 is not a valid"), "{e}");
        assert!(!e.contains("Qw"), "the text may be a password: {e}");
    }
}
