//! `${VAR}` interpolation: any text, never a panic; text without `$` comes
//! back as it was; an error never repeats the literal text around the
//! references (it may be a password), checked with a marker put in the text.
#![no_main]

use std::collections::BTreeMap;

use healthprobe::config::interp::{Scope, expand};
use libfuzzer_sys::fuzz_target;

/// The parts of `text` outside `${...}` references.
fn literals(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        out.push(&rest[..i]);
        match rest[i..].find('}') {
            Some(end) => rest = &rest[i + end + 1..],
            None => return out,
        }
    }
    out.push(rest);
    out
}

/// Stands for a password written around references.
const MARK: &str = "Pw0rdMark3r";

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    // The marker goes in at a place the input picks.
    let at = raw.bytes().next().map_or(0, usize::from) % (raw.len() + 1);
    let at = (0..=at).rev().find(|i| raw.is_char_boundary(*i)).unwrap_or(0);
    let owned = format!("{}{MARK}{}", &raw[..at], &raw[at..]);
    let text = owned.as_str();
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
                // Only a variable's name may be quoted (`${nope}` is not
                // defined), never the literal text around references: the
                // marker, when it stands outside a reference, must not show.
                let said = literals(&e).concat();
                if literals(text).iter().any(|l| l.contains(MARK)) {
                    assert!(!said.contains(MARK), "the error repeats literal text: {e}");
                }
            }
        }
    }
});
