//! A scrape body is parsed as it arrives, chunk by chunk: wherever the
//! chunks split it (mid-line, mid-label-value, inside a text label value
//! holding raw newlines, before `# EOF`), the pipeline hands on the same
//! samples with the same families and fails with the same error, at the
//! same line and column, as for the body in one piece.

use proptest::prelude::*;

use relay::exposition::{Format, Labels};
use relay::relabel::Rules;
use relay::scrape::pipeline::{
    process_into, Appended, Appender, Carry, Counts, PipelineError, SeriesCache, Settings, Stream,
};

/// What a sink saw: every field of every sample, families included.
#[derive(Default)]
struct Seen(Vec<String>);

impl Appender for Seen {
    fn append(&mut self, s: &Appended<'_>) {
        self.0.push(format!(
            "{} {:?} {:?} | {} {:?} {:?} {:?}",
            s.series,
            s.value.float().map(f64::to_bits),
            s.timestamp_ms,
            s.family.name,
            s.family.help,
            s.family.kind,
            s.family.unit
        ));
    }
}

type Outcome = (Vec<String>, Counts, Result<(), PipelineError>);

fn whole(body: &[u8], format: Format, settings: &Settings<'_>) -> Outcome {
    let (mut seen, mut counts) = (Seen::default(), Counts::default());
    let result = process_into(
        body,
        format,
        settings,
        &mut SeriesCache::default(),
        &mut counts,
        &mut seen,
    );
    (seen.0, counts, result)
}

/// The body fed in chunks cut at `cuts` (any byte offsets), as a scrape
/// feeds it: stopping at the first error. Each chunk is parsed as it comes
/// (a scrape gathers small ones up to 64 KiB first).
fn chunked(body: &[u8], format: Format, settings: &Settings<'_>, cuts: &[usize]) -> Outcome {
    let (mut seen, mut counts) = (Seen::default(), Counts::default());
    let mut cache = SeriesCache::default();
    let mut carry = Carry::gathering(0);
    let mut stream = Stream::new(format, settings, &mut cache, &mut counts, &mut seen);
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
    cuts.push(0);
    cuts.push(body.len());
    cuts.sort_unstable();
    let mut result = Ok(());
    for pair in cuts.windows(2) {
        result = stream.feed(&mut carry, &body[pair[0]..pair[1]]);
        if result.is_err() {
            break;
        }
    }
    if result.is_ok() {
        result = stream.finish(&mut carry);
    }
    (seen.0, counts, result)
}

const TEXT_LINES: &[&str] = &[
    "# HELP a_total Things done.\n",
    "# HELP a_total Things \\\\ done\\n twice.\n",
    "# TYPE a_total counter\n",
    "a_total 1\n",
    "a_total{x=\"1\",y=\"two words\"} 2 1700000000000\n",
    "a_total{x=\"ünïcode\"} +Inf\n",
    "# TYPE h histogram\n",
    "h_bucket{le=\"0.5\"} 1\n",
    "h_bucket{le=\"+Inf\"} 2\n",
    "h_sum 3\n",
    "h_count 2\n",
    "# just a comment\n",
    "\n",
    "   g{a=\"multi\nline\",b=\"x\"} 4\n",
    "g{a=\"esc \\\" quote\"} NaN\n",
    "untyped_one 5\n",
    "a_total{x=\"1\"} 3\n",
    "bad line here\n",
    "c{a=\"unterminated} 1\n",
    "no_newline_at_end 7",
];

const OM_LINES: &[&str] = &[
    "# HELP b Bees.\n",
    "# TYPE b gauge\n",
    "# UNIT b_seconds seconds\n",
    "# TYPE b_seconds gauge\n",
    "b_seconds 1.5\n",
    "b{l=\"v\"} 2 1700000000.123\n",
    "# TYPE c counter\n",
    "c_total 3 # {trace_id=\"abc\"} 1 1700000000\n",
    "c_created 1700000000\n",
    "b 1\n\n",
    "# EOF\n",
    "# EOF",
    "after 1\n",
];

fn body(lines: &'static [&'static str]) -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(lines), 0..14).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn text_in_chunks_is_text_whole(
        body in body(TEXT_LINES),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
        limit in 0usize..6,
    ) {
        let (target, rules) = (Labels::default(), Rules::default());
        let mut settings = Settings::new(&target, &rules);
        settings.limits.sample_limit = limit;
        let want = whole(body.as_bytes(), Format::Text, &settings);
        let got = chunked(body.as_bytes(), Format::Text, &settings, &cuts);
        prop_assert_eq!(got, want, "{:?} cut at {:?}", body, cuts);
    }

    #[test]
    fn openmetrics_in_chunks_is_openmetrics_whole(
        body in body(OM_LINES),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let (target, rules) = (Labels::default(), Rules::default());
        let settings = Settings::new(&target, &rules);
        let want = whole(body.as_bytes(), Format::OpenMetrics, &settings);
        let got = chunked(body.as_bytes(), Format::OpenMetrics, &settings, &cuts);
        prop_assert_eq!(got, want, "{:?} cut at {:?}", body, cuts);
    }
}

/// Each byte its own chunk, on a body with an error far down: the error's
/// line counts every line before it, and the samples before it went by.
#[test]
fn byte_by_byte_keeps_the_error_position() {
    let mut body = String::new();
    for i in 0..50 {
        body.push_str(&format!("m{{i=\"{i}\"}} {i}\n"));
    }
    body.push_str("m{i=\"a\nb\"} 1\nm{i=\"x\"} 1 2 3\n");
    let (target, rules) = (Labels::default(), Rules::default());
    let settings = Settings::new(&target, &rules);
    let cuts: Vec<usize> = (0..body.len()).collect();
    let got = chunked(body.as_bytes(), Format::Text, &settings, &cuts);
    let want = whole(body.as_bytes(), Format::Text, &settings);
    assert_eq!(got, want);
    assert_eq!(got.0.len(), 51, "{:?}", got.0);
    let error = got.2.expect_err("line 53 is bad").to_string();
    assert!(
        error.starts_with("invalid exposition at line 53:"),
        "{error}"
    );
}

/// As a scrape feeds it: a gzip decoder's 4 KiB chunks of a body far over
/// the 64 KiB a parse gathers, with a multi-line sample and an error late.
#[test]
fn small_chunks_gathered_give_the_whole_result() {
    let mut body = String::new();
    for i in 0..20_000 {
        if i % 1000 == 0 {
            body.push_str(&format!("# TYPE m{i} gauge\n"));
        }
        body.push_str(&format!(
            "m{}{{i=\"{i}\",j=\"a\nb\"}} {i}\n",
            i / 1000 * 1000
        ));
    }
    body.push_str("m 1 2 3\n");
    let (target, rules) = (Labels::default(), Rules::default());
    let settings = Settings::new(&target, &rules);
    let want = whole(body.as_bytes(), Format::Text, &settings);
    let (mut seen, mut counts) = (Seen::default(), Counts::default());
    let mut cache = SeriesCache::default();
    let mut carry = Carry::default();
    let mut stream = Stream::new(Format::Text, &settings, &mut cache, &mut counts, &mut seen);
    let result = body
        .as_bytes()
        .chunks(4096)
        .try_for_each(|c| stream.feed(&mut carry, c))
        .and_then(|()| stream.finish(&mut carry));
    let got = (seen.0, counts, result);
    assert_eq!(got.0.len(), 20_000);
    assert_eq!(got, want);
    let error = got.2.expect_err("the last line is bad").to_string();
    assert!(
        error.starts_with("invalid exposition at line 40021:"),
        "{error}"
    );
}
