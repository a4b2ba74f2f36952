//! Cardinality as Prometheus's `/api/v1/status/tsdb` reports it, from the
//! series relay holds: each target's series cache (the series its last
//! successful scrape appended), read on request. Like Prometheus's
//! in-memory postings, [`Postings`] counts series per label name and
//! value (`__name__` included); every list of the answer derives from it.
//! `memoryInBytesByLabelName` is Prometheus 2.42's measure (the bytes of a
//! label's values times their series), not relay's memory.

use std::collections::HashMap;

use crate::exposition::parse::{Entry, Parser};
use crate::exposition::{Format, Labels};

/// Series counts by label name, then by value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Postings {
    /// How many series were counted.
    pub series: u64,
    names: HashMap<String, HashMap<String, u64>>,
}

/// One entry of a top list (`{"name": ..., "value": ...}`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Stat {
    /// A metric name, a label name, or `name=value`.
    pub name: String,
    /// Series, values or bytes, as the list counts.
    pub value: u64,
}

/// The four top lists of `/api/v1/status/tsdb`, and the number of label
/// pairs (`headStats.numLabelPairs`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TopLists {
    /// Distinct `name=value` pairs over all series.
    pub num_label_pairs: u64,
    pub series_count_by_metric_name: Vec<Stat>,
    pub label_value_count_by_label_name: Vec<Stat>,
    pub memory_in_bytes_by_label_name: Vec<Stat>,
    pub series_count_by_label_value_pair: Vec<Stat>,
}

impl Postings {
    /// The postings of `series`, each a series as relay renders it in text
    /// format (`name{a="b",...}`); one that does not parse is left out.
    pub fn of<S: AsRef<str>>(series: impl IntoIterator<Item = S>) -> Postings {
        let mut postings = Postings::default();
        let mut line = Vec::new();
        for text in series {
            line.clear();
            line.extend_from_slice(text.as_ref().as_bytes());
            line.extend_from_slice(b" 0\n");
            let Some(Ok(Entry::Sample(sample))) = Parser::new(&line, Format::Text).next() else {
                continue;
            };
            let mut labels = Labels::with_capacity(16);
            sample.labels_into(&mut labels);
            postings.series += 1;
            for label in labels.iter() {
                // Names and values repeat across series: allocated once.
                let (name, value) = (label.name.as_ref(), label.value.as_ref());
                if !postings.names.contains_key(name) {
                    postings.names.insert(name.to_owned(), HashMap::new());
                }
                let Some(values) = postings.names.get_mut(name) else {
                    continue;
                };
                match values.get_mut(value) {
                    Some(n) => *n += 1,
                    None => {
                        values.insert(value.to_owned(), 1);
                    }
                }
            }
        }
        postings
    }

    /// Adds `other`'s series (another target's).
    pub fn merge(&mut self, other: &Postings) {
        self.series += other.series;
        for (name, values) in &other.names {
            let mine = self.names.entry(name.clone()).or_default();
            for (value, n) in values {
                *mine.entry(value.clone()).or_default() += n;
            }
        }
    }

    /// The top `limit` of each list, largest first (ties by name), as
    /// Prometheus's `MemPostings.Stats` computes them.
    pub fn top(&self, limit: usize) -> TopLists {
        let mut lists = TopLists::default();
        let (mut metrics, mut labels, mut bytes, mut pairs) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (name, values) in &self.names {
            lists.num_label_pairs += values.len() as u64;
            labels.push(stat(name, values.len() as u64));
            let mut size = 0;
            for (value, n) in values {
                if name == crate::exposition::METRIC_NAME {
                    metrics.push(stat(value, *n));
                }
                pairs.push(stat(&format!("{name}={value}"), *n));
                size += value.len() as u64 * n;
            }
            bytes.push(stat(name, size));
        }
        lists.series_count_by_metric_name = largest(metrics, limit);
        lists.label_value_count_by_label_name = largest(labels, limit);
        lists.memory_in_bytes_by_label_name = largest(bytes, limit);
        lists.series_count_by_label_value_pair = largest(pairs, limit);
        lists
    }
}

fn stat(name: &str, value: u64) -> Stat {
    Stat {
        name: name.to_owned(),
        value,
    }
}

fn largest(mut stats: Vec<Stat>, limit: usize) -> Vec<Stat> {
    stats.sort_by(|a, b| b.value.cmp(&a.value).then_with(|| a.name.cmp(&b.name)));
    stats.truncate(limit);
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_series_by_name_label_and_pair_as_prometheus() {
        let a = Postings::of([
            r#"http_requests_total{code="200",job="app"}"#,
            r#"http_requests_total{code="500",job="app"}"#,
            r#"up{job="app"}"#,
            "not a series{",
        ]);
        assert_eq!(a.series, 3);
        let b = Postings::of([r#"other{job="db"}"#]);
        let mut all = a.clone();
        all.merge(&b);
        let top = all.top(10);
        assert_eq!(all.series, 4);
        assert_eq!(
            top.series_count_by_metric_name,
            vec![
                stat("http_requests_total", 2),
                stat("other", 1),
                stat("up", 1)
            ]
        );
        assert_eq!(
            top.label_value_count_by_label_name,
            vec![stat("__name__", 3), stat("code", 2), stat("job", 2)]
        );
        // job: "app" (3 bytes) × 3 series + "db" × 1.
        assert_eq!(top.memory_in_bytes_by_label_name[1], stat("job", 11));
        assert_eq!(top.series_count_by_label_value_pair[0], stat("job=app", 3));
        assert_eq!(top.num_label_pairs, 3 + 2 + 2);
        assert_eq!(all.top(1).series_count_by_label_value_pair.len(), 1);
    }
}
