//! Reads the WAL in order from a position, following the writer.

use std::fs::File;
use std::io::{self, Read as _, Seek, SeekFrom};
use std::sync::Arc;

use super::record::{known, Record, HEADER, MAX_RECORD};
use super::segment::segment_name;
use super::{Position, Wal};

/// What [`Reader::read_next`] found.
pub enum Next<'a> {
    /// A record, and the position right after it.
    Record(Record<'a>, Position),
    /// The reader moved on to a new segment: refs start over.
    NewSegment(u32),
    /// Nothing more for now; wait for the head to move.
    Pending,
    /// The WAL is closed and everything has been read.
    End,
}

/// Reads the WAL in order from a position, following the writer.
pub struct Reader {
    wal: Arc<Wal>,
    segment: u32,
    offset: u64,
    file: Option<File>,
    buf: Vec<u8>,
}

impl Reader {
    /// A reader at the start of `from`'s segment (the caller skips the
    /// samples before `from` but needs the series described there).
    pub fn new(wal: Arc<Wal>, from: Position) -> Reader {
        Reader {
            wal,
            segment: from.segment,
            offset: 0,
            file: None,
            buf: Vec::new(),
        }
    }

    /// The segment being read.
    pub fn segment(&self) -> u32 {
        self.segment
    }

    /// The next record, or why there is none now.
    pub fn read_next(&mut self) -> Next<'_> {
        let position = loop {
            let first = self.wal.first_segment();
            if self.segment < first {
                tracing::warn!(
                    segment = self.segment,
                    next = first,
                    "WAL segment was dropped before it was sent"
                );
                return self.move_to(first);
            }
            let head = *self.wal.head.borrow();
            let sealed = self.segment < head.segment;
            let limit = if sealed { u64::MAX } else { head.len };
            if self.file.is_none() {
                let path = self.wal.dir.join(segment_name(self.segment));
                match File::open(&path) {
                    Ok(f) => self.file = Some(f),
                    Err(e) if sealed => {
                        tracing::warn!(path = %path.display(), error = %e, "WAL segment is missing; skipping it");
                        return self.move_to(self.segment + 1);
                    }
                    Err(_) => return Next::Pending,
                }
            }
            match self.read_record(limit) {
                Ok(true) if known(self.buf[0]) => {
                    break Position {
                        segment: self.segment,
                        offset: self.offset,
                    };
                }
                Ok(true) => {
                    tracing::warn!(
                        segment = self.segment,
                        kind = self.buf[0],
                        "unknown WAL record type; skipped"
                    );
                }
                Ok(false) if sealed => return self.move_to(self.segment + 1),
                Ok(false) if head.closed => return Next::End,
                Ok(false) => {
                    // Caught up: the record buffer (a whole scrape's samples
                    // for a large one) goes back until the next record.
                    self.buf = Vec::new();
                    return Next::Pending;
                }
                Err(why) => {
                    tracing::warn!(
                        segment = self.segment,
                        offset = self.offset,
                        why,
                        "corrupt WAL record; skipping the rest of the segment"
                    );
                    if sealed {
                        return self.move_to(self.segment + 1);
                    }
                    // The active segment only gets whole records appended:
                    // this is a read error; try again later.
                    self.file = None;
                    return Next::Pending;
                }
            }
        };
        Next::Record(Record::new(self.buf[0], &self.buf[1..]), position)
    }

    fn move_to(&mut self, segment: u32) -> Next<'static> {
        self.segment = segment;
        self.offset = 0;
        self.file = None;
        Next::NewSegment(segment)
    }

    /// Reads the record at the offset into `buf` if it is whole below
    /// `limit`: Ok(false) when there is none (yet), Err when it is corrupt.
    fn read_record(&mut self, limit: u64) -> Result<bool, &'static str> {
        let Some(file) = self.file.as_mut() else {
            return Ok(false);
        };
        if self.offset + HEADER as u64 > limit {
            return Ok(false);
        }
        let mut header = [0u8; 8];
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return Err("seek failed");
        }
        match read_full(file, &mut header) {
            Ok(true) => {}
            Ok(false) => return Ok(false),
            Err(_) => return Err("read failed"),
        }
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if len == 0 || len > MAX_RECORD {
            return Err("bad record length");
        }
        let end = self.offset + 8 + len as u64;
        if end > limit {
            return Ok(false);
        }
        // A sealed segment does not grow: a (corrupt) length past its end
        // is a truncated record, not a reason to allocate up to MAX_RECORD.
        if limit == u64::MAX && file.metadata().is_ok_and(|m| end > m.len()) {
            return Err("truncated record");
        }
        // Sized to the record: growth by doubling would hold up to twice
        // the largest record read until the reader catches up.
        if self.buf.capacity() < len {
            self.buf.clear();
            self.buf.reserve_exact(len);
        }
        self.buf.resize(len, 0);
        match read_full(file, &mut self.buf) {
            Ok(true) => {}
            Ok(false) => return Err("truncated record"),
            Err(_) => return Err("read failed"),
        }
        if crc32c::crc32c(&self.buf) != crc {
            return Err("checksum mismatch");
        }
        self.offset += 8 + len as u64;
        Ok(true)
    }
}

/// Fills `buf`: Ok(false) at end of file before the first byte or midway.
fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<bool> {
    let mut done = 0;
    while done < buf.len() {
        match file.read(&mut buf[done..]) {
            Ok(0) => return Ok(false),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}
