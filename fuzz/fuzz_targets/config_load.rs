//! The whole loader on one pack file (as `healthprobe validate --checks DIR`
//! runs it): parse, header, every check deserialized and prepared. Any
//! bytes, never a panic; every error names the file and a position in it.
#![no_main]

use healthprobe::config::{Options, load_with_env};
use healthprobe_fuzz::{rt, scratch};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let dir = scratch().join("packs");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("fuzz.yaml");
    std::fs::write(&file, text).unwrap();
    let opts = Options {
        checks_dirs: vec![dir],
        no_builtin: true,
        ..Default::default()
    };
    let _guard = rt().enter();
    let env = |k: &str| (k == "HOME").then(|| "/root".to_string());
    if let Err(errors) = load_with_env(&opts, &env) {
        // YAML breaks lines at CR too (alone or in CRLF): count both.
        let lines = text.split(['\n', '\r']).count().max(1);
        for e in &errors.0 {
            if e.file == file.display().to_string()
                && let Some(pos) = e.pos
            {
                assert!(pos.line >= 1 && pos.line <= lines + 1, "{e}");
            }
        }
    }
});
