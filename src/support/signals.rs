//! Signal numbers as people read them: `signal 5 (SIGTRAP)`. A process killed
//! by a signal is a common symptom (the Invoice Ninja guide's "signal 5" when
//! the queue runs Chrome as the wrong user), and nobody remembers the numbers.

/// The name of a Linux signal (`SIGTRAP` for 5), when it has one.
pub fn name(signal: i32) -> Option<&'static str> {
    const NAMES: [&str; 31] = [
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    usize::try_from(signal)
        .ok()
        .and_then(|n| n.checked_sub(1))
        .and_then(|i| NAMES.get(i).copied())
}

/// `signal 5 (SIGTRAP)`, or `signal 40` for a number without a name.
pub fn describe(signal: i32) -> String {
    match name(signal) {
        Some(n) => format!("signal {signal} ({n})"),
        None => format!("signal {signal}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_c_constants() {
        assert_eq!(name(libc::SIGTRAP), Some("SIGTRAP"));
        assert_eq!(name(libc::SIGKILL), Some("SIGKILL"));
        assert_eq!(name(libc::SIGSEGV), Some("SIGSEGV"));
        assert_eq!(name(libc::SIGSYS), Some("SIGSYS"));
        assert_eq!(describe(5), "signal 5 (SIGTRAP)");
        assert_eq!(describe(40), "signal 40");
        assert_eq!(name(0), None);
    }
}
