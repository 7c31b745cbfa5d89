//! The status page at `/`: every enabled pack and its checks, failing packs
//! and failing checks first, each failure with its reason, message, fix, last
//! run and a link to the guide section; the checks that do not apply here
//! listed with why. Plain server-rendered HTML and CSS, no script: it works
//! wherever a browser does, refreshes itself every 30 seconds (`<meta
//! http-equiv=refresh>`), fits a phone's width (long paths and URLs wrap),
//! and follows the system's dark mode.

use std::fmt::Write;

use crate::view::{CheckView, PackView, State, by_pack};

/// How often the page reloads itself, in seconds.
pub const REFRESH_SECONDS: u32 = 30;

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// What the page says about where and when it was made.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// The machine's host name (shown in the heading and the title).
    pub host: String,
    /// Now, in Unix seconds: "last run 12 s ago" is computed from it.
    pub now: f64,
}

impl Context {
    /// This machine's name and the current time.
    pub fn here() -> Context {
        Context {
            host: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            now: crate::store::unix_seconds(std::time::SystemTime::now()),
        }
    }
}

const STYLE: &str = r#"
:root{--bg:#f4f5f7;--card:#fff;--fg:#1d232b;--muted:#5f6b7a;--line:#d8dde3;--bad:#c5221f;--bad-bg:#fde8e7;--good:#137333;--good-bg:#e6f4ea;--warn:#b06000;--fix:#fff6dd;--link:#1a56c4}
@media (prefers-color-scheme:dark){:root{--bg:#15181c;--card:#1f2329;--fg:#e6e8eb;--muted:#9aa4b1;--line:#343a42;--bad:#ff8a80;--bad-bg:#3b1f1f;--good:#81c995;--good-bg:#1e3325;--warn:#fdd663;--fix:#2f2a1a;--link:#8ab4f8}}
*{box-sizing:border-box}
body{font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;padding:.8rem;max-width:62rem;background:var(--bg);color:var(--fg);overflow-wrap:anywhere}
a{color:var(--link)}
header h1{font-size:1.35rem;margin:.2rem 0 .5rem}
header h1 small{font-weight:400;color:var(--muted);font-size:.95rem}
.summary{padding:.6rem .9rem;border-radius:.5rem;font-weight:600;margin:.3rem 0}
.summary.bad{background:var(--bad-bg);color:var(--bad)}
.summary.good{background:var(--good-bg);color:var(--good)}
.summary.wait{background:var(--card);color:var(--warn);border:1px solid var(--line)}
.updated{color:var(--muted);font-size:.85rem;margin:.3rem 0 1rem}
section.pack{margin:1.2rem 0}
section.pack>h2{font-size:1.15rem;margin:0 0 .15rem}
section.pack>h2 small{font-weight:400;color:var(--muted);font-size:.85rem}
.packmeta{color:var(--muted);font-size:.85rem;margin:0 0 .5rem}
.check{background:var(--card);border:1px solid var(--line);border-left:.35rem solid var(--muted);border-radius:.4rem;padding:.55rem .8rem;margin:.45rem 0}
.check.failing{border-left-color:var(--bad)}
.check.passing{border-left-color:var(--good)}
.check.pending{border-left-color:var(--warn)}
.head{display:flex;flex-wrap:wrap;gap:.2rem .5rem;align-items:baseline}
.state{font-weight:700;font-size:.8rem;letter-spacing:.04em}
.failing .state{color:var(--bad)} .passing .state{color:var(--good)} .pending .state{color:var(--warn)}
.title{font-weight:600}
.badge{font-size:.72rem;padding:0 .45rem;border-radius:.7rem;border:1px solid var(--line);color:var(--muted)}
.badge.critical{border-color:var(--bad);color:var(--bad)}
.meta{color:var(--muted);font-size:.82rem;margin-top:.15rem}
.meta code{font-size:.8rem}
.msg{margin:.35rem 0;white-space:pre-wrap}
.check.passing{padding:.35rem .8rem;margin:.3rem 0}
.passing .title{font-weight:500}
.passing .msg{color:var(--muted);font-size:.85rem;margin:.1rem 0 0}
.fix{background:var(--fix);padding:.45rem .65rem;border-radius:.35rem;font-size:.92rem;margin:.35rem 0}
.guide{font-size:.85rem}
details.off{color:var(--muted);font-size:.85rem;margin:.4rem 0}
details.off li{margin:.15rem 0}
footer{color:var(--muted);font-size:.82rem;margin:1.5rem 0 .5rem}
"#;

/// Renders the page.
pub fn render(packs: &[PackView], views: &[CheckView], ctx: &Context) -> String {
    let failing: Vec<&CheckView> = views.iter().filter(|v| v.state == State::Failing).collect();
    let on = if ctx.host.is_empty() {
        String::new()
    } else {
        format!(" on {}", esc(&ctx.host))
    };
    let title = if failing.is_empty() && views.iter().any(|v| v.state == State::Pending) {
        format!("Starting{on} - healthprobe")
    } else if failing.is_empty() {
        format!("All passing{on} - healthprobe")
    } else {
        format!("{} failing{on} - healthprobe", failing.len())
    };
    let mut h = String::with_capacity(8192 + views.len() * 900);
    let _ = write!(
        h,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><meta http-equiv="refresh" content="{REFRESH_SECONDS}"><meta name="color-scheme" content="light dark"><title>{title}</title><style>{STYLE}</style></head><body><header><h1>healthprobe<small>{on}</small></h1>"#,
    );
    let pending = views.iter().filter(|v| v.state == State::Pending).count();
    if failing.is_empty() && pending > 0 {
        let _ = write!(
            h,
            r#"<div class="summary wait" id="summary">{} of {} checks passing, {pending} not run yet</div>"#,
            views.len() - pending,
            views.len()
        );
    } else if failing.is_empty() {
        let _ = write!(
            h,
            r#"<div class="summary good" id="summary">All {} checks passing</div>"#,
            views.len()
        );
    } else {
        let critical = failing.iter().filter(|v| v.severity == "critical").count();
        let detail = if critical > 0 {
            format!(" ({critical} critical)")
        } else {
            String::new()
        };
        let _ = write!(
            h,
            r#"<div class="summary bad" id="summary">{} of {} checks failing{detail}</div>"#,
            failing.len(),
            views.len()
        );
    }
    let _ = write!(
        h,
        r#"<p class="updated">Updated <time datetime="{}">{}</time>; this page reloads every {REFRESH_SECONDS} s.</p></header><main>"#,
        rfc3339(ctx.now),
        rfc3339(ctx.now)
    );
    for (pack, checks) in by_pack(packs, views) {
        render_pack(&mut h, &pack, &checks, ctx);
    }
    h.push_str(r#"</main><footer><a href="/metrics">/metrics</a> &middot; <a href="/api/v1/checks">/api/v1/checks</a> &middot; <code>healthprobe check</code> runs the same checks from a terminal</footer></body></html>"#);
    h
}

fn render_pack(h: &mut String, pack: &PackView, checks: &[&CheckView], ctx: &Context) {
    let n_fail = checks.iter().filter(|c| c.state == State::Failing).count();
    let n_pass = checks.iter().filter(|c| c.state == State::Passing).count();
    let n_pending = checks.len() - n_fail - n_pass;
    let class = if n_fail > 0 { "failing" } else { "passing" };
    let _ = write!(
        h,
        r#"<section class="pack {class}" id="pack-{id}"><h2>{title} <small>{name}</small></h2><p class="packmeta">"#,
        id = esc(&pack.name),
        title = esc(pack.display_title()),
        name = esc(&pack.name),
    );
    let mut parts = Vec::new();
    if n_fail > 0 {
        parts.push(format!("{n_fail} failing"));
    }
    parts.push(format!("{n_pass} passing"));
    if n_pending > 0 {
        parts.push(format!("{n_pending} not run yet"));
    }
    if !pack.off.is_empty() {
        parts.push(format!("{} off", pack.off.len()));
    }
    h.push_str(&parts.join(" &middot; "));
    if !pack.guide.is_empty() {
        let _ = write!(
            h,
            r#" &middot; <a href="{}">troubleshooting guide</a>"#,
            esc(&pack.guide)
        );
    }
    h.push_str("</p>");
    for c in checks {
        render_check(h, c, ctx);
    }
    if !pack.off.is_empty() {
        let _ = write!(
            h,
            r#"<details class="off"><summary>{} not applicable here</summary><ul>"#,
            if pack.off.len() == 1 {
                "1 check".to_string()
            } else {
                format!("{} checks", pack.off.len())
            }
        );
        for (name, why) in &pack.off {
            let _ = write!(h, "<li><code>{}</code>: {}</li>", esc(name), esc(why));
        }
        h.push_str("</ul></details>");
    }
    h.push_str("</section>");
}

fn render_check(h: &mut String, v: &CheckView, ctx: &Context) {
    let (class, mark) = match v.state {
        State::Failing => ("failing", "FAIL"),
        State::Passing => ("passing", "OK"),
        State::Pending => ("pending", "NOT RUN YET"),
    };
    // Failing checks carry their severity; passing ones stay one short block.
    let badge = if v.state == State::Passing {
        String::new()
    } else {
        format!(r#"<span class="badge {0}">{0}</span>"#, v.severity)
    };
    let _ = write!(
        h,
        r#"<article class="check {class}" id="{id}"><div class="head"><span class="state">{mark}</span><span class="title">{title}</span>{badge}</div><div class="meta"><code>{id}</code> &middot; {kind}"#,
        id = esc(&v.id),
        title = esc(&v.title),
        kind = v.kind,
    );
    if let Some(r) = v.reason.filter(|_| v.state == State::Failing) {
        let _ = write!(h, r#" &middot; reason: <span class="reason">{r}</span>"#);
    }
    if let Some(t) = v.last_run_timestamp {
        let _ = write!(
            h,
            r#" &middot; last run <time datetime="{}" title="{}">{}</time>"#,
            rfc3339(t),
            rfc3339(t),
            ago(ctx.now - t)
        );
    }
    h.push_str("</div>");
    if let Some(m) = &v.message {
        let _ = write!(h, r#"<p class="msg">{}</p>"#, esc(m));
    }
    if v.state == State::Failing {
        if !v.remediation.is_empty() {
            let _ = write!(
                h,
                r#"<div class="fix"><strong>Fix:</strong> {}</div>"#,
                esc(v.remediation.trim())
            );
        }
        if !v.doc.is_empty() {
            let _ = write!(
                h,
                r#"<div class="guide"><a href="{}">What the guide says</a></div>"#,
                esc(&v.doc)
            );
        }
    }
    h.push_str("</article>");
}

fn rfc3339(unix: f64) -> String {
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(unix.max(0.0)),
    )
    .to_string()
}

/// "just now", "12 s ago", "4 min ago", "3 h ago", "2 days ago".
fn ago(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..=1 => "just now".into(),
        2..=119 => format!("{s} s ago"),
        120..=7199 => format!("{} min ago", s / 60),
        7200..=172_799 => format!("{} h ago", s / 3600),
        _ => format!("{} days ago", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(pack: &str, name: &str, state: State, last: f64) -> CheckView {
        CheckView {
            kind: "http",
            title: format!("Title of {name} <b>"),
            reason: (state == State::Failing).then_some("assertion_failed"),
            message: Some(format!("message of {name} & co")),
            remediation: format!("Run `fix {name}`"),
            last_run_timestamp: Some(last),
            ..CheckView::sample(pack, name, "critical", state)
        }
    }

    #[test]
    fn packs_and_failures_first_escaped_with_fix_guide_and_age() {
        let packs = vec![
            PackView {
                name: "aaa".into(),
                title: "First".into(),
                ..Default::default()
            },
            PackView {
                name: "zzz".into(),
                title: "Last".into(),
                guide: "https://guide.example/".into(),
                off: vec![("pdf_body".into(), "enabled_if: the value is empty".into())],
            },
        ];
        let now = 1_700_000_000.0;
        let views = vec![
            view("aaa", "fine", State::Passing, now - 5.0),
            view("zzz", "ok", State::Passing, now - 300.0),
            view("zzz", "broken", State::Failing, now - 12.0),
        ];
        let page = render(
            &packs,
            &views,
            &Context {
                host: "web-1".into(),
                now,
            },
        );
        let at = |s: &str| {
            page.find(s)
                .unwrap_or_else(|| panic!("{s:?} not in the page"))
        };
        assert!(
            at(r#"id="pack-zzz""#) < at(r#"id="pack-aaa""#),
            "failing pack first"
        );
        assert!(
            at(r#"id="zzz/broken""#) < at(r#"id="zzz/ok""#),
            "failing check first"
        );
        assert!(page.contains("<title>1 failing on web-1 - healthprobe</title>"));
        assert!(page.contains("1 of 3 checks failing (1 critical)"));
        assert!(page.contains("Title of broken &lt;b&gt;"));
        assert!(page.contains("message of broken &amp; co"));
        assert!(page.contains("<strong>Fix:</strong> Run `fix broken`"));
        assert!(
            page.contains(r#"<a href="https://guide.example/#broken">What the guide says</a>"#)
        );
        assert!(page.contains(r#"reason: <span class="reason">assertion_failed</span>"#));
        assert!(page.contains(">12 s ago</time>"));
        assert!(page.contains(">5 min ago</time>"));
        assert!(page.contains(r#"<a href="https://guide.example/">troubleshooting guide</a>"#));
        assert!(page.contains("1 failing &middot; 1 passing &middot; 1 off"));
        assert!(page.contains("<li><code>pdf_body</code>: enabled_if: the value is empty</li>"));
        assert!(page.contains(r#"<meta http-equiv="refresh" content="30">"#));
        assert!(page.contains(r#"name="viewport""#));
        assert!(!page.contains("Run `fix ok`"), "no fix for a passing check");

        let mut waiting = views[..2].to_vec();
        waiting[1].state = State::Pending;
        let page = render(&packs, &waiting, &Context::default());
        assert!(
            page.contains("<title>Starting - healthprobe</title>"),
            "{page}"
        );
        assert!(
            page.contains("1 of 2 checks passing, 1 not run yet"),
            "{page}"
        );
    }

    #[test]
    fn ages() {
        assert_eq!(ago(0.4), "just now");
        assert_eq!(ago(59.0), "59 s ago");
        assert_eq!(ago(125.0), "2 min ago");
        assert_eq!(ago(7300.0), "2 h ago");
        assert_eq!(ago(3.0 * 86_400.0), "3 days ago");
        assert_eq!(ago(-3.0), "just now");
    }
}
