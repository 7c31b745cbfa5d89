//! HTTP response handling in the `http` kind: any bytes as the server's
//! answer (status line, headers, body, chunking), read by the real check
//! from a server on 127.0.0.1 and judged against every kind of expectation.
//! Never a panic, always a message, and the request's secrets (`?secret=`,
//! `Authorization`) never show even when the answer repeats them.
#![no_main]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use healthprobe::checks::Check;
use healthprobe::checks::http::HttpCheck;
use healthprobe_fuzz::{build, ctx, rt};
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "fuzz-secret-7";
const TOKEN: &str = "fuzz-token-9";

static ANSWER: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// A server answering every connection with the current input, then closing.
fn server() -> u16 {
    static PORT: OnceLock<u16> = OnceLock::new();
    *PORT.get_or_init(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let answer = ANSWER.lock().unwrap().clone();
                let _ = s.write_all(&answer);
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        });
        port
    })
}

fn check() -> &'static HttpCheck {
    static CHECK: OnceLock<HttpCheck> = OnceLock::new();
    CHECK.get_or_init(|| {
        build(&format!(
            r#"url: "http://127.0.0.1:{}/update?secret={SECRET}&lang=fr"
headers: {{ Authorization: "Bearer {TOKEN}" }}
max_body_bytes: 2048
expect:
  status: [200, 204]
  headers:
    - {{ name: Content-Type, matches: "^application/json" }}
    - {{ name: Cache-Control, not_matches: "(?i)max-age" }}
    - {{ name: X-Debug-Token, absent: true }}
    - {{ name: X-Frame-Options, equals: DENY }}
  body_matches: "(?s)ok.*done"
  body_not_matches: "(?i)exception"
  body_starts_with: "{{"
  json:
    - {{ pointer: /status, equals: ok }}
    - {{ pointer: /checks/0/ok }}
"#,
            server()
        ))
    })
}

fuzz_target!(|data: &[u8]| {
    let check = check();
    *ANSWER.lock().unwrap() = data.to_vec();
    let o = rt().block_on(check.run(&ctx()));
    assert!(!o.message.is_empty());
    for text in std::iter::once(&o.message).chain(&o.observations) {
        let shown = healthprobe::redact::redact(text);
        assert!(!shown.contains(SECRET) && !shown.contains(TOKEN), "{shown}");
    }
});
