//! What a scraper of relay's port sees, beyond the targets' series: relay's
//! `/metrics` is to a sidecar what Prometheus's `/federate` is to a server,
//! so, as `/federate` does (web/federate.go), every served series gets
//! `global.external_labels` it does not have itself (a series' own label of
//! the same name wins). A central Prometheus with `honor_labels: true` then
//! keeps the app's `job`/`instance` and tells Pods apart by the external
//! labels (`pod`, `namespace`), so replicas never merge into one series.
//! Unlike `/federate`, no `instance=""` is added: every target series has
//! one. relay's own series get no external labels, as Prometheus's own
//! `/metrics` has none: they are filed under the central's `job` and
//! `instance` of the relay target.
//!
//! Also where relay's own metrics go (`relay.self_metrics`).

use std::sync::Arc;

use super::body::Snapshot;
use super::merge;
use super::native::NativeSeries;
use super::sink::Rendered;
use crate::config::SelfMetrics;

/// The served bodies' settings, from the running config.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct View {
    /// `global.external_labels`, expanded, by name.
    pub external_labels: Vec<(String, String)>,
    pub self_metrics: SelfMetrics,
}

impl View {
    /// The view `config` asks for.
    pub fn of(config: &crate::config::Config) -> View {
        View {
            external_labels: config
                .global
                .external_labels
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(n, v)| (n.clone(), v.clone()))
                .collect(),
            self_metrics: config.relay.self_metrics,
        }
    }

    /// `/metrics`: the targets' results, each series with the external
    /// labels it lacks, then relay's own metrics (`own`) when they are
    /// served with the app's. Those get no external labels, as Prometheus's
    /// own `/metrics` has none: the central Prometheus files them under its
    /// `job`/`instance` of the relay target, which tell Pods apart.
    pub fn metrics(&self, outputs: &[Arc<Rendered>], own: impl FnOnce() -> Rendered) -> Snapshot {
        let mut all: Vec<Arc<Rendered>> = if self.external_labels.is_empty() {
            outputs.to_vec()
        } else {
            outputs.iter().map(|r| Arc::new(self.labelled(r))).collect()
        };
        if self.self_metrics == SelfMetrics::WithApp {
            all.push(Arc::new(own()));
        }
        let native = all
            .iter()
            .flat_map(|r| r.native.series().iter().cloned())
            .collect();
        Snapshot::new(merge::merge(&all)).with_native(native)
    }

    /// `/relay/metrics`: relay's own metrics alone, None unless
    /// `relay.self_metrics` is `separate`.
    pub fn own_metrics(&self, own: impl FnOnce() -> Rendered) -> Option<Snapshot> {
        (self.self_metrics == SelfMetrics::Separate)
            .then(|| Snapshot::new(merge::merge(&[Arc::new(own())])))
    }

    /// `r` with the external labels added to every sample line that lacks
    /// them; blocks, headers and where `_created` lines go are kept.
    fn labelled(&self, r: &Rendered) -> Rendered {
        let mut out = Rendered::default();
        out.format = r.format;
        out.samples_scraped = r.samples_scraped;
        out.samples_kept = r.samples_kept;
        out.series_added = r.series_added;
        // Line ends of the last main block: (old, new) offsets in its lines,
        // to move the `_created` positions that refer to them.
        let mut ends: Vec<(usize, usize)> = Vec::new();
        // Each external label as written after a `{` or `,`: `name="value"`.
        let written: Vec<(&str, Vec<u8>)> = self
            .external_labels
            .iter()
            .map(|(name, value)| (name.as_str(), label_pair(name, value)))
            .collect();
        for block in &r.families {
            let lines = r.lines(block);
            let created = block.created.is_some();
            let buffer = if created {
                &mut out.created
            } else {
                &mut out.text
            };
            let start = buffer.len();
            let mut block_ends = Vec::new();
            let mut line_start = 0;
            for line in lines.split_inclusive(|&b| b == b'\n') {
                let old_start = line_start;
                line_start += line.len();
                if !created {
                    if let Some(e) = r.exemplars.at_line(block.lines.start + old_start) {
                        out.exemplars.push_moved(&r.exemplars, e, buffer.len());
                    }
                }
                with_external(buffer, line, &written);
                if !created {
                    block_ends.push((old_start, buffer.len() - start));
                }
            }
            let mut block = block.clone();
            block.lines = start..buffer.len();
            if let Some(c) = block.created.as_mut() {
                for at in c.at.iter_mut() {
                    *at = moved(&ends, *at);
                }
            } else {
                ends = line_ends(&block_ends, lines.len());
            }
            out.families.push(block);
        }
        // Native histograms get them as their classic view's lines do.
        let mut series = Vec::new();
        for n in r.native.series() {
            series.clear();
            with_external(&mut series, n.series.as_bytes(), &written);
            out.native.push(NativeSeries {
                series: String::from_utf8_lossy(&series).into_owned(),
                ..n.clone()
            });
        }
        out
    }
}

/// `line` (a rendered sample line or series) into `buffer` with the
/// `written` external labels it lacks added before its closing brace (one
/// made if it had none); value and timestamp copied as they are. The lines
/// are relay's own rendering: `name{a="1",b="2"} value` or `name value`.
fn with_external(buffer: &mut Vec<u8>, line: &[u8], written: &[(&str, Vec<u8>)]) {
    let (key, labels, tail) = split_line(line);
    buffer.extend_from_slice(key);
    let mut open = labels.is_some();
    if let Some(labels) = labels {
        buffer.extend_from_slice(labels);
    }
    for (name, pair) in written {
        if labels.is_some_and(|l| has_label(l, name.as_bytes())) {
            continue;
        }
        buffer.push(if open { b',' } else { b'{' });
        open = true;
        buffer.extend_from_slice(pair);
    }
    if open {
        buffer.push(b'}');
    }
    buffer.extend_from_slice(tail);
}

/// A rendered sample line's name (with `{`), label list (between the
/// braces, if any) and the rest (from the space before the value).
fn split_line(line: &[u8]) -> (&[u8], Option<&[u8]>, &[u8]) {
    let Some(at) = line.iter().position(|&b| b == b'{' || b == b' ') else {
        return (line, None, &[]);
    };
    if line[at] == b' ' {
        return (&line[..at], None, &line[at..]);
    }
    // Past quoted values (a `}` may be in one) to the closing brace.
    let mut i = at + 1;
    let mut quoted = false;
    while i < line.len() {
        match line[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b'}' if !quoted => break,
            _ => {}
        }
        i += 1;
    }
    let close = i.min(line.len());
    let rest = (close + 1).min(line.len());
    (&line[..=at], Some(&line[at + 1..close]), &line[rest..])
}

/// Whether a validated label list (`a="1",b="2"`, as between the braces)
/// has `name` with a value that is not empty (an empty one is no label).
fn has_label(src: &[u8], name: &[u8]) -> bool {
    let mut i = 0;
    while i < src.len() {
        // A quoted name: a label's (followed by `=`) or the metric's.
        let (n, value) = if src[i] == b'"' {
            let Some(close) = crate::exposition::render::quoted_len(&src[i + 1..]) else {
                return false;
            };
            let after = i + 1 + close + 1;
            if src.get(after) != Some(&b'=') {
                i = after + 1; // past the metric name and its comma
                continue;
            }
            (&src[i + 1..i + 1 + close], after + 1)
        } else {
            let Some(eq) = src[i..].iter().position(|&b| b == b'=') else {
                return false;
            };
            (&src[i..i + eq], i + eq + 1)
        };
        // The value: `"` .. `"`, backslash escapes skipped.
        let mut j = value + 1;
        while j < src.len() && src[j] != b'"' {
            j += if src[j] == b'\\' { 2 } else { 1 };
        }
        if n == name && j > value + 1 {
            return true;
        }
        // Past the closing quote and the comma.
        i = j + 2;
    }
    false
}

/// `name="value"`, the value escaped as the text format wants; a name that
/// is not a legacy one quoted (`"a.b"="value"`), as the series' own.
fn label_pair(name: &str, value: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + value.len() + 5);
    if crate::exposition::is_label_name(name) {
        out.extend_from_slice(name.as_bytes());
    } else {
        out.push(b'"');
        out.extend_from_slice(name.as_bytes());
        out.push(b'"');
    }
    out.extend_from_slice(b"=\"");
    for c in value.chars() {
        match c {
            '\\' => out.extend_from_slice(b"\\\\"),
            '"' => out.extend_from_slice(b"\\\""),
            '\n' => out.extend_from_slice(b"\\n"),
            c => {
                let mut utf8 = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            }
        }
    }
    out.push(b'"');
    out
}

/// (old end, new end) of each line, from (old start, new end) and where
/// the old lines end.
fn line_ends(lines: &[(usize, usize)], old_len: usize) -> Vec<(usize, usize)> {
    lines
        .iter()
        .enumerate()
        .map(|(i, &(_, new_end))| {
            let old_end = lines.get(i + 1).map_or(old_len, |&(start, _)| start);
            (old_end, new_end)
        })
        .collect()
}

/// Where a `_created` line's position (a line boundary in the old lines)
/// is in the new ones: the new end of the line that ended there.
fn moved(ends: &[(usize, usize)], at: usize) -> usize {
    let i = ends.partition_point(|&(old_end, _)| old_end < at);
    match ends.get(i) {
        Some(&(old_end, new_end)) if old_end == at => new_end,
        _ => i
            .checked_sub(1)
            .and_then(|j| ends.get(j))
            .map_or(0, |e| e.1),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::exposition::{check, Format, Labels};
    use crate::relabel::Rules;
    use crate::scrape::pipeline::{process, SeriesCache, Settings};
    use crate::snapshot::latest::tests::with_targets;
    use crate::telemetry::Telemetry;

    /// A target's result as the scrape renders it.
    fn scraped(body: &str) -> Rendered {
        scraped_in(body, Format::Text)
    }

    fn scraped_in(body: &str, format: Format) -> Rendered {
        let target: Labels<'static> = [("instance", "localhost:8001"), ("job", "app")]
            .into_iter()
            .collect();
        let rules = Rules::default();
        let mut rendered = Rendered::default();
        process(
            body.as_bytes(),
            format,
            &Settings {
                honor_labels: true,
                ..Settings::new(&target, &rules)
            },
            &mut SeriesCache::default(),
            &mut rendered,
        )
        .expect("valid");
        rendered
    }

    fn view(labels: &[(&str, &str)], self_metrics: SelfMetrics) -> View {
        View {
            external_labels: labels
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            self_metrics,
        }
    }

    fn text(snapshot: &Snapshot, format: Format) -> String {
        let body = snapshot.body(format, false);
        assert_eq!(check(&body, format), vec![], "{format:?}");
        String::from_utf8_lossy(&body).into_owned()
    }

    /// As /federate: every target series gets the external labels it
    /// lacks; its own label of the same name wins. relay's own series get
    /// none, as Prometheus's own /metrics.
    #[test]
    fn served_series_get_the_external_labels_they_lack() {
        let store = with_targets(1, Arc::new(Telemetry::new()));
        store.publish(
            0,
            Arc::new(scraped(
                "# TYPE shop_orders gauge\nshop_orders 5\nshop_orders{pod=\"own\"} 6\n",
            )),
        );
        store.set_view(view(
            &[("namespace", "prod"), ("pod", "shop-7d9f-abcde")],
            SelfMetrics::WithApp,
        ));
        let snapshot = store.snapshot();
        for format in [Format::Text, Format::OpenMetrics] {
            let body = text(&snapshot, format);
            assert!(
                body.contains("shop_orders{instance=\"localhost:8001\",job=\"app\",namespace=\"prod\",pod=\"shop-7d9f-abcde\"} 5\n"),
                "{body}"
            );
            assert!(
                body.contains("shop_orders{instance=\"localhost:8001\",job=\"app\",pod=\"own\",namespace=\"prod\"} 6\n"),
                "{body}"
            );
            assert!(
                body.contains(&format!(
                    "relay_build_info{{version=\"{}\"}} 1\n",
                    env!("CARGO_PKG_VERSION")
                )),
                "{body}"
            );
        }
    }

    #[test]
    fn lines_split_at_their_braces() {
        let (key, labels, tail) = split_line(b"m{a=\"}{\\\"\"} 1 5\n");
        assert_eq!(key, b"m{");
        assert_eq!(labels, Some(&b"a=\"}{\\\"\""[..]));
        assert_eq!(tail, b" 1 5\n");
        assert_eq!(split_line(b"m 1\n"), (&b"m"[..], None, &b" 1\n"[..]));
    }

    #[test]
    fn label_lists_are_read_past_escapes() {
        let src = br#"a="x,pod=\"y\"",pod="",b="\\",pod2="p""#;
        assert!(!has_label(src, b"pod"));
        assert!(has_label(src, b"a"));
        assert!(has_label(src, b"b"));
        assert!(has_label(src, b"pod2"));
        assert!(!has_label(b"", b"pod"));
        assert!(has_label(br#"pod="p""#, b"pod"));
    }

    /// Exemplars stay on their own lines when the lines grow.
    #[test]
    fn exemplars_stay_with_their_lines_under_external_labels() {
        let r = scraped_in(
            "# TYPE c counter\nc_total{a=\"1\"} 1 # {t=\"x\"} 1 5\nc_total{a=\"2\",pod=\"own\"} 2\nc_total{a=\"3\"} 3 # {t=\"z\"} 3\n# EOF\n",
            Format::OpenMetrics,
        );
        let v = view(&[("pod", "p")], SelfMetrics::Off);
        let snapshot = v.metrics(&[Arc::new(r.clone())], Rendered::default);
        let body = text(&snapshot, Format::OpenMetrics);
        let lines: Vec<&str> = body.lines().filter(|l| l.starts_with("c_")).collect();
        assert_eq!(
            lines,
            [
                "c_total{a=\"1\",instance=\"localhost:8001\",job=\"app\",pod=\"p\"} 1 # {t=\"x\"} 1 5",
                "c_total{a=\"2\",instance=\"localhost:8001\",job=\"app\",pod=\"own\"} 2",
                "c_total{a=\"3\",instance=\"localhost:8001\",job=\"app\",pod=\"p\"} 3 # {t=\"z\"} 3",
            ],
            "{body}"
        );
        assert!(!text(&snapshot, Format::Text).contains(" # {"));
    }

    /// A family's `_created` lines stay with their own series in
    /// OpenMetrics when the lines grow.
    #[test]
    fn created_lines_stay_with_their_series() {
        let r = scraped(
            "# TYPE c counter\nc_total{a=\"1\"} 1\nc_created{a=\"1\"} 100\nc_total{a=\"2\"} 2\nc_created{a=\"2\"} 200\n",
        );
        let v = view(&[("pod", "p")], SelfMetrics::Off);
        let snapshot = v.metrics(&[Arc::new(r.clone())], Rendered::default);
        let body = text(&snapshot, Format::OpenMetrics);
        let lines: Vec<&str> = body.lines().filter(|l| l.starts_with("c_")).collect();
        assert_eq!(
            lines,
            [
                "c_total{a=\"1\",instance=\"localhost:8001\",job=\"app\",pod=\"p\"} 1",
                "c_created{a=\"1\",instance=\"localhost:8001\",job=\"app\",pod=\"p\"} 100",
                "c_total{a=\"2\",instance=\"localhost:8001\",job=\"app\",pod=\"p\"} 2",
                "c_created{a=\"2\",instance=\"localhost:8001\",job=\"app\",pod=\"p\"} 200",
            ],
            "{body}"
        );
    }

    /// `separate`: /metrics has no relay_* or process_*, /relay/metrics
    /// has them; `off`: neither; `with_app`: /metrics has them.
    #[test]
    fn self_metrics_go_where_the_setting_says() {
        let store = with_targets(1, Arc::new(Telemetry::new()));
        store.publish(0, Arc::new(scraped("# TYPE g gauge\ng 1\n")));
        let own = |body: &str| {
            body.lines()
                .filter(|l| l.starts_with("relay_") || l.starts_with("process_"))
                .count()
        };
        for (setting, in_metrics, apart) in [
            (SelfMetrics::WithApp, true, false),
            (SelfMetrics::Separate, false, true),
            (SelfMetrics::Off, false, false),
        ] {
            store.set_view(view(&[], setting));
            let body = text(&store.snapshot(), Format::Text);
            assert!(
                body.contains("g{instance=\"localhost:8001\",job=\"app\"} 1\n"),
                "{body}"
            );
            assert_eq!(own(&body) > 0, in_metrics, "{setting:?} /metrics:\n{body}");
            let separate = store.own_snapshot();
            assert_eq!(separate.is_some(), apart, "{setting:?}");
            if let Some(snapshot) = separate {
                let body = text(&snapshot, Format::Text);
                assert!(own(&body) > 0, "{body}");
                assert!(!body.contains("g{"), "{body}");
                text(&snapshot, Format::OpenMetrics);
            }
        }
    }
}
