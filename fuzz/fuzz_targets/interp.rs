//! `${VAR}` interpolation: any text, never a panic; text without `$` comes
//! back as it was; an error never repeats the text (it may be a password).
#![no_main]

use std::collections::BTreeMap;

use healthprobe::config::interp::{Scope, expand};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let vars = BTreeMap::from([
        ("root".to_string(), "/srv/app".to_string()),
        ("empty".to_string(), String::new()),
        ("nested".to_string(), "${root}".to_string()),
    ]);
    let env = BTreeMap::from([("DB_PASSWORD".to_string(), "pw".to_string())]);
    let penv = |k: &str| (k == "HOME").then(|| "/root".to_string());
    for env_file in [Some(&env), None] {
        let scope = Scope {
            vars: &vars,
            env_file,
            process_env: &penv,
        };
        match expand(text, &scope) {
            Ok(out) => {
                if !text.contains('$') {
                    assert_eq!(out, text);
                }
            }
            Err(e) => {
                if text.len() >= 12 && !text.starts_with("${") {
                    assert!(!e.contains(text), "the error repeats the text: {e}");
                }
            }
        }
    }
});
