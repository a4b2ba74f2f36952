//! What the fuzz targets share: an allocator that turns an oversized
//! allocation into a crash (libFuzzer's own `-malloc_limit_mb` needs a
//! sanitizer, and the targets are built without one), and readers that turn
//! an exposition into comparable samples.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};

use relay::exposition::{Entry, Format, ParseError, Parser};

/// The largest single allocation a target may make before it counts as a
/// crash; targets lower it to what their input justifies.
static ALLOC_LIMIT: AtomicUsize = AtomicUsize::new(256 << 20);

/// The system allocator, aborting on an allocation above [`ALLOC_LIMIT`] so
/// that libFuzzer saves the input that asked for it.
pub struct Capped;

// SAFETY: forwards to the system allocator unchanged.
unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        check(new_size);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

fn check(size: usize) {
    let limit = ALLOC_LIMIT.load(Ordering::Relaxed);
    if size > limit {
        // No formatting: it could allocate.
        let mut err = std::io::stderr();
        let _ = err.write_all(b"==fuzz== allocation over the target's limit (ALLOC_LIMIT)\n");
        std::process::abort();
    }
}

#[global_allocator]
static GLOBAL: Capped = Capped;

/// Makes an allocation above `bytes` a crash from now on.
pub fn limit_allocations(bytes: usize) {
    ALLOC_LIMIT.store(bytes, Ordering::Relaxed);
}

/// One sample in a form two parses can be compared by: name, labels as
/// written, value bits (every NaN alike) and timestamp.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Flat {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: u64,
    pub timestamp_ms: Option<i64>,
}

/// Every sample of `body`, or the parser's first error.
pub fn flat_samples(body: &[u8], format: Format) -> Result<Vec<Flat>, ParseError> {
    let mut out = Vec::new();
    for entry in Parser::new(body, format) {
        if let Entry::Sample(s) = entry? {
            out.push(Flat {
                name: s.name.to_string(),
                labels: s
                    .labels()
                    .map(|(n, v)| (n.into_owned(), v.into_owned()))
                    .collect(),
                value: if s.value.is_nan() {
                    f64::NAN.to_bits()
                } else {
                    s.value.to_bits()
                },
                timestamp_ms: s.timestamp_ms,
            });
        }
    }
    Ok(out)
}

/// Prometheus's legacy label name rule, `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_label_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Prometheus's legacy metric name rule, `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_metric_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b':')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

/// The intact records at the start of a WAL segment, as (end offset, type),
/// and where the intact part ends. Written from the format the WAL module
/// documents (`[length u32][CRC32-C u32][type u8][body]`, little-endian,
/// length and CRC over type and body), not from its code.
pub fn wal_records(data: &[u8]) -> (Vec<(u64, u8)>, usize) {
    const HEADER: usize = 8;
    const MAX_RECORD: usize = 64 << 20;
    let mut records = Vec::new();
    let mut at = 0;
    while let Some(header) = data.get(at..at + HEADER + 1) {
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if len == 0 || len > MAX_RECORD {
            break;
        }
        let Some(payload) = data.get(at + HEADER..at + HEADER + len) else {
            break;
        };
        if crc32c::crc32c(payload) != crc {
            break;
        }
        at += HEADER + len;
        records.push((at as u64, payload[0]));
    }
    (records, at)
}

/// What relay's `/metrics` serves in `format` when one target's latest
/// scrape is `rendered` (merged with relay's own metrics, as served).
pub fn served(rendered: relay::scrape::pipeline::Rendered, format: Format) -> Vec<u8> {
    use relay::snapshot::Latest;
    static STORE: std::sync::OnceLock<Latest> = std::sync::OnceLock::new();
    let store = STORE.get_or_init(|| {
        let telemetry = std::sync::Arc::new(relay::telemetry::Telemetry::new());
        let latest = Latest::new(relay::run::own_metrics(telemetry));
        latest.add(0);
        latest
    });
    store.publish(0, std::sync::Arc::new(rendered));
    store.snapshot().body(format, false).to_vec()
}
