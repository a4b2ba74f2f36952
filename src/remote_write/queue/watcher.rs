//! The queue's watcher of the WAL: reads it in order from the checkpoint,
//! prepares each series once per segment (external labels, write
//! relabeling, encoding) and hands the samples on with their series.

use std::time::Duration;

use tokio::sync::watch;

use super::super::encode::SeriesPrep;
use super::super::series::SeriesTable;
use crate::wal::{Head, Next, Position, Reader, Record, SampleIter};

/// What the watcher read next.
pub(super) enum Read<'r> {
    /// A samples record to send, with the series of its segment.
    Samples {
        entries: SampleIter<'r>,
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
}

impl<'s> Watcher<'s> {
    pub(super) fn new(
        reader: Reader,
        head: watch::Receiver<Head>,
        prep: SeriesPrep<'s>,
        start: Position,
        replay_end: Position,
    ) -> Self {
        Watcher {
            reader,
            head,
            prep,
            series: SeriesTable::default(),
            start,
            replay_end,
        }
    }

    /// The next record, series records taken in.
    pub(super) fn read(&mut self) -> Read<'_> {
        let Watcher {
            reader,
            prep,
            series,
            start,
            replay_end,
            ..
        } = self;
        match reader.read_next() {
            Next::Record(Record::Series(entries), end) => {
                for (r, text) in entries {
                    series.insert(r, prep.prepare(text));
                }
                Read::Absorbed(end)
            }
            Next::Record(Record::Samples(_), end) if end <= *start => Read::Absorbed(end),
            Next::Record(Record::Samples(entries), end) => Read::Samples {
                entries,
                series,
                end,
                replayed: end <= *replay_end,
            },
            Next::NewSegment(segment) => {
                // The next segment describes again the series it uses: the
                // old segment's (a burst's included) are given back.
                series.clear();
                prep.clear_pairs();
                Read::NewSegment(segment)
            }
            Next::Pending => Read::Pending,
            Next::End => Read::End,
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
