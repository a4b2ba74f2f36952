//! What a scraper of relay's port sees, beyond the targets' series: relay's
//! `/metrics` is to a sidecar what Prometheus's `/federate` is to a server,
//! so, as `/federate` does (web/federate.go), every served series gets
//! `global.external_labels` it does not have itself (a series' own label of
//! the same name wins). A central Prometheus with `honor_labels: true` then
//! keeps the app's `job`/`instance` and tells Pods apart by the external
//! labels (`pod`, `namespace`), so replicas never merge into one series.
//! Unlike `/federate`, no `instance=""` is added: every target series has
//! an `instance`, and relay's own series are better filed under the
//! central's `instance` of the relay target than under none.
//!
//! Also where relay's own metrics go (`relay.self_metrics`).

use crate::config::SelfMetrics;
use crate::exposition::{render, Entry, Format, Labels, Parser};
use crate::scrape::merge;
use crate::scrape::pipeline::Rendered;
use crate::serve::Snapshot;

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

    /// `/metrics`: the targets' results, then relay's own metrics (`own`)
    /// when they are served with the app's, each series with the external
    /// labels it lacks.
    pub fn metrics(&self, outputs: &[&Rendered], own: impl FnOnce() -> Rendered) -> Snapshot {
        let own = (self.self_metrics == SelfMetrics::WithApp).then(own);
        let all: Vec<&Rendered> = outputs.iter().copied().chain(own.as_ref()).collect();
        self.snapshot(&all)
    }

    /// `/relay/metrics`: relay's own metrics alone, None unless
    /// `relay.self_metrics` is `separate`.
    pub fn own_metrics(&self, own: impl FnOnce() -> Rendered) -> Option<Snapshot> {
        (self.self_metrics == SelfMetrics::Separate).then(|| self.snapshot(&[&own()]))
    }

    fn snapshot(&self, all: &[&Rendered]) -> Snapshot {
        if self.external_labels.is_empty() {
            let (text, layout) = merge::merge(all);
            return Snapshot::new(text, layout);
        }
        let labelled: Vec<Rendered> = all.iter().map(|r| self.labelled(r)).collect();
        let refs: Vec<&Rendered> = labelled.iter().collect();
        let (text, layout) = merge::merge(&refs);
        Snapshot::new(text, layout)
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
        let mut labels = Labels::new();
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
            for entry in Parser::new(lines, Format::Text) {
                match entry {
                    Ok(Entry::Sample(s)) => {
                        labels.clear();
                        s.labels_into(&mut labels);
                        for (name, value) in &self.external_labels {
                            if labels.get(name).is_none_or(str::is_empty) {
                                labels.set(name.as_str(), value.as_str());
                            }
                        }
                        labels.sort();
                        render::series(buffer, &labels);
                        render::sample_tail(buffer, Format::Text, s.value, s.timestamp_ms);
                        if !created {
                            let old = s.name.as_ptr() as usize - lines.as_ptr() as usize;
                            block_ends.push((old, buffer.len() - start));
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::error!(error = %e, "cannot add the external labels to a served line; left out");
                    }
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
        out
    }
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
    use crate::exposition::check;
    use crate::relabel::Rules;
    use crate::scrape::pipeline::{process, SeriesCache, Settings};
    use crate::scrape::store::Store;

    /// A target's result as the scrape renders it.
    fn scraped(body: &str) -> Rendered {
        let target: Labels<'static> = [("instance", "localhost:8001"), ("job", "app")]
            .into_iter()
            .collect();
        let rules = Rules::default();
        let mut rendered = Rendered::default();
        process(
            body.as_bytes(),
            Format::Text,
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

    /// As /federate: every series gets the external labels it lacks; its
    /// own label of the same name wins.
    #[test]
    fn served_series_get_the_external_labels_they_lack() {
        let store = Store::new(vec!["app/localhost:8001".into()]);
        store.publish(
            0,
            Arc::new(scraped(
                "# TYPE shop_orders gauge\nshop_orders 5\nshop_orders{pod=\"own\"} 6\n",
            )),
        );
        store.set_view(view(
            &[("pod", "shop-7d9f-abcde"), ("namespace", "prod")],
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
                body.contains("shop_orders{instance=\"localhost:8001\",job=\"app\",namespace=\"prod\",pod=\"own\"} 6\n"),
                "{body}"
            );
            assert!(
                body.contains(
                    "relay_build_info{namespace=\"prod\",pod=\"shop-7d9f-abcde\",version="
                ),
                "{body}"
            );
        }
    }

    /// A family's `_created` lines stay with their own series in
    /// OpenMetrics when the lines grow.
    #[test]
    fn created_lines_stay_with_their_series() {
        let r = scraped(
            "# TYPE c counter\nc_total{a=\"1\"} 1\nc_created{a=\"1\"} 100\nc_total{a=\"2\"} 2\nc_created{a=\"2\"} 200\n",
        );
        let v = view(&[("pod", "p")], SelfMetrics::Off);
        let snapshot = v.metrics(&[&r], Rendered::default);
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
        let store = Store::new(vec!["app/localhost:8001".into()]);
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
