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

/// Registers a credential sent in a header (`Authorization: Bearer TOKEN`,
/// `X-Api-Key: KEY`): the whole value, the part after an auth scheme, and
/// for `Basic` the decoded `user:password` and password, since a server may
/// echo any of them back.
pub fn register_credential(value: &str) {
    register(value);
    if let Some((scheme, rest)) = value.trim().split_once(' ') {
        let rest = rest.trim();
        register(rest);
        if scheme.eq_ignore_ascii_case("basic") {
            use base64::Engine as _;
            if let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(rest)
                && let Ok(text) = String::from_utf8(raw)
            {
                register(&text);
                if let Some((_, pw)) = text.split_once(':') {
                    register(pw);
                }
            }
        }
    }
}

/// Registers the values of secret-looking query parameters of a URL
/// (`?secret=`, `?token=`, `?api_key=`), decoded and as written, so that
/// they stay masked when a server repeats them in another form.
pub fn register_query_secrets(url: &url::Url) {
    for (k, v) in url.query_pairs() {
        if is_secret_key(&k) {
            register(&v);
        }
    }
    for pair in url.query().unwrap_or("").split('&') {
        if let Some((k, v)) = pair.split_once('=')
            && is_secret_key(k)
        {
            register(v);
        }
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
            .find(['&', ' ', '\n', '"', '\'', '#', '`', ')', '<', '>'])
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

/// A `tracing` writer to stderr that masks secrets in every line: the
/// agent's own events are redacted where they are written, and this is the
/// net under them and under the libraries' events (`log` records included).
#[derive(Clone, Copy, Debug, Default)]
pub struct RedactingStderr;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RedactingStderr {
    type Writer = LineBuffer;

    fn make_writer(&'a self) -> LineBuffer {
        LineBuffer(Vec::new())
    }
}

/// One event's text, redacted and written to stderr when dropped.
#[derive(Debug)]
pub struct LineBuffer(Vec<u8>);

impl std::io::Write for LineBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineBuffer {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.0);
        let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), redact(&text).as_bytes());
    }
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
        assert_eq!(
            redact("(redirect to http://h/r?token=abc), expected 200"),
            "(redirect to http://h/r?token=<redacted>), expected 200"
        );
    }

    #[test]
    fn credentials_are_registered_in_every_form() {
        register_credential("Basic dXNlcjpjcmVkLWNhbmFyeS0x"); // user:cred-canary-1
        assert_eq!(redact("pw cred-canary-1 !"), "pw <redacted> !");
        register_credential("Bearer tok-canary-2");
        assert_eq!(redact("echo: tok-canary-2"), "echo: <redacted>");
        register_query_secrets(&url::Url::parse("http://h/u?api_key=a%2Fq-canary-3&x=1").unwrap());
        assert_eq!(
            redact("a/q-canary-3 a%2Fq-canary-3"),
            "<redacted> <redacted>"
        );
    }

    #[test]
    fn secret_keys() {
        assert!(is_secret_key("DB_PASSWORD"));
        assert!(is_secret_key("UPDATE_SECRET"));
        assert!(is_secret_key("APP_KEY"));
        assert!(!is_secret_key("DB_HOST"));
    }
}
