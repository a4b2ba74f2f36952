//! Family metadata for `metadata_config`: what the WAL's metadata records
//! said about each family (the latest), and the task that sends all of it
//! every `send_interval` in requests of its own, as Prometheus's
//! queue manager sends the metadata its watcher collected.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use tokio::sync::watch;

use super::super::encode::{compress, encode_metadata, write_metadata};
use super::super::encode_v2::{FamilyMetadata as V2Family, MetadataLookup, Sent};
use super::super::send::{Outcome, Sender};
use crate::config::MetadataConfig;
use crate::config::ProtobufMessage;
use crate::exposition::family_suffixes;
use crate::wal::FamilyMetadata;

/// A family's metadata: as 2.0 refers to it (type, help, unit) and as
/// 1.0's encoded `MetricMetadata`, with the generation it was last seen in.
struct Seen {
    kind: u8,
    help: Box<[u8]>,
    unit: Box<[u8]>,
    encoded: Arc<[u8]>,
    generation: u32,
}

/// The families a queue has read metadata for, by name, each with its
/// encoded `MetricMetadata` and the segment generation it was last seen in.
#[derive(Default)]
pub(super) struct MetadataStore {
    families: HashMap<Box<[u8]>, Seen>,
    generation: u32,
}

/// A store shared by the watcher (writes) and the sending task (reads).
pub(super) type SharedMetadata = Arc<Mutex<MetadataStore>>;

impl MetadataStore {
    /// Takes in one entry of a metadata record.
    pub(super) fn insert(&mut self, m: &FamilyMetadata<'_>) {
        if let Some(seen) = self.families.get_mut(m.name) {
            if seen.kind == m.kind && *seen.help == *m.help && *seen.unit == *m.unit {
                seen.generation = self.generation;
                return;
            }
        }
        let seen = Seen {
            kind: m.kind,
            help: m.help.into(),
            unit: m.unit.into(),
            encoded: encode_metadata(m.kind, m.name, m.help, m.unit),
            generation: self.generation,
        };
        match self.families.get_mut(m.name) {
            Some(entry) => *entry = seen,
            None => {
                self.families.insert(m.name.into(), seen);
            }
        }
    }

    /// A new segment is read: every live family is described again in it,
    /// so one not seen in the last two segments (its targets are gone) is
    /// forgotten.
    pub(super) fn new_segment(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        let now = self.generation;
        self.families
            .retain(|_, seen| now.wrapping_sub(seen.generation) <= 1);
    }

    /// Every family's encoded metadata, by name.
    pub(super) fn snapshot(&self) -> Vec<Arc<[u8]>> {
        let mut all: Vec<(&[u8], &Arc<[u8]>)> = self
            .families
            .iter()
            .map(|(name, seen)| (&name[..], &seen.encoded))
            .collect();
        all.sort_unstable_by_key(|(name, _)| *name);
        all.into_iter().map(|(_, m)| m.clone()).collect()
    }
}

impl MetadataLookup for MetadataStore {
    fn family(&self, metric_name: &[u8]) -> Option<V2Family<'_>> {
        let found = self.families.get(metric_name).or_else(|| {
            // As Prometheus's scrape cache looks metadata up: a series'
            // name, else that name with a suffix some type owns stripped.
            family_suffixes().iter().find_map(|suffix| {
                let family = metric_name.strip_suffix(suffix.as_bytes())?;
                self.families.get(family)
            })
        })?;
        Some(V2Family {
            kind: found.kind,
            help: &found.help,
            unit: &found.unit,
        })
    }
}

/// Sends the store's metadata every `send_interval` (the first after one
/// interval), in requests of at most `max_samples_per_send` families, until
/// `abort` turns true. A request refused or given up is not retried beyond
/// what the sender retries: the next interval sends it all again.
pub(super) async fn send_metadata(
    store: SharedMetadata,
    sender: Arc<Sender>,
    config: MetadataConfig,
    mut abort: watch::Receiver<bool>,
) {
    let every = config
        .send_interval
        .as_std()
        .max(std::time::Duration::from_millis(100));
    let per_request = config.max_samples_per_send.max(1);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let mut encoder = snap::raw::Encoder::new();
    let (mut raw, mut compressed) = (Vec::new(), Vec::new());
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = abort.changed() => {
                if changed.is_err() || *abort.borrow() {
                    return;
                }
                continue;
            }
        }
        // A 2.0 queue's series carry their metadata; this task speaks only
        // once it has fallen back to 1.0.
        if sender.protocol() == ProtobufMessage::V2 {
            continue;
        }
        let all = store
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .snapshot();
        for part in all.chunks(per_request) {
            raw.clear();
            write_metadata(part, &mut raw);
            let body = match compress(&mut encoder, &raw, &mut compressed) {
                Ok(body) => Bytes::copy_from_slice(body),
                Err(e) => {
                    tracing::error!(error = %e, "cannot compress a remote-write metadata request");
                    continue;
                }
            };
            match sender
                .send(body, Sent::default(), ProtobufMessage::V1, &mut abort)
                .await
            {
                Outcome::Sent => {}
                Outcome::Rejected {
                    status, message, ..
                } => {
                    tracing::warn!(remote_name = %sender.remote_name(), url = %sender.url_redacted(), status, families = part.len(), response = %message.trim(), "remote write metadata refused; sent again at the next interval");
                }
                Outcome::Aborted => return,
                // Only a 2.0 request falls back; these are 1.0.
                Outcome::FellBack => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn family(name: &'static str, help: &'static str) -> FamilyMetadata<'static> {
        FamilyMetadata {
            kind: 1,
            name: name.as_bytes(),
            help: help.as_bytes(),
            unit: b"",
        }
    }

    #[test]
    fn the_store_keeps_the_latest_per_family_and_forgets_gone_ones() {
        let mut store = MetadataStore::default();
        store.insert(&family("b_total", "old"));
        store.insert(&family("a_total", "x"));
        store.insert(&family("b_total", "new"));
        let want = |names: &[(&str, &str)]| -> Vec<Arc<[u8]>> {
            names
                .iter()
                .map(|(n, h)| encode_metadata(1, n.as_bytes(), h.as_bytes(), b""))
                .collect()
        };
        assert_eq!(
            store.snapshot(),
            want(&[("a_total", "x"), ("b_total", "new")])
        );
        store.new_segment();
        store.insert(&family("a_total", "x"));
        assert_eq!(
            store.snapshot().len(),
            2,
            "b_total was seen one segment ago"
        );
        store.new_segment();
        assert_eq!(store.snapshot(), want(&[("a_total", "x")]));
    }

    #[test]
    fn a_series_finds_its_family_by_name_or_by_a_suffix_stripped() {
        let mut store = MetadataStore::default();
        store.insert(&family("req", "Requests."));
        store.insert(&FamilyMetadata {
            kind: 3,
            name: b"lat_seconds",
            help: b"",
            unit: b"seconds",
        });
        store.insert(&family("odd_total", "own"));
        let got = |name: &str| {
            store
                .family(name.as_bytes())
                .map(|m| (m.kind, m.help.to_vec(), m.unit.to_vec()))
        };
        let req = Some((1, b"Requests.".to_vec(), Vec::new()));
        assert_eq!(got("req"), req);
        assert_eq!(got("req_total"), req);
        assert_eq!(got("req_created"), req);
        let lat = Some((3, Vec::new(), b"seconds".to_vec()));
        for name in ["lat_seconds_bucket", "lat_seconds_count", "lat_seconds_sum"] {
            assert_eq!(got(name), lat, "{name}");
        }
        // A family named with the suffix itself (the text format's counter).
        assert_eq!(got("odd_total"), Some((1, b"own".to_vec(), Vec::new())));
        assert_eq!(got("other_total"), None);
        assert_eq!(got("lat"), None);
    }
}
