//! The scrape pipeline (`process_into`: parse, target labels, metric
//! relabeling, limits, series cache, both sinks) with arbitrary rules on
//! arbitrary bodies. The input is a relay config (its first job's rules,
//! limits and honor_* settings, its first target's labels), a NUL byte, a
//! body, and optionally another NUL and a second body, scraped next.
//!
//! Invariants: what relay serves after a scrape parses back in both
//! formats (relabeling that makes a name invalid fails the scrape instead),
//! and a warm series cache changes nothing: the second body gives the same
//! result after the first as it does alone; and the first body fed in
//! small chunks, as a scrape reads it, gives what it gives whole. (The WAL
//! batch is a sink too, for its encoder; the wal target reads segments.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use relay::exposition::{Format, Labels};
use relay::plan::Job;
use relay::scrape::pipeline::{
    process_into, Carry, Counts, Limits, PipelineError, Rendered, SeriesCache, Settings, Stream,
};
use relay::storage::{Appended, Appender, FanOut};
use relay::wal::WalBatch;

fuzz_target!(|data: &[u8]| {
    relay_fuzz::limit_allocations(64 << 20);
    let mut parts = data.splitn(3, |&b| b == 0);
    let (Some(yaml), Some(first)) = (parts.next(), parts.next()) else {
        return;
    };
    let second = parts.next();
    let Ok(yaml) = std::str::from_utf8(yaml) else {
        return;
    };
    let Ok(plan) = relay::plan::from_yaml_str(yaml) else {
        return;
    };
    let Some(job) = plan.jobs.first() else {
        return;
    };
    let target_labels = match job.targets.first() {
        Some(t) => t.labels.clone(),
        None => [
            ("instance", "localhost:8001"),
            ("job", job.config.job_name.as_str()),
        ]
        .into_iter()
        .collect::<Labels>()
        .into_owned(),
    };
    let settings = settings(job, &target_labels);
    let mut warm = SeriesCache::default();
    let after_first = scrape(first, &settings, &mut warm, 0);
    let in_chunks = scrape(first, &settings, &mut SeriesCache::default(), 7);
    assert_eq!(
        (&in_chunks.0, &in_chunks.1, in_chunks.2),
        (&after_first.0, &after_first.1, after_first.2),
        "fed in 7-byte chunks, the body gave another result"
    );
    if let Some(second) = second {
        let warmed = scrape(second, &settings, &mut warm, 0);
        let alone = scrape(second, &settings, &mut SeriesCache::default(), 0);
        assert_eq!(
            (
                warmed.0,
                warmed.1,
                warmed.2.samples_scraped,
                warmed.2.samples_kept
            ),
            (
                alone.0,
                alone.1,
                alone.2.samples_scraped,
                alone.2.samples_kept
            ),
            "a warm cache changed the second scrape (first: {:?})",
            after_first.0
        );
    }
});

/// What the scrape loop builds from a job (see src/scrape/mod.rs).
fn settings<'t>(job: &'t Job, target_labels: &'t Labels<'static>) -> Settings<'t> {
    let config = &job.config;
    Settings {
        honor_labels: config.honor_labels,
        honor_timestamps: config.honor_timestamps,
        limits: Limits {
            sample_limit: config.sample_limit,
            label_limit: config.label_limit,
            label_name_length_limit: config.label_name_length_limit,
            label_value_length_limit: config.label_value_length_limit,
            series_limit: config.series_limit,
            ..Limits::default()
        },
        utf8_names: config.validation() == relay::config::NameValidation::Utf8,
        ..Settings::new(target_labels, &job.metric_relabel)
    }
}

/// The WAL's batch as an appender (every series described).
struct Batch<'b>(&'b mut WalBatch);

impl Appender for Batch<'_> {
    fn append(&mut self, s: &Appended<'_>) {
        self.0.append(s, true);
    }
}

/// One scrape into both sinks, committed or discarded as the scrape loop
/// does (the body in one piece, or fed in `chunk`-byte chunks); returns the
/// result, the served text and the counts.
fn scrape(
    body: &[u8],
    settings: &Settings<'_>,
    cache: &mut SeriesCache,
    chunk: usize,
) -> (Result<(), PipelineError>, String, Counts) {
    let format = if body.windows(5).any(|w| w == b"# EOF") {
        Format::OpenMetrics
    } else {
        Format::Text
    };
    let mut rendered = Rendered::default();
    let mut batch = WalBatch::default();
    batch.begin(1_000);
    let mut counts = Counts::default();
    let result = {
        let mut sink = FanOut(&mut rendered, Batch(&mut batch));
        let result = if chunk == 0 {
            process_into(body, format, settings, cache, &mut counts, &mut sink)
        } else {
            let mut carry = Carry::gathering(0);
            let mut stream = Stream::new(format, settings, cache, &mut counts, &mut sink);
            body.chunks(chunk)
                .try_for_each(|c| stream.feed(&mut carry, c))
                .and_then(|()| stream.finish(&mut carry))
        };
        match &result {
            Ok(()) => cache.commit(&mut sink),
            Err(_) => cache.discard(&mut sink),
        }
        result
    };
    batch.finish();
    let mut text = Vec::new();
    rendered.write(&mut text, Format::Text);
    if result.is_ok() {
        for output in [Format::Text, Format::OpenMetrics] {
            let served = relay_fuzz::served(rendered.clone(), output);
            if let Err(e) = relay_fuzz::flat_samples(&served, output) {
                panic!(
                    "{output:?}: a successful scrape serves what does not parse: {e}\n{}",
                    String::from_utf8_lossy(&served)
                );
            }
        }
    }
    (result, String::from_utf8_lossy(&text).into_owned(), counts)
}
