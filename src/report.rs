//! The report of `healthprobe check`: grouped by pack, failures first with
//! their fix, colour only on a terminal and never with `NO_COLOR`.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};

use crate::view::{CheckView, State};

/// Terminal styling, off when `NO_COLOR` is set or output is not a terminal.
#[derive(Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    /// Decides from the environment and whether stdout is a terminal.
    pub fn detect() -> Style {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style {
            color: !no_color && std::io::stdout().is_terminal(),
        }
    }

    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
}

/// Writes the text report.
pub fn text(
    views: &[CheckView],
    pack_titles: &BTreeMap<String, String>,
    style: Style,
    verbose: bool,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let failing = views.iter().filter(|v| v.state == State::Failing).count();
    let mut packs: BTreeMap<&str, Vec<&CheckView>> = BTreeMap::new();
    for v in views {
        packs.entry(&v.pack).or_default().push(v);
    }
    let mut order: Vec<(&str, Vec<&CheckView>)> = packs.into_iter().collect();
    order.sort_by_key(|(name, checks)| {
        (
            !checks.iter().any(|c| c.state == State::Failing),
            name.to_string(),
        )
    });
    for (pack, mut checks) in order {
        checks.sort_by_key(|c| c.sort_key());
        let title = pack_titles
            .get(pack)
            .filter(|t| !t.is_empty())
            .map(|t| format!(" - {t}"))
            .unwrap_or_default();
        writeln!(out, "{}", style.paint("1", &format!("{pack}{title}")))?;
        for c in checks {
            let mark = match c.state {
                State::Passing => style.paint("32", "ok  "),
                State::Failing => style.paint("1;31", "FAIL"),
                State::Pending => style.paint("33", "...."),
            };
            writeln!(out, "  {mark}  {:<28} {} [{}]", c.name, c.title, c.severity)?;
            if c.state == State::Failing {
                let msg = c.message.as_deref().unwrap_or("");
                writeln!(
                    out,
                    "        {} {msg}",
                    style.paint("31", &format!("{}:", c.reason.unwrap_or("failed")))
                )?;
                if !c.remediation.is_empty() {
                    writeln!(
                        out,
                        "        {} {}",
                        style.paint("1", "fix:"),
                        c.remediation.trim()
                    )?;
                }
                if !c.doc.is_empty() {
                    writeln!(out, "        guide: {}", c.doc)?;
                }
            } else if verbose && let Some(m) = &c.message {
                writeln!(out, "        {m}")?;
            }
            if verbose {
                for o in &c.observations {
                    writeln!(out, "        | {o}")?;
                }
            }
        }
        writeln!(out)?;
    }
    let summary = if failing == 0 {
        style.paint("1;32", &format!("All {} checks passed.", views.len()))
    } else {
        style.paint(
            "1;31",
            &format!("{failing} of {} checks failed.", views.len()),
        )
    };
    writeln!(out, "{summary}")
}

/// Writes the JSON report.
pub fn json(views: &[CheckView], out: &mut dyn Write) -> std::io::Result<()> {
    let failing = views.iter().filter(|v| v.state == State::Failing).count();
    let doc = serde_json::json!({
        "passed": views.len() - failing,
        "failed": failing,
        "checks": views,
    });
    serde_json::to_writer_pretty(&mut *out, &doc)?;
    writeln!(out)
}
