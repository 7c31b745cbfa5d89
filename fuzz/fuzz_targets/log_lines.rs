//! Log following and line matching in the `log` kind: the input is written
//! as a log file in two parts (a partial last line, then the rest), with
//! small read (4 KiB) and line (64 B) limits so that cutting and skipping
//! are exercised.
#![no_main]

use healthprobe::checks::Check;
use healthprobe::checks::log::LogCheck;
use healthprobe_fuzz::{build, ctx, rt, scratch};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = scratch().join("app.log");
    let _ = std::fs::remove_file(&path);
    let check: LogCheck = build(&format!(
        "path: {}\nmissing_ok: true\nmax_read_bytes: 4096\nmax_line_bytes: 64\nsignatures:\n  - {{ name: signal_5, regex: 'signal \"?5\"?' }}\n  - {{ name: packet, regex: '(?i)max_allowed_packet', max_new_matches: 2 }}\n  - {{ name: any_error, regex: '^\\[[^]]*\\] \\w+\\.ERROR' }}\n",
        path.display()
    ));
    rt().block_on(async {
        // Missing at first: a file that appears later is read whole.
        let _ = check.run(&ctx()).await;
        let cut = data.len() / 2;
        std::fs::write(&path, &data[..cut]).unwrap();
        let first = check.run(&ctx()).await;
        assert!(!first.message.is_empty());
        // The kind runs its work on the blocking pool, which turns a panic into
        // an internal_error outcome: that is a crash here.
        healthprobe_fuzz::no_crash(&first);
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        std::io::Write::write_all(&mut f, &data[cut..]).unwrap();
        healthprobe_fuzz::no_crash(&check.run(&ctx()).await);
        // Truncated (copytruncate): read again from the start.
        std::fs::write(&path, &data[..data.len() / 3]).unwrap();
        healthprobe_fuzz::no_crash(&check.run(&ctx()).await);
    });
});
