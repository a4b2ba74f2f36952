//! The WAL on corrupted segment files. The input is written as two segments:
//! `00000001`, which the reader meets sealed, and `00000002`, the last one,
//! which opening the WAL repairs (cuts after its last whole record). A
//! reader from the start must then yield exactly the records whose frame and
//! CRC are intact, up to the first broken one of each segment, and stop; it
//! must not loop, and no allocation may exceed what the input justifies (a
//! corrupted length field must not make a reader allocate for it).
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use prometheus_client::metrics::{counter::Counter, gauge::Gauge};
use relay::wal::{Next, Position, Reader, Record, Wal};

fuzz_target!(|data: &[u8]| {
    // On tmpfs when there is one: the WAL syncs, and a disk makes that slow.
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .expect("temp dir");
    std::fs::write(dir.path().join("00000001"), data).expect("write segment 1");
    std::fs::write(dir.path().join("00000002"), data).expect("write segment 2");
    // Reading allocates a record's length at most; the input holds it.
    relay_fuzz::limit_allocations(data.len().max(64 << 10) * 4);
    let wal = Wal::open(
        dir.path(),
        1 << 30,
        &[],
        Counter::default(),
        Gauge::default(),
    )
    .expect("the WAL opens whatever its segments hold");
    let (records, valid) = relay_fuzz::wal_records(data);
    let repaired = std::fs::metadata(dir.path().join("00000002"))
        .expect("segment 2 is kept")
        .len();
    assert_eq!(
        repaired, valid as u64,
        "the last segment is cut after its last intact record"
    );
    wal.close();
    let wal = Arc::new(wal);
    let mut want = Vec::new();
    for segment in [1u32, 2] {
        for &(end, kind) in &records {
            if (1..=6).contains(&kind) {
                want.push((segment, end, kind));
            }
        }
    }
    let mut got = Vec::new();
    let mut reader = Reader::new(
        wal,
        Position {
            segment: 1,
            offset: 0,
        },
    );
    for _ in 0..(records.len() * 2 + 16) {
        match reader.read_next() {
            Next::Record(record, at) => {
                let kind = match record {
                    Record::Series(entries) => {
                        for (_, text) in entries {
                            assert!(text.len() <= data.len());
                        }
                        1
                    }
                    Record::Samples(entries) => {
                        entries.count();
                        2
                    }
                    Record::Histograms(entries) => {
                        entries.count();
                        3
                    }
                    Record::Exemplars(entries) => {
                        for (_, _, _, labels) in entries {
                            assert!(labels.len() <= data.len());
                        }
                        4
                    }
                    Record::Metadata(entries) => {
                        entries.count();
                        5
                    }
                    Record::Starts(entries) => {
                        entries.count();
                        6
                    }
                };
                got.push((at.segment, at.offset, kind));
            }
            Next::NewSegment(s) => assert!(s <= 3, "the reader went past the last segment"),
            Next::Pending => panic!("a closed WAL is pending"),
            Next::End => {
                assert_eq!(
                    got, want,
                    "the reader's records differ from the intact ones"
                );
                return;
            }
        }
    }
    panic!("the reader did not reach the end: it loops");
});
