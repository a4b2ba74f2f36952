//! Inputs the fuzz targets (`fuzz/`) found crashing, kept as tests with
//! their fixes. Each test names its target and says what the input was.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use prometheus_client::metrics::{counter::Counter, gauge::Gauge};
use relay::remote_write::wal::{Next, Position, Reader, Wal};

thread_local! {
    /// The largest single allocation this thread made since it was reset.
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

/// The system allocator, noting each thread's largest allocation, so a test
/// can say how much one input made relay allocate.
struct Measured;

// SAFETY: forwards to the system allocator unchanged.
unsafe impl GlobalAlloc for Measured {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

#[global_allocator]
static GLOBAL: Measured = Measured;

/// Target `wal`: a 25-byte segment whose first record claims a length of
/// 62 MiB (under the 64 MiB cap on a record). The reader allocated the whole
/// claimed length before finding the file too short; now it sees that the
/// record runs past the end of its sealed segment without allocating it.
#[test]
fn a_huge_record_length_in_a_short_sealed_segment_is_not_allocated() {
    let segment: [u8; 25] = [
        0x00, 0x00, 0xc0, 0x03, 0, 0, 0, 0, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    // Opening the WAL repairs only the last segment (2) and starts segment 3:
    // segment 1 is read as written, sealed.
    std::fs::write(dir.path().join("00000001"), segment).expect("writes");
    std::fs::write(dir.path().join("00000002"), b"").expect("writes");
    let wal = Wal::open(
        dir.path(),
        1 << 30,
        &[],
        Counter::default(),
        Gauge::default(),
    )
    .expect("opens");
    wal.close();
    let mut reader = Reader::new(
        Arc::new(wal),
        Position {
            segment: 1,
            offset: 0,
        },
    );
    LARGEST.with(|l| l.set(0));
    let mut seen = Vec::new();
    for _ in 0..10 {
        match reader.read_next() {
            Next::Record(_, at) => seen.push(format!("record ending at {at:?}")),
            Next::NewSegment(s) => seen.push(format!("segment {s}")),
            Next::Pending => seen.push("pending".into()),
            Next::End => break,
        }
    }
    let largest = LARGEST.with(Cell::get);
    assert_eq!(
        seen,
        vec!["segment 2", "segment 3"],
        "no record in the corrupt segment"
    );
    assert!(
        largest < 1 << 20,
        "reading a 25-byte segment allocated {largest} bytes at once"
    );
}
