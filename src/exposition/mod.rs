//! The Prometheus exposition at `/metrics`.
//!
//! Two halves. The agent's own metrics (build info, reload status, scheduler
//! lag histogram, `process_*`) live in a `prometheus` crate registry
//! ([`SelfMetrics`]). The check families are text each check writes when it
//! runs ([`series::SlotSeries`], kept in its [`Slot`](crate::store::Slot)),
//! and a scrape copies them into the page family by family
//! ([`checks::render`]): with 10,000 checks that is ~160,000 series, and
//! building the `prometheus` crate's protobuf-shaped `MetricFamily` values
//! for them, or even formatting them, on every scrape costs far more (see
//! BENCHMARKS.md). Both halves follow the same text format and
//! `promtool check metrics` checks the whole.

pub mod checks;
pub mod self_metrics;
pub mod series;

pub use self_metrics::SelfMetrics;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::store::Store;

/// Content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders the whole `/metrics` page.
pub fn render(store: &Store, self_metrics: &SelfMetrics) -> Vec<u8> {
    render_into(store, self_metrics, Vec::new())
}

/// Same, appended to `out` (a buffer kept from an earlier page).
pub fn render_into(store: &Store, self_metrics: &SelfMetrics, mut out: Vec<u8>) -> Vec<u8> {
    let mut own = Vec::new();
    self_metrics.render(&mut own);
    checks::render(&store.slots(), &mut out, own.len());
    out.extend_from_slice(&own);
    out
}

/// Renders the `/metrics` page for concurrent scrapes: one render at a
/// time, on the blocking pool, shared by every scrape that arrived before it
/// began.
///
/// With 10,000 checks a page is 13.5 MB. Rendered on the async workers once
/// per scrape, 20 concurrent scrapers kept every worker busy rendering and
/// starved the scheduler (the soak test saw 91% of the runs missed and a lag
/// over 10 s). Here the rendering takes at most one core, never an async
/// worker, and N scrapes cost one render. A scrape never gets a page
/// rendered before it arrived: it waits for the render in progress to end
/// and shares the next one.
#[derive(Default)]
pub struct SharedRender {
    /// Held while rendering: one render at a time, first come first served.
    turn: tokio::sync::Mutex<()>,
    /// Renders started so far.
    started: AtomicU64,
    /// The last page and its number, kept while scrapes wait for it.
    last: Mutex<Option<(u64, Bytes)>>,
    waiting: AtomicUsize,
    /// The buffer of a page every scrape is done with, for the next page.
    spare: Arc<Mutex<Vec<u8>>>,
}

impl SharedRender {
    /// The page: shared with a render that began after this call, or made
    /// now with `render` (on the blocking pool), which appends it to the
    /// empty buffer it is given.
    pub async fn page<F>(&self, render: F) -> Bytes
    where
        F: FnOnce(Vec<u8>) -> Vec<u8> + Send + 'static,
    {
        let arrived = self.started.load(Ordering::Acquire);
        self.waiting.fetch_add(1, Ordering::AcqRel);
        let _waiter = Waiter(self);
        let _turn = self.turn.lock().await;
        if let Some((n, page)) = &*self.last.lock().unwrap_or_else(|e| e.into_inner())
            && *n > arrived
        {
            return page.clone();
        }
        let n = self.started.fetch_add(1, Ordering::AcqRel) + 1;
        let buf = std::mem::take(&mut *self.spare.lock().unwrap_or_else(|e| e.into_inner()));
        let page = match tokio::task::spawn_blocking(move || render(buf)).await {
            Ok(page) => Bytes::from_owner(Page {
                buf: page,
                spare: self.spare.clone(),
            }),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some((n, page.clone()));
        page
    }
}

/// gzip at the fastest level, for scrapers that accept it (Prometheus does
/// by default): most of a page is the same label sets again and again,
/// which the fastest level already shrinks ~14 times (13.5 MB to 0.98 MB
/// with 10,000 http checks, in ~10 ms); higher levels cost several times
/// the CPU for a few percent more.
pub fn gzip(page: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(page.len() / 8),
        flate2::Compression::fast(),
    );
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(page);
    enc.finish().unwrap_or_default()
}

/// Whether an `Accept-Encoding` header value accepts gzip (`gzip` or `*`
/// listed without `q=0`).
pub fn accepts_gzip(accept_encoding: &str) -> bool {
    let mut verdict = None;
    for item in accept_encoding.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let refused = parts.any(|p| {
            let p = p.trim().to_ascii_lowercase();
            p.strip_prefix("q=")
                .is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q <= 0.0))
        });
        match coding.as_str() {
            "gzip" | "x-gzip" => return !refused,
            "*" => verdict = Some(!refused),
            _ => {}
        }
    }
    verdict.unwrap_or(false)
}

/// A page being sent. When every scrape is done with it, its buffer goes
/// back for the next page: a new buffer of a few MB is new pages from the
/// kernel (glibc's mmap threshold is fixed at 1 MiB, main.rs), each one
/// faulted in and zeroed, and that was a fifth of a scrape's CPU with
/// 10,000 checks.
struct Page {
    buf: Vec<u8>,
    spare: Arc<Mutex<Vec<u8>>>,
}

impl AsRef<[u8]> for Page {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let mut spare = self.spare.lock().unwrap_or_else(|e| e.into_inner());
        if buf.capacity() > spare.capacity() {
            *spare = buf;
        }
    }
}

/// Counts a scrape out; the last one out drops the kept page, so an idle
/// agent does not hold a copy of it.
struct Waiter<'a>(&'a SharedRender);

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        if self.0.waiting.fetch_sub(1, Ordering::AcqRel) == 1 {
            let mut last = self.0.last.lock().unwrap_or_else(|e| e.into_inner());
            if self.0.waiting.load(Ordering::Acquire) == 0 {
                *last = None;
            }
        }
    }
}

/// Escapes a label value (`\`, `"` and newlines).
pub fn escape_label(v: &str) -> std::borrow::Cow<'_, str> {
    // A byte scan: `str::contains([char; 3])` decodes every char and was
    // 15% of a scrape with 10,000 http checks (see BENCHMARKS.md).
    if !v.bytes().any(|b| matches!(b, b'\\' | b'"' | b'\n')) {
        return std::borrow::Cow::Borrowed(v);
    }
    let mut s = String::with_capacity(v.len() + 4);
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    std::borrow::Cow::Owned(s)
}

/// Appends a sample value in the text format.
pub fn write_value(out: &mut Vec<u8>, v: f64) {
    if v.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"+Inf" } else { b"-Inf" });
    } else if v.abs() < 9.0e15 && (v as i64) as f64 == v {
        // (`v.fract()` is a libm call on this target: 5% of a scrape.)
        out.extend_from_slice(itoa::Buffer::new().format(v as i64).as_bytes());
    } else {
        out.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A render that takes 100 ms and returns its own number.
    fn numbered(count: &Arc<AtomicU64>) -> impl FnOnce(Vec<u8>) -> Vec<u8> + Send + 'static {
        let count = count.clone();
        move |_| {
            let n = count.fetch_add(1, Ordering::SeqCst) + 1;
            std::thread::sleep(Duration::from_millis(100));
            n.to_string().into_bytes()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_scrapes_share_one_render_and_never_get_an_older_page() {
        let shared = Arc::new(SharedRender::default());
        let count = Arc::new(AtomicU64::new(0));
        let scrape = |shared: &Arc<SharedRender>| {
            let (shared, render) = (shared.clone(), numbered(&count));
            tokio::spawn(async move { shared.page(render).await })
        };
        let first = scrape(&shared);
        tokio::time::sleep(Duration::from_millis(30)).await;
        // Ten scrapes arrive while the first render runs: they share the next.
        let later: Vec<_> = (0..10).map(|_| scrape(&shared)).collect();
        assert_eq!(first.await.unwrap(), "1");
        for s in later {
            assert_eq!(s.await.unwrap(), "2");
        }
        assert_eq!(count.load(Ordering::SeqCst), 2);
        // Idle: the page is not kept; the next scrape renders anew.
        assert!(shared.last.lock().unwrap().is_none());
        assert_eq!(scrape(&shared).await.unwrap(), "3");
    }

    #[tokio::test]
    async fn a_page_every_scrape_is_done_with_lends_its_buffer_to_the_next() {
        let shared = SharedRender::default();
        let first = shared
            .page(|mut buf| {
                assert_eq!(buf.capacity(), 0, "nothing to reuse yet");
                buf.extend_from_slice(&[b'x'; 100_000]);
                buf
            })
            .await;
        let ptr = first.as_ptr() as usize;
        // Still being sent: the next page gets a buffer of its own.
        let second = shared
            .page(|mut buf| {
                assert_eq!(buf.capacity(), 0);
                buf.push(b'y');
                buf
            })
            .await;
        drop(first);
        drop(second);
        let third = shared
            .page(move |mut buf| {
                assert!(buf.is_empty() && buf.capacity() >= 100_000);
                assert_eq!(buf.as_ptr() as usize, ptr, "the first page's buffer");
                buf.push(b'z');
                buf
            })
            .await;
        assert_eq!(&third[..], b"z");
    }

    #[test]
    fn gzip_is_accepted_unless_refused() {
        for (header, ok) in [
            ("gzip", true),
            ("deflate, gzip;q=1.0, *;q=0.5", true),
            ("GZIP", true),
            ("x-gzip", true),
            ("identity", false),
            ("", false),
            ("gzip;q=0", false),
            ("gzip; q=0.000", false),
            ("*", true),
            ("br, *;q=0", false),
            ("*;q=0, gzip", true),
        ] {
            assert_eq!(accepts_gzip(header), ok, "Accept-Encoding: {header}");
        }
    }

    #[test]
    fn a_gzipped_page_decompresses_to_the_page() {
        use std::io::Read as _;
        let text = b"healthprobe_check_success{pack=\"p\",check=\"c\"} 1\n".repeat(1000);
        let gz = gzip(&text);
        assert!(gz.len() < text.len() / 10, "{} bytes", gz.len());
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, text);
    }

    #[test]
    fn values_are_written_as_integers_when_they_are_integers() {
        let mut out = Vec::new();
        for v in [
            0.0,
            -0.0,
            200.0,
            1e15,
            0.5,
            1795252616.25,
            -3.0,
            f64::NAN,
            f64::INFINITY,
        ] {
            write_value(&mut out, v);
            out.push(b' ');
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "0 0 200 1000000000000000 0.5 1795252616.25 -3 NaN +Inf "
        );
    }
}
