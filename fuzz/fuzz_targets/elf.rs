//! ELF reading in the `binary` kind: any bytes as the binary, inspected the
//! way a check does (header, dynamic section, needed libraries resolved
//! through the real ld.so.cache). No smoke run: nothing is executed.
#![no_main]

use std::os::unix::fs::PermissionsExt;

use healthprobe::checks::Check;
use healthprobe::checks::binary::BinaryCheck;
use healthprobe_fuzz::{build, ctx, rt, scratch};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = scratch().join("binary");
    std::fs::write(&path, data).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let check: BinaryCheck = build(&format!(
        "path: {}\nexpect: {{ libraries_resolve: true }}\n",
        path.display()
    ));
    let outcome = rt().block_on(check.run(&ctx()));
    assert!(!outcome.message.is_empty());
    // The kind runs its work on the blocking pool, which turns a panic into
    // an internal_error outcome: that is a crash here.
    healthprobe_fuzz::no_crash(&outcome);
});
