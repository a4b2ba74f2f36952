//! Inputs the fuzz targets (`fuzz/`) found crashing, kept as tests with
//! their fixes. Each test names its target and says what the input was.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use prometheus_client::metrics::{counter::Counter, gauge::Gauge};
use relay::exposition::{check, Format, Labels};
use relay::relabel::{RelabelConfig, Rules};
use relay::scrape::pipeline::{convert, process, PipelineError, Rendered, SeriesCache, Settings};
use relay::snapshot::Latest;
use relay::telemetry::Telemetry;
use relay::wal::{Next, Position, Reader, Wal};

thread_local! {
    /// The largest single allocation this thread made since it was reset.
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

/// The system allocator, noting each thread's largest allocation, so a test
/// can say how much one input made relay allocate.
struct Measured;

// SAFETY: forwards to the system allocator unchanged.
unsafe impl GlobalAlloc for Measured {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

#[global_allocator]
static GLOBAL: Measured = Measured;

/// Target `wal`: a 25-byte segment whose first record claims a length of
/// 62 MiB (under the 64 MiB cap on a record). The reader allocated the whole
/// claimed length before finding the file too short; now it sees that the
/// record runs past the end of its sealed segment without allocating it.
#[test]
fn a_huge_record_length_in_a_short_sealed_segment_is_not_allocated() {
    let segment: [u8; 25] = [
        0x00, 0x00, 0xc0, 0x03, 0, 0, 0, 0, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    // Opening the WAL repairs only the last segment (2) and starts segment 3:
    // segment 1 is read as written, sealed.
    std::fs::write(dir.path().join("00000001"), segment).expect("writes");
    std::fs::write(dir.path().join("00000002"), b"").expect("writes");
    let wal = Wal::open(
        dir.path(),
        1 << 30,
        &[],
        Counter::default(),
        Gauge::default(),
    )
    .expect("opens");
    wal.close();
    let mut reader = Reader::new(
        Arc::new(wal),
        Position {
            segment: 1,
            offset: 0,
        },
    );
    LARGEST.with(|l| l.set(0));
    let mut seen = Vec::new();
    for _ in 0..10 {
        match reader.read_next() {
            Next::Record(_, at) => seen.push(format!("record ending at {at:?}")),
            Next::NewSegment(s) => seen.push(format!("segment {s}")),
            Next::Pending => seen.push("pending".into()),
            Next::End => break,
        }
    }
    let largest = LARGEST.with(Cell::get);
    assert_eq!(
        seen,
        vec!["segment 2", "segment 3"],
        "no record in the corrupt segment"
    );
    assert!(
        largest < 1 << 20,
        "reading a 25-byte segment allocated {largest} bytes at once"
    );
}

/// What `/metrics` serves in `format` when one target's last scrape gave `rendered`.
fn served(rendered: Rendered, format: Format) -> String {
    let store = Latest::new(relay::run::own_metrics(Arc::new(Telemetry::new())));
    store.add(0);
    store.publish(0, Arc::new(rendered));
    String::from_utf8_lossy(&store.snapshot().body(format, false)).into_owned()
}

/// Target `exposition` found bodies the checker accepts that relay served
/// invalid (fixed by the merged-body validity change, 47117c5): each is
/// checked as served, in both formats.
#[test]
fn bodies_the_checker_accepts_are_served_valid() {
    let cases: &[(Format, &str)] = &[
        // A counter's `_created` sample, rendered in a block of its own, was
        // served in OpenMetrics under a second HELP/TYPE pair for `c`.
        (
            Format::OpenMetrics,
            "# HELP c A counter.\n# TYPE c counter\nc_total{a=\"x\"} 1\nc_created{a=\"x\"} 1700000000\n# EOF\n",
        ),
        // A histogram interrupted by another metric: the checker reads what
        // follows as new untyped families; relay served it under the
        // histogram's TYPE (a bad `le`, then no `+Inf` bucket).
        (
            Format::Text,
            "# TYPE app_latency_seconds histogram\napp_latzency_seconds_bucket{le=\"0.1\"} 1\napp_latency_seconds_bucket{le=\"+IUnf\"} 2\napp_latency_seconds_sum 0.3\napp_latency_seconds_count 2\n",
        ),
        // The same with `h_count` after the interruption: found on one
        // target's rendered blocks (before the merge), where `h` came twice.
        (
            Format::Text,
            "# HELP h x\n# TYPE h histogram\nh_bucket{a=\"1\",le=\"0.5\"} 1\nh_bucket{a=\"1\",le=\"+Inf\"} 2\nhWsum{a=\"1\"} 3\nh_count{a=\"1\"} 2\n",
        ),
    ];
    for (input_format, body) in cases {
        assert_eq!(
            check(body.as_bytes(), *input_format),
            vec![],
            "input:\n{body}"
        );
        let rendered = convert(body.as_bytes(), *input_format, Format::Text).expect("parses");
        for format in [Format::Text, Format::OpenMetrics] {
            let out = served(rendered.clone(), format);
            assert_eq!(check(out.as_bytes(), format), vec![], "{format:?}:\n{out}");
        }
    }
}

/// Target `scrape`: a rule writing `app_$1"` (a stray quote from YAML)
/// into `__name__` made relay serve `app_requests_total"{...} 1`, which no
/// parser reads. Under `utf8` (Prometheus 3 keeps such a name) it is served
/// quoted with the quote escaped; under `legacy` the scrape fails.
#[test]
fn a_metric_name_made_invalid_by_relabeling_fails_the_scrape() {
    let rules = Rules::compile(&[RelabelConfig {
        source_labels: vec!["__name__".into()],
        regex: "http_(.*)".into(),
        target_label: Some("__name__".into()),
        replacement: "app_$1\"".into(),
        ..serde_norway::from_str("{}").expect("defaults")
    }])
    .expect("compiles");
    let target: Labels<'static> = [("instance", "localhost:8001"), ("job", "app")]
        .into_iter()
        .collect();
    let mut out = Rendered::default();
    process(
        b"http_requests_total 1\n",
        Format::Text,
        &Settings::new(&target, &rules),
        &mut SeriesCache::default(),
        &mut out,
    )
    .expect("utf8 keeps the name");
    let text = served(out.clone(), Format::Text);
    assert!(
        text.contains("\n{\"app_requests_total\\\"\",instance=\"localhost:8001\",job=\"app\"} 1\n"),
        "{text}"
    );
    assert_eq!(check(text.as_bytes(), Format::Text), vec![], "{text}");
    let legacy = Settings {
        utf8_names: false,
        ..Settings::new(&target, &rules)
    };
    let result = process(
        b"http_requests_total 1\n",
        Format::Text,
        &legacy,
        &mut SeriesCache::default(),
        &mut out,
    );
    assert!(
        matches!(&result, Err(PipelineError::InvalidLabels { series, .. }) if series.contains("app_requests_total\\\"")),
        "{result:?}"
    );
}

/// Target `exposition`: `a{__name__="b"} 1` parsed, and relay served `a 1`,
/// a sample other than the target's (which series, `a` or `b`, is it?).
/// Prometheus's TSDB refuses such a sample (a duplicate `__name__`, which
/// fails its scrape) and promtool's parser refuses the body: relay's parser
/// refuses it too, so the scrape fails and `relay check metrics` says why.
#[test]
fn a_name_label_in_the_braces_fails_the_scrape() {
    for format in [Format::Text, Format::OpenMetrics] {
        let body = match format {
            Format::OpenMetrics => "a{__name__=\"b\"} 1\n# EOF\n",
            _ => "a{__name__=\"b\"} 1\n",
        };
        let err = convert(body.as_bytes(), format, Format::Text).expect_err("refused");
        assert!(
            matches!(&err, PipelineError::Parse(e) if e.to_string().contains("label name \"__name__\" is not unique")),
            "{format:?}: {err}"
        );
        let problems = check(body.as_bytes(), format);
        assert_eq!(problems.len(), 1, "{format:?}: {problems:?}");
        assert!(
            problems[0]
                .to_string()
                .starts_with("1:3: label name \"__name__\""),
            "{problems:?}"
        );
    }
}

/// protobuf target: an exemplar label name outside the legacy charset
/// (`tr/be_id`) was written unquoted after a bucket, and the OpenMetrics
/// body relay served did not parse. Such a name is quoted now, as in a
/// series, a `"` in it escaped as in a label value.
#[test]
fn a_protobuf_exemplar_with_a_utf8_label_name_is_served_quoted() {
    let exemplar = |name: &[u8]| {
        let mut label = vec![0x0a, name.len() as u8];
        label.extend_from_slice(name);
        label.extend_from_slice(&[0x12, 0x01, b'b']);
        let mut e = vec![0x0a, label.len() as u8];
        e.extend(label);
        e.extend_from_slice(&[0x11, 0, 0, 0, 0, 0, 0, 0xe0, 0x3f]); // value 0.5
        e
    };
    for (name, want) in [
        (&b"tr/be_id"[..], "# {\"tr/be_id\"=\"b\"} 0.5"),
        (&b"a\"b"[..], "# {\"a\\\"b\"=\"b\"} 0.5"),
    ] {
        // Bucket: cumulative_count 2, upper_bound 1.0, exemplar.
        let mut bucket = vec![0x08, 0x02, 0x11, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0x1a];
        let e = exemplar(name);
        bucket.push(e.len() as u8);
        bucket.extend(e);
        // Histogram: sample_count 2, sample_sum 1.0 and the bucket.
        let mut histogram = vec![0x08, 0x02, 0x11, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0x1a];
        histogram.push(bucket.len() as u8);
        histogram.extend(bucket);
        let mut metric = vec![0x3a, histogram.len() as u8];
        metric.extend(histogram);
        // Family: name "h", type histogram (4), the metric.
        let mut family = vec![0x0a, 0x01, b'h', 0x18, 0x04, 0x22, metric.len() as u8];
        family.extend(metric);
        let mut body = vec![family.len() as u8];
        body.extend(family);
        let rendered = convert(&body, Format::Protobuf, Format::Text).expect("valid");
        let om = served(rendered, Format::OpenMetrics);
        assert_eq!(check(om.as_bytes(), Format::OpenMetrics), vec![], "{om}");
        let bucket = om
            .lines()
            .find(|l| l.starts_with("h_bucket{le=\"1.0\"}"))
            .unwrap_or_else(|| panic!("no bucket in {om}"));
        assert!(bucket.ends_with(want), "{bucket}");
    }
}
