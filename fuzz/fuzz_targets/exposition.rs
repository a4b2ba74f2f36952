//! The scrape parser and `relay check metrics` on arbitrary bodies, in both
//! formats. Besides "never panics": every error points at a real line and
//! column; the checker reports whatever the parser rejects; and a body the
//! parser accepts, as relay serves it on /metrics (in either format), parses
//! back to the same samples, and stays valid for the checker when it was.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relay::exposition::{check, Format, Parser};
use relay::scrape::pipeline::convert;
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
    let want = first_of_each_series(&input);
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
        // Relay's own metrics are served too: compare the input's series.
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
    let mut seen = std::collections::HashSet::new();
    let mut kept: Vec<Flat> = samples
        .iter()
        .filter(|s| seen.insert((s.name.clone(), s.labels.clone())))
        .cloned()
        .collect();
    kept.sort();
    kept
}
