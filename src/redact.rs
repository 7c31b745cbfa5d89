//! Secrets never leave the agent: values known to be secret (passwords from an
//! app's `.env`, credentials read by checks) are registered here, and every
//! text that goes out (messages, logs, the API, the status page, reports)
//! passes through [`redact`]. Checks also avoid putting secrets in messages in
//! the first place; this is the net under them.

use std::borrow::Cow;
use std::sync::RwLock;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// What a secret is replaced with.
pub const MASK: &str = "<redacted>";

/// Whether an environment key names a secret (`DB_PASSWORD`, `UPDATE_SECRET`, `API_KEY`...).
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_uppercase();
    [
        "PASSWORD",
        "PASSWD",
        "SECRET",
        "TOKEN",
        "_KEY",
        "PRIVATE",
        "CREDENTIAL",
        "AUTH",
    ]
    .iter()
    .any(|w| k.contains(w))
        || k == "KEY"
}

/// Registers a secret value. Short values (under 4 bytes) are ignored: masking
/// them would mangle ordinary text and they are not worth hiding.
pub fn register(secret: &str) {
    if secret.len() < 4 {
        return;
    }
    let mut s = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    if !s.iter().any(|x| x == secret) {
        s.push(secret.to_string());
        // Longest first, so a secret containing another is masked whole.
        s.sort_by_key(|x| std::cmp::Reverse(x.len()));
    }
}

/// Masks every registered secret, and the value of `secret=`/`token=`/
/// `password=` query parameters, in `text`.
pub fn redact(text: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(text);
    {
        let s = SECRETS.read().unwrap_or_else(|e| e.into_inner());
        for secret in s.iter() {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), MASK));
            }
        }
    }
    if out.contains('=') {
        let masked = mask_query_values(&out);
        if masked != out {
            return Cow::Owned(masked);
        }
    }
    out
}

/// Masks the values of secret-looking query parameters (`?secret=...`).
fn mask_query_values(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('=') {
        let (head, tail) = rest.split_at(i);
        out.push_str(head);
        out.push('=');
        let key_start = head
            .rfind(['?', '&', ' ', '\n', '"', '\''])
            .map_or(0, |p| p + 1);
        let key = &head[key_start..];
        let tail = &tail[1..];
        let end = tail
            .find(['&', ' ', '\n', '"', '\'', '#'])
            .unwrap_or(tail.len());
        if head[..key_start].ends_with(['?', '&']) && is_secret_key(key) && end > 0 {
            out.push_str(MASK);
            rest = &tail[end..];
        } else {
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_registered_secrets_and_query_secrets() {
        register("hunter2-canary");
        assert_eq!(
            redact("login with hunter2-canary failed"),
            "login with <redacted> failed"
        );
        assert_eq!(
            redact("GET https://x/update?secret=abc&lang=fr"),
            "GET https://x/update?secret=<redacted>&lang=fr"
        );
        assert_eq!(redact("a=b c"), "a=b c");
    }

    #[test]
    fn secret_keys() {
        assert!(is_secret_key("DB_PASSWORD"));
        assert!(is_secret_key("UPDATE_SECRET"));
        assert!(is_secret_key("APP_KEY"));
        assert!(!is_secret_key("DB_HOST"));
    }
}
