//! The report of `healthprobe check`: grouped by pack, failures first with
//! their fix and the guide section, the checks that do not apply named, and a
//! summary that counts failures by severity. Colour only on a terminal, never
//! with `NO_COLOR` (any non-empty value) or `TERM=dumb`.

use std::io::{IsTerminal, Write};

use crate::view::{CheckView, PackView, State, by_pack};

/// Terminal styling, off when `NO_COLOR` is set or output is not a terminal.
#[derive(Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    /// Decides from the environment and whether stdout is a terminal.
    pub fn detect() -> Style {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
        Style {
            color: !no_color && !dumb && std::io::stdout().is_terminal(),
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

/// Writes the text report. `packs` are the enabled packs shown (their
/// titles, guides and checks switched off); `views` their checks' results.
pub fn text(
    views: &[CheckView],
    packs: &[PackView],
    style: Style,
    verbose: bool,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    for (pack, checks) in by_pack(packs, views) {
        let title = if pack.title.is_empty() {
            String::new()
        } else {
            format!(" - {}", pack.title)
        };
        writeln!(
            out,
            "{}",
            style.paint("1", &format!("{}{title}", pack.name))
        )?;
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
        if !pack.off.is_empty() {
            if verbose {
                for (name, why) in &pack.off {
                    writeln!(out, "  {}   {name:<28} {why}", style.paint("2", "off"))?;
                }
            } else {
                let names: Vec<&str> = pack.off.iter().map(|(n, _)| n.as_str()).collect();
                writeln!(
                    out,
                    "  {}   {} not applicable here: {} (`healthprobe list --pack {}` says why)",
                    style.paint("2", "off"),
                    plural(names.len(), "check"),
                    names.join(", "),
                    pack.name
                )?;
            }
        }
        writeln!(out)?;
    }
    writeln!(out, "{}", summary(views, style))
}

/// "All 8 checks passed." or "3 of 8 checks failed (2 critical, 1 warning)."
fn summary(views: &[CheckView], style: Style) -> String {
    let failing: Vec<&CheckView> = views.iter().filter(|v| v.state == State::Failing).collect();
    if failing.is_empty() {
        return style.paint("1;32", &format!("All {} checks passed.", views.len()));
    }
    let by_severity: Vec<String> = ["critical", "warning", "info"]
        .iter()
        .filter_map(|sev| {
            let n = failing.iter().filter(|v| v.severity == *sev).count();
            (n > 0).then(|| format!("{n} {sev}"))
        })
        .collect();
    style.paint(
        "1;31",
        &format!(
            "{} of {} checks failed ({}).",
            failing.len(),
            views.len(),
            by_severity.join(", ")
        ),
    )
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn view(pack: &str, name: &str, severity: &'static str, state: State) -> CheckView {
        CheckView::sample(pack, name, severity, state)
    }

    fn render(views: &[CheckView], packs: &[PackView], verbose: bool) -> String {
        let mut out = Vec::new();
        text(views, packs, Style { color: false }, verbose, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn failing_packs_and_checks_first_with_fix_guide_and_off_checks() {
        let packs = vec![
            PackView {
                name: "alpha".into(),
                title: "Alpha".into(),
                ..Default::default()
            },
            PackView {
                name: "beta".into(),
                title: "Beta app".into(),
                guide: "https://guide.example/".into(),
                off: vec![("pdf".into(), "enabled_if: the value is empty".into())],
            },
        ];
        let views = vec![
            view("alpha", "a_ok", "critical", State::Passing),
            view("beta", "b_ok", "critical", State::Passing),
            view("beta", "b_warn", "warning", State::Failing),
            view("beta", "b_crit", "critical", State::Failing),
        ];
        let t = render(&views, &packs, false);
        let at = |s: &str| t.find(s).unwrap_or_else(|| panic!("{s:?} not in:\n{t}"));
        assert!(at("beta - Beta app") < at("alpha - Alpha"), "{t}");
        assert!(at("FAIL  b_crit") < at("FAIL  b_warn"), "{t}");
        assert!(at("FAIL  b_warn") < at("ok    b_ok"), "{t}");
        assert!(t.contains("        not_found: b_crit message\n        fix: fix b_crit\n        guide: https://guide.example/#b_crit\n"), "{t}");
        assert!(
            t.contains(
                "  off   1 check not applicable here: pdf (`healthprobe list --pack beta` says why)"
            ),
            "{t}"
        );
        assert!(
            t.ends_with("2 of 4 checks failed (1 critical, 1 warning).\n"),
            "{t}"
        );
        assert!(
            !t.contains("a_ok message"),
            "messages of passing checks only with -v"
        );

        let v = render(&views, &packs, true);
        assert!(v.contains("a_ok message"), "{v}");
        assert!(
            v.contains("  off   pdf                          enabled_if: the value is empty"),
            "{v}"
        );

        let all_ok = render(&views[..2], &packs, false);
        assert!(all_ok.ends_with("All 2 checks passed.\n"), "{all_ok}");
    }

    #[test]
    fn colour_only_when_asked() {
        let packs = vec![PackView {
            name: "p".into(),
            ..Default::default()
        }];
        let views = vec![view("p", "x", "warning", State::Failing)];
        let mut out = Vec::new();
        text(&views, &packs, Style { color: true }, false, &mut out).unwrap();
        assert!(
            String::from_utf8(out)
                .unwrap()
                .contains("\x1b[1;31mFAIL\x1b[0m")
        );
        assert!(!render(&views, &packs, false).contains('\x1b'));
    }
}
