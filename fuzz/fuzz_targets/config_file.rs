//! The `config` kind's readers: any bytes as a `.env`, TOML or JSON file
//! (picked by the first byte), with assertions on keys, secret ones included.
#![no_main]

use healthprobe::checks::Check;
use healthprobe::checks::config_file::ConfigCheck;
use healthprobe_fuzz::{build, ctx, rt, scratch};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let (name, keys) = match first % 3 {
        0 => ("app.env", ["UPDATE_SECRET", "MAIL_FROM_ADDRESS", "APP_URL"]),
        1 => ("config.toml", ["core.file_store", "/core/file_store_path", "llm.api_key"]),
        _ => ("settings.json", ["/servers/0/url", "a.b", "/api_key"]),
    };
    let path = scratch().join(name);
    std::fs::write(&path, rest).unwrap();
    let check: ConfigCheck = build(&format!(
        "path: {}\nassertions:\n  - {{ key: \"{}\", not_empty: true }}\n  - {{ key: \"{}\", equals: local }}\n  - {{ key: \"{}\", matches: '^https?://' }}\n",
        path.display(),
        keys[0],
        keys[1],
        keys[2]
    ));
    let o = rt().block_on(check.run(&ctx()));
    assert!(!o.message.is_empty());
    // The kind runs its work on the blocking pool, which turns a panic into
    // an internal_error outcome: that is a crash here.
    healthprobe_fuzz::no_crash(&o);
});
