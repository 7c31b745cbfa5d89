//! The status page at `/` as a person sees it: the real agent serving it,
//! loaded in headless Chromium (Debian's `chromium`) at a phone's size
//! (390x844) and a desktop's (1280x900). `--dump-dom` gives what the browser
//! made of the page; the layout is measured by loading the page's exact HTML
//! in an iframe of that width and reading its `scrollWidth` (nothing may
//! stick out sideways on a phone); screenshots are taken at both sizes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::pack_util::write;
use crate::support::agent::AgentProcess;
use crate::support::process::output_with_timeout;
use crate::support::{http, require_binary, tempdir};

/// Headless Chromium with the flags that keep it off the network and away
/// from any profile; returns stdout (panics with stderr on failure).
pub fn chromium(args: &[&str]) -> String {
    let profile = tempdir("chromium");
    let out = output_with_timeout(
        Command::new(require_binary("chromium"))
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(args),
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("chromium {args:?}: {e}"));
    assert!(
        out.status.success(),
        "chromium {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A screenshot of `url` at `width`x`height` into `path`; returns the PNG's
/// size as read from its header.
pub fn screenshot(url: &str, width: u32, height: u32, path: &Path) -> (u32, u32) {
    chromium(&[
        &format!("--screenshot={}", path.display()),
        &format!("--window-size={width},{height}"),
        url,
    ]);
    let png = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&png[1..4], b"PNG", "{} is not a PNG", path.display());
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&png[16..20]), be(&png[20..24]))
}

/// The DOM Chromium builds from `url` (the page has no script, so this is
/// the served HTML as parsed).
pub fn dump_dom(url: &str, width: u32, height: u32) -> String {
    chromium(&[
        "--dump-dom",
        &format!("--window-size={width},{height}"),
        url,
    ])
}

/// How wide `html` lays out in a `width` px wide viewport: Chromium loads it
/// as the `srcdoc` of an iframe that wide (same origin, so the wrapper can
/// read the iframe's `scrollWidth`).
pub fn laid_out_width(html: &str, width: u32, dir: &Path) -> u32 {
    let wrapper = dir.join(format!("measure-{width}.html"));
    write(
        &wrapper,
        &format!(
            r#"<!doctype html><html><body style="margin:0"><iframe id="f" style="border:0;width:{width}px;height:800px" srcdoc="{}"></iframe>
<script>
window.onload = function () {{
  var d = document.getElementById('f').contentDocument.documentElement;
  var out = document.createElement('pre');
  out.id = 'measure';
  out.textContent = 'scrollWidth=' + d.scrollWidth + ';';
  document.body.appendChild(out);
}};
</script></body></html>"#,
            healthprobe::status_page::esc(html)
        ),
    );
    let dom = chromium(&[
        "--dump-dom",
        "--virtual-time-budget=5000",
        &format!("file://{}", wrapper.display()),
    ]);
    let marker = r#"<pre id="measure">scrollWidth="#;
    let at = dom
        .find(marker)
        .unwrap_or_else(|| panic!("no measurement in:\n{dom}"));
    dom[at + marker.len()..]
        .split(';')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("bad measurement in:\n{dom}"))
}

/// Waits until every check of the agent has run once.
pub fn wait_all_ran(agent: &AgentProcess) {
    for _ in 0..200 {
        let doc = agent.get("/api/v1/checks").json();
        let checks = doc["checks"].as_array().cloned().unwrap_or_default();
        if !checks.is_empty() && checks.iter().all(|c| c["state"] != "pending") {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the checks did not all run:\n{}", agent.log_tail(30));
}

const PACKS: &str = r##"pack: demo
title: Demo application
guide: https://guide.example/troubleshooting
defaults: { interval: 30s, timeout: 5s }
checks:
  - name: storage_writable
    title: storage/ is writable by the web user
    kind: file
    severity: critical
    file: { path: /nonexistent/srv/a-rather-long-application-directory-name/storage/framework/cache/data }
    remediation: From the app's directory, `sudo chown -R www-data:www-data storage/` and `sudo find ./ -type d -exec chmod 755 {} \;`.
    doc: "#flock-attend-en-parametre-1-une-ressource-bool-donne"
  - name: root_exists
    title: The root directory exists
    kind: file
    file: { path: / }
  - name: pdf_headers
    title: PDFs are served with Cache-Control no-store
    kind: file
    enabled_if: { value: "", not_equals: "" }
    file: { path: / }
"##;

const OTHER: &str = r#"pack: other
title: Another app
checks:
  - name: tmp_exists
    title: /tmp exists
    kind: file
    file: { path: /tmp }
"#;

#[test]
fn status_page_in_headless_chromium_on_a_phone_and_a_desktop() {
    let dir = tempdir("status-page");
    write(&dir.path().join("packs/demo.yaml"), PACKS);
    write(&dir.path().join("packs/other.yaml"), OTHER);
    let packs = dir.path().join("packs");
    let agent = AgentProcess::start(&["--checks", packs.to_str().unwrap()]);
    wait_all_ran(&agent);
    let url = format!("{}/", agent.url());

    for (w, h) in [(390, 844), (1280, 900)] {
        let dom = dump_dom(&url, w, h);
        let at = |s: &str| {
            dom.find(s)
                .unwrap_or_else(|| panic!("{s:?} is not in the page at {w}x{h}:\n{dom}"))
        };
        // Every pack and check; the failing pack and check first.
        assert!(at(r#"id="pack-demo""#) < at(r#"id="pack-other""#));
        assert!(at(r#"id="demo/storage_writable""#) < at(r#"id="demo/root_exists""#));
        at(r#"id="other/tmp_exists""#);
        // What is wrong, why, how to fix it, when, and where the guide says it.
        at("1 of 3 checks failing (1 critical)");
        at(r#"reason: <span class="reason">not_found</span>"#);
        at("a-rather-long-application-directory-name/storage/framework/cache/data does not exist");
        at(
            "<strong>Fix:</strong> From the app's directory, `sudo chown -R www-data:www-data storage/`",
        );
        at(
            r##"<a href="https://guide.example/troubleshooting#flock-attend-en-parametre-1-une-ressource-bool-donne">What the guide says</a>"##,
        );
        at(r#"<a href="https://guide.example/troubleshooting">troubleshooting guide</a>"#);
        at("last run <time");
        at("<li><code>pdf_headers</code>: enabled_if:");
        // Readable on a phone, refreshing itself.
        at(r#"<meta name="viewport" content="width=device-width,initial-scale=1">"#);
        at(r#"<meta http-equiv="refresh" content="30">"#);
    }

    // Nothing sticks out sideways on a phone: the long path wraps. (The
    // measurement itself is checked on a page that does stick out.)
    let html = http::get(&url).unwrap().text();
    assert_eq!(laid_out_width(&html, 390, dir.path()), 390);
    assert!(
        laid_out_width(r#"<div style="width:600px">wide</div>"#, 390, dir.path()) >= 600,
        "the measurement sees overflow"
    );

    let phone = dir.path().join("phone.png");
    assert_eq!(screenshot(&url, 390, 844, &phone), (390, 844));
    let desktop = dir.path().join("desktop.png");
    assert_eq!(screenshot(&url, 1280, 900, &desktop), (1280, 900));
}

/// Where the docs' screenshots go (written when `HP_UPDATE_DOCS` is set).
pub fn docs_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("HP_UPDATE_DOCS").map(|_| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("docs")
            .join(name)
    })
}
