//! The protobuf exposition parser (delimited `MetricFamily` messages) and
//! `relay check metrics --format protobuf` on arbitrary bodies. Besides
//! "never panics" and "allocates nothing a length prefix merely claims":
//! every error names a message and a byte inside the body; the checker
//! reports whatever the scrape pipeline refuses; and a body the pipeline
//! accepts is served (text 0.0.4 and OpenMetrics, with its exemplars and
//! created timestamps) as the same samples in both formats (but the
//! `_created` ones, OpenMetrics only), valid for the checker when the
//! input was.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relay::exposition::proto::{self, Options, ProtoError, Scratch};
use relay::exposition::{check, Format};
use relay::scrape::pipeline::convert;
use relay_fuzz::{flat_samples, served, Flat};

fuzz_target!(|body: &[u8]| {
    relay_fuzz::limit_allocations(64 << 20);
    for options in [
        Options::default(),
        Options {
            native: true,
            classic: true,
        },
    ] {
        if let Err(e) = walk(body, options) {
            assert!(
                e.number >= 1 && e.offset <= body.len(),
                "error outside the body ({} bytes): {e}",
                body.len()
            );
        }
    }
    let problems = check(body, Format::Protobuf);
    let rendered = match convert(body, Format::Protobuf, Format::Text) {
        Ok(rendered) => rendered,
        Err(e) => {
            assert!(
                !problems.is_empty(),
                "the pipeline refuses the body but the checker does not: {e}"
            );
            return;
        }
    };
    let text = served(rendered.clone(), Format::Text);
    let om = served(rendered, Format::OpenMetrics);
    let show = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let samples = |body: &[u8], format: Format| -> Vec<Flat> {
        let mut all = flat_samples(body, format).unwrap_or_else(|e| {
            panic!(
                "{format:?}: what relay serves does not parse: {e}\n{}",
                show(body)
            )
        });
        // relay's own metrics (durations, counts) change between the two;
        // created timestamps are served in OpenMetrics only.
        all.retain(|s| {
            !s.name.starts_with("relay_")
                && !s.name.starts_with("process_")
                && !s.name.ends_with("_created")
        });
        all.sort();
        all
    };
    assert_eq!(
        samples(&text, Format::Text),
        samples(&om, Format::OpenMetrics),
        "text and OpenMetrics serve other samples\n{}\n{}",
        show(&text),
        show(&om)
    );
    if problems.is_empty() {
        for (served, format) in [(&text, Format::Text), (&om, Format::OpenMetrics)] {
            let after = check(served, format);
            assert!(
                after.is_empty(),
                "{format:?}: a valid body is served invalid: {after:?}\n{}",
                show(served)
            );
        }
    }
});

/// Every family and sample of `body`, as the scrape reads them.
fn walk(body: &[u8], options: Options) -> Result<(), ProtoError> {
    let mut scratch = Scratch::default();
    let (mut pos, mut number) = (0, 1);
    while pos < body.len() {
        let rest = &body[pos..];
        let Some(frame) = proto::next_numbered_frame(rest, pos, number, body.len(), false)? else {
            break;
        };
        assert!(
            frame.start <= frame.end && frame.end <= rest.len(),
            "a frame outside the body: {frame:?}"
        );
        pos += frame.end;
        number += 1;
        let family = proto::decode(rest, frame)?;
        proto::for_each_sample(&family, frame, options, &mut scratch, |s| {
            assert!(!s.name.is_empty(), "a sample without a name");
            Ok::<(), ProtoError>(())
        })?;
    }
    Ok(())
}
