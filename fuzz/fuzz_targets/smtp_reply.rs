//! SMTP reply parsing: lines of any bytes fed to the reply parser as the
//! session reads them, and what the check derives from complete replies.
#![no_main]

use healthprobe::checks::smtp::{Extensions, ReplyParser};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parser = ReplyParser::default();
    for line in data.split_inclusive(|b| *b == b'\n') {
        match parser.push(line) {
            Ok(Some(reply)) => {
                assert!((200..600).contains(&reply.code));
                assert!(!reply.lines.is_empty());
                let _ = reply.text();
                let _ = reply.first_line();
                let ext = Extensions::parse(&reply);
                let _ = ext.has("STARTTLS");
                let _ = ext.auth_mechanisms();
                let _ = ext.list();
            }
            Ok(None) => {}
            Err(m) => {
                assert!(m.len() < 1024, "an error message of {} bytes", m.len());
                parser = ReplyParser::default();
            }
        }
    }
});
