//! The status page at `/`: every check, failing first, with what is wrong and
//! how to fix it. Plain server-rendered HTML with no script, readable on a
//! phone, refreshing itself every 30 seconds.

use std::fmt::Write;

use crate::view::{CheckView, State};

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

/// Renders the page; `views` must already be in display order.
pub fn render(views: &[CheckView]) -> String {
    let failing = views.iter().filter(|v| v.state == State::Failing).count();
    let mut h = String::with_capacity(4096 + views.len() * 600);
    let _ = write!(
        h,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><meta http-equiv="refresh" content="30"><title>{title}</title><style>
body{{font-family:system-ui,sans-serif;margin:0;padding:1rem;background:#f6f7f9;color:#1d232b;max-width:60rem;margin:auto}}
h1{{font-size:1.4rem}} .summary{{padding:.6rem 1rem;border-radius:.4rem;margin-bottom:1rem;font-weight:600}}
.bad{{background:#fde2e1;color:#8b1a16}} .good{{background:#dff5e3;color:#17612b}}
.check{{background:#fff;border-left:.35rem solid #9aa5b1;border-radius:.3rem;padding:.6rem .9rem;margin:.5rem 0;box-shadow:0 1px 2px #0001}}
.failing{{border-color:#d93025}} .passing{{border-color:#1e8e3e}} .pending{{border-color:#f9ab00}}
.meta{{color:#5f6b7a;font-size:.85rem}} .msg{{margin:.3rem 0}} .fix{{background:#fff8e1;padding:.4rem .6rem;border-radius:.3rem;font-size:.9rem}}
.badge{{display:inline-block;font-size:.75rem;padding:0 .4rem;border-radius:.6rem;background:#e8eaed;margin-left:.3rem}}
</style></head><body><h1>healthprobe</h1>"#,
        title = if failing > 0 {
            format!("{failing} failing - healthprobe")
        } else {
            "All passing - healthprobe".to_string()
        }
    );
    if failing > 0 {
        let _ = write!(
            h,
            r#"<div class="summary bad">{failing} of {} checks failing</div>"#,
            views.len()
        );
    } else {
        let _ = write!(
            h,
            r#"<div class="summary good">All {} checks passing</div>"#,
            views.len()
        );
    }
    for v in views {
        let state = match v.state {
            State::Failing => "failing",
            State::Passing => "passing",
            State::Pending => "pending",
        };
        let _ = write!(
            h,
            r#"<div class="check {state}" id="{id}"><div><strong>{title}</strong><span class="badge">{state}</span><span class="badge">{sev}</span></div><div class="meta">{id} &middot; {kind}"#,
            id = esc(&v.id),
            title = esc(&v.title),
            sev = v.severity,
            kind = v.kind,
        );
        if let Some(r) = v.reason.filter(|_| v.state == State::Failing) {
            let _ = write!(h, " &middot; reason: {r}");
        }
        if let Some(t) = v.last_run_timestamp {
            let _ = write!(
                h,
                r#" &middot; last run <time data-ts="{t:.0}">{}</time>"#,
                humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(t)
                )
            );
        }
        h.push_str("</div>");
        if let Some(m) = &v.message {
            let _ = write!(h, r#"<div class="msg">{}</div>"#, esc(m));
        }
        if v.state == State::Failing && !v.remediation.is_empty() {
            let _ = write!(
                h,
                r#"<div class="fix"><strong>Fix:</strong> {}</div>"#,
                esc(&v.remediation)
            );
        }
        if !v.doc.is_empty() {
            let _ = write!(
                h,
                r#"<div class="meta"><a href="{0}">Guide</a></div>"#,
                esc(&v.doc)
            );
        }
        h.push_str("</div>");
    }
    h.push_str(r#"<p class="meta"><a href="/metrics">/metrics</a> &middot; <a href="/api/v1/checks">/api/v1/checks</a></p></body></html>"#);
    h
}
