//! The web-config file (TLS and basic auth of the server). Any text, never
//! a panic; a value under `basic_auth_users` is never repeated in an error.
#![no_main]

use healthprobe::web_config::WebConfig;
use healthprobe_fuzz::scratch;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = scratch().join("web.yml");
    if let Err(errors) = WebConfig::parse(text, &path) {
        for e in &errors {
            assert!(e.pos.is_some() || e.file.ends_with("web.yml"), "{e}");
        }
    }
});
