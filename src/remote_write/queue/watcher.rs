//! The queue's watcher of the WAL: reads it in order from the checkpoint,
//! prepares each series once per segment (external labels, write
//! relabeling, encoding) and hands the samples on with their series.

use std::time::Duration;

use tokio::sync::watch;

use super::super::encode::{encode_histogram, Payload, SeriesPrep};
use super::super::series::SeriesTable;
use super::metadata::SharedMetadata;
use crate::storage::SeriesRef;
use crate::wal::{ExemplarIter, Head, HistogramIter, Next, Position, Reader, Record, SampleIter};

/// What a queue sends besides float samples (its `remote_write` options).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Kinds {
    pub(super) exemplars: bool,
    pub(super) histograms: bool,
}

/// The entries of a record to send, each as (ref, timestamp, payload).
pub(super) enum Entries<'r, 's> {
    Floats(SampleIter<'r>),
    Histograms(HistogramIter<'r>),
    Exemplars(ExemplarIter<'r>, &'r mut SeriesPrep<'s>),
}

impl Iterator for Entries<'_, '_> {
    type Item = (SeriesRef, i64, Payload);
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Entries::Floats(it) => it.next().map(|(r, ts, v)| (r, ts, Payload::Float(v))),
            Entries::Histograms(it) => it.next().map(|h| {
                let encoded = encode_histogram(&h.histogram, h.reset_hint, h.timestamp_ms);
                (h.series_ref, h.timestamp_ms, Payload::Histogram(encoded))
            }),
            // An exemplar whose labels do not parse is skipped.
            Entries::Exemplars(it, prep) => it.find_map(|(r, ts, value, labels)| {
                let encoded = prep.exemplar(labels, value, ts)?;
                Some((r, ts, Payload::Exemplar(encoded)))
            }),
        }
    }
}

/// What the watcher read next.
pub(super) enum Read<'r, 's> {
    /// A record of samples, histograms or exemplars to send, with the
    /// series of its segment.
    Samples {
        entries: Entries<'r, 's>,
        series: &'r SeriesTable,
        end: Position,
        /// Written by an earlier process: it may have been delivered already.
        replayed: bool,
    },
    /// A record with nothing to send (series, or samples delivered before
    /// the checkpoint), ending at `end`.
    Absorbed(Position),
    /// A new segment starts: its series are described again.
    NewSegment(u32),
    /// Nothing more for now.
    Pending,
    /// The WAL is closed and everything was read.
    End,
}

pub(super) struct Watcher<'s> {
    reader: Reader,
    head: watch::Receiver<Head>,
    prep: SeriesPrep<'s>,
    series: SeriesTable,
    /// The checkpoint it started from: samples before it were delivered.
    start: Position,
    /// Where this process's own data starts.
    replay_end: Position,
    kinds: Kinds,
    /// Where metadata records go, when the queue sends metadata.
    metadata: Option<SharedMetadata>,
}

impl<'s> Watcher<'s> {
    pub(super) fn new(
        reader: Reader,
        head: watch::Receiver<Head>,
        prep: SeriesPrep<'s>,
        start: Position,
        replay_end: Position,
        kinds: Kinds,
        metadata: Option<SharedMetadata>,
    ) -> Self {
        Watcher {
            reader,
            head,
            prep,
            series: SeriesTable::default(),
            start,
            replay_end,
            kinds,
            metadata,
        }
    }

    /// The next record, series and metadata records taken in.
    pub(super) fn read(&mut self) -> Read<'_, 's> {
        let Watcher {
            reader,
            prep,
            series,
            start,
            replay_end,
            kinds,
            metadata,
            ..
        } = self;
        let (entries, end) = match reader.read_next() {
            Next::Record(Record::Series(entries), end) => {
                for (r, text) in entries {
                    series.insert(r, prep.prepare(text));
                }
                return Read::Absorbed(end);
            }
            Next::Record(Record::Starts(entries), end) => {
                for (r, start) in entries {
                    series.set_start(r, start);
                }
                return Read::Absorbed(end);
            }
            Next::Record(Record::Metadata(entries), end) => {
                if let Some(store) = metadata {
                    let mut store = store
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    for m in entries {
                        store.insert(&m);
                    }
                }
                return Read::Absorbed(end);
            }
            // Delivered before the checkpoint.
            Next::Record(_, end) if end <= *start => return Read::Absorbed(end),
            Next::Record(Record::Samples(entries), end) => (Entries::Floats(entries), end),
            Next::Record(Record::Histograms(entries), end) if kinds.histograms => {
                (Entries::Histograms(entries), end)
            }
            Next::Record(Record::Exemplars(entries), end) if kinds.exemplars => {
                (Entries::Exemplars(entries, prep), end)
            }
            // A kind this queue does not send.
            Next::Record(_, end) => return Read::Absorbed(end),
            Next::NewSegment(segment) => {
                // The next segment describes again the series it uses: the
                // old segment's (a burst's included) are given back.
                series.clear();
                prep.clear_pairs();
                if let Some(store) = metadata {
                    store
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .new_segment();
                }
                return Read::NewSegment(segment);
            }
            Next::Pending => return Read::Pending,
            Next::End => return Read::End,
        };
        Read::Samples {
            entries,
            series,
            end,
            replayed: end <= *replay_end,
        }
    }

    /// Waits for the WAL to grow (or half a second); false when `abort`
    /// turned true.
    pub(super) async fn wait(&mut self, abort: &mut watch::Receiver<bool>) -> bool {
        tokio::select! {
            _ = self.head.changed() => true,
            _ = tokio::time::sleep(Duration::from_millis(500)) => true,
            _ = abort.changed() => !*abort.borrow(),
        }
    }
}
