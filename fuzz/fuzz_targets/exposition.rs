//! The scrape parser and `relay check metrics` on arbitrary bodies, in both
//! formats. Besides "never panics": every error points at a real line and
//! column; the checker reports whatever the parser rejects; and a body the
//! parser accepts, as relay serves it on /metrics (in either format), parses
//! back to the same samples, and stays valid for the checker when it was.
#![no_main]

use std::collections::HashSet;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use relay::exposition::{check, Format, Parser};
use relay::scrape::pipeline::{convert, Rendered};
use relay_fuzz::{flat_samples, served, Flat};

fuzz_target!(|body: &[u8]| {
    relay_fuzz::limit_allocations(64 << 20);
    for format in [Format::Text, Format::OpenMetrics] {
        one_format(body, format);
    }
});

fn one_format(body: &[u8], format: Format) {
    let lines = body.split(|&b| b == b'\n').count();
    let mut parse_errors = 0;
    for entry in Parser::new(body, format) {
        if let Err(e) = entry {
            parse_errors += 1;
            assert!(
                e.line >= 1 && e.line <= lines + 1 && e.col >= 1,
                "{format:?}: error outside the input ({lines} lines): {e}"
            );
        }
    }
    let problems = check(body, format);
    assert!(
        parse_errors == 0 || !problems.is_empty(),
        "{format:?}: the parser rejects the body but the checker does not"
    );
    for p in &problems {
        assert!(
            p.line >= 1 && p.line <= lines + 1 && p.col >= 1,
            "{format:?}: problem outside the input ({lines} lines): {p}"
        );
    }
    if parse_errors > 0 {
        return;
    }
    let Ok(input) = flat_samples(body, format) else {
        panic!("{format:?}: parser yielded no error, then one");
    };
    let Ok(rendered) = convert(body, format, Format::Text) else {
        panic!("{format:?}: the parser accepts the body, the scrape pipeline does not");
    };
    // Relay serves its own metrics too: only the input's other series are
    // compared (a target's series get job and instance labels, so they do
    // not meet relay's own; this body goes through without them).
    let own = own_series();
    let want: Vec<Flat> = first_of_each_series(&input)
        .into_iter()
        .filter(|s| !own.contains(&(s.name.clone(), s.labels.clone())))
        .collect();
    for output in [Format::Text, Format::OpenMetrics] {
        let text = served(rendered.clone(), output);
        let show = || String::from_utf8_lossy(&text).into_owned();
        let back = match flat_samples(&text, output) {
            Ok(s) => s,
            Err(e) => panic!(
                "{format:?} -> {output:?}: what relay serves does not parse: {e}\n{}",
                show()
            ),
        };
        let mut got: Vec<Flat> = back
            .into_iter()
            .filter(|s| {
                want.iter()
                    .any(|w| w.name == s.name && w.labels == s.labels)
            })
            .collect();
        got.sort();
        assert_eq!(
            got,
            want,
            "{format:?} -> {output:?}: samples changed\n{}",
            show()
        );
        if problems.is_empty() {
            let after = check(&text, output);
            assert!(
                after.is_empty(),
                "{format:?} -> {output:?}: a valid body is served invalid: {after:?}\n{}",
                show()
            );
        }
    }
}

/// What a scrape keeps: the first sample of each series (same name and
/// labels), sorted.
fn first_of_each_series(samples: &[Flat]) -> Vec<Flat> {
    let mut seen = HashSet::new();
    let mut kept: Vec<Flat> = samples
        .iter()
        .filter(|s| seen.insert((s.name.clone(), s.labels.clone())))
        .cloned()
        .collect();
    kept.sort();
    kept
}

/// A series as (name, labels), the key of the samples compared.
type SeriesKey = (String, Vec<(String, String)>);

/// The (name, labels) of relay's own metrics, as served with no target.
fn own_series() -> &'static HashSet<SeriesKey> {
    static OWN: OnceLock<HashSet<SeriesKey>> = OnceLock::new();
    OWN.get_or_init(|| {
        let text = served(Rendered::default(), Format::Text);
        flat_samples(&text, Format::Text)
            .expect("relay's own metrics parse")
            .into_iter()
            .map(|s| (s.name, s.labels))
            .collect()
    })
}
