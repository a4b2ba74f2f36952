//! A merged body's text as pieces: runs of the targets' rendered lines,
//! shared rather than copied, between lines of its own (HELP/TYPE headers).
//! A copy would be a second whole text of every target beside the one its
//! scrape rendered; with a million series that is 120 MB more for as long as
//! the snapshot is served. Offsets are into the pieces joined, as if they
//! were one buffer; the pieces break only at line starts.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;

use super::sink::Rendered;

/// The text of a merged body (see the module doc).
#[derive(Debug, Clone, Default)]
pub struct Text {
    pieces: Vec<Bytes>,
    /// Where each piece ends in the pieces joined.
    ends: Vec<usize>,
}

impl Text {
    /// Bytes in all.
    pub fn len(&self) -> usize {
        self.ends.last().copied().unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The pieces in order (a gzip or a response is written from them).
    pub fn pieces(&self) -> &[Bytes] {
        &self.pieces
    }

    /// The piece `at` is in, and where that piece starts.
    fn piece_at(&self, at: usize) -> Option<(usize, usize)> {
        let i = self.ends.partition_point(|&end| end <= at);
        let start = i.checked_sub(1).map_or(0, |p| self.ends[p]);
        (i < self.pieces.len()).then_some((i, start))
    }

    /// The bytes at `range`, borrowed when one piece holds them (a family's
    /// lines from one target always are); None past the end.
    pub fn get(&self, range: Range<usize>) -> Option<Cow<'_, [u8]>> {
        if range.end > self.len() || range.start > range.end {
            return None;
        }
        if range.is_empty() {
            return Some(Cow::Borrowed(&[]));
        }
        let (i, start) = self.piece_at(range.start)?;
        if range.end <= self.ends[i] {
            return Some(Cow::Borrowed(
                &self.pieces[i][range.start - start..range.end - start],
            ));
        }
        let mut out = Vec::with_capacity(range.len());
        self.slices(range).for_each(|s| out.extend_from_slice(&s));
        Some(Cow::Owned(out))
    }

    /// The bytes at `range` as slices of the pieces, no byte copied (none
    /// past the end).
    pub fn slices(&self, range: Range<usize>) -> impl Iterator<Item = Bytes> + '_ {
        let first = match range.end <= self.len() && !range.is_empty() {
            true => self.piece_at(range.start),
            false => None,
        };
        let mut next = first.map(|(i, start)| (i, range.start - start));
        std::iter::from_fn(move || {
            let (i, from) = next?;
            let (piece, end) = (&self.pieces[i], self.ends[i]);
            let start = end - piece.len();
            let to = range.end.min(end) - start;
            next = (range.end > end).then_some((i + 1, 0));
            Some(piece.slice(from..to))
        })
    }

    /// The pieces joined: one piece is shared as it is.
    pub fn joined(&self) -> Bytes {
        match self.pieces.as_slice() {
            [] => Bytes::new(),
            [one] => one.clone(),
            many => Bytes::from(many.concat()),
        }
    }

    /// Whether any piece holds `needle` (which must not hold a newline: the
    /// pieces break only at line starts).
    pub fn contains(&self, needle: &[u8]) -> bool {
        self.pieces
            .iter()
            .any(|p| memchr::memmem::find(p, needle).is_some())
    }
}

/// A target's lines to share: its rendered text or its `_created` lines.
struct Lines {
    rendered: Arc<Rendered>,
    created: bool,
}

impl AsRef<[u8]> for Lines {
    fn as_ref(&self) -> &[u8] {
        match self.created {
            false => &self.rendered.text,
            true => &self.rendered.created,
        }
    }
}

/// The buffers of `rendered` that a [`Builder`] may share lines of.
pub fn owners_of(rendered: &Arc<Rendered>) -> [Bytes; 2] {
    [false, true].map(|created| {
        Bytes::from_owner(Lines {
            rendered: rendered.clone(),
            created,
        })
    })
}

/// A [`Text`] being written: bytes of its own, and runs of lines shared
/// from `owners` (next to each other in one owner: one piece).
pub struct Builder {
    owners: Vec<Bytes>,
    done: Vec<Bytes>,
    ends: Vec<usize>,
    own: Vec<u8>,
    /// A shared run not yet closed: owner and range.
    run: Option<(usize, Range<usize>)>,
    len: usize,
}

impl Builder {
    pub fn new(owners: Vec<Bytes>) -> Builder {
        Builder {
            owners,
            done: Vec::new(),
            ends: Vec::new(),
            own: Vec::new(),
            run: None,
            len: 0,
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len + self.own.len() + self.run.as_ref().map_or(0, |(_, r)| r.len())
    }

    /// Where to write bytes of its own.
    pub fn own(&mut self) -> &mut Vec<u8> {
        self.close_run();
        &mut self.own
    }

    /// `lines` shared if an owner holds them, copied if none does.
    pub fn share(&mut self, lines: &[u8]) {
        if lines.is_empty() {
            return;
        }
        let at = lines.as_ptr() as usize;
        let owner = self.owners.iter().position(|o| {
            let start = o.as_ptr() as usize;
            at >= start && at + lines.len() <= start + o.len()
        });
        let Some(owner) = owner else {
            self.own().extend_from_slice(lines);
            return;
        };
        let start = at - self.owners[owner].as_ptr() as usize;
        let range = start..start + lines.len();
        match &mut self.run {
            Some((o, run)) if *o == owner && run.end == range.start => run.end = range.end,
            _ => {
                self.close_run();
                self.close_own();
                self.run = Some((owner, range));
            }
        }
    }

    fn push(&mut self, piece: Bytes) {
        self.len += piece.len();
        self.ends.push(self.len);
        self.done.push(piece);
    }

    fn close_own(&mut self) {
        if !self.own.is_empty() {
            let own = Bytes::from(std::mem::take(&mut self.own));
            self.push(own);
        }
    }

    fn close_run(&mut self) {
        if let Some((owner, range)) = self.run.take() {
            let piece = self.owners[owner].slice(range);
            self.push(piece);
        }
    }

    pub fn finish(mut self) -> Text {
        self.close_run();
        self.close_own();
        Text {
            pieces: self.done,
            ends: self.ends,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(text: &str) -> Arc<Rendered> {
        let mut r = Rendered::default();
        r.text = text.as_bytes().to_vec();
        Arc::new(r)
    }

    #[test]
    fn lines_are_shared_and_runs_next_to_each_other_are_one_piece() {
        let r = rendered("a 1\nb 2\nc 3\n");
        let mut b = Builder::new(owners_of(&r).to_vec());
        b.own().extend_from_slice(b"# TYPE a gauge\n");
        b.share(&r.text[0..4]);
        b.share(&r.text[4..8]);
        b.own().extend_from_slice(b"# TYPE c gauge\n");
        b.share(&r.text[8..12]);
        b.share(b"d 4\n");
        assert_eq!(b.len(), 15 + 8 + 15 + 4 + 4);
        let text = b.finish();
        assert_eq!(
            &text.joined()[..],
            b"# TYPE a gauge\na 1\nb 2\n# TYPE c gauge\nc 3\nd 4\n"
        );
        // header, a+b, header, c, d (copied: no owner holds it).
        assert_eq!(text.pieces().len(), 5);
        let shared = r.text.as_ptr_range();
        assert!(shared.contains(&text.pieces()[1].as_ptr()));
        assert_eq!(&text.pieces()[1][..], b"a 1\nb 2\n");
        assert!(!shared.contains(&text.pieces()[4].as_ptr()));
        assert_eq!(
            Arc::strong_count(&r),
            2,
            "one owner kept by the shared pieces"
        );
        drop(text);
        assert_eq!(Arc::strong_count(&r), 1);
    }

    #[test]
    fn ranges_across_pieces_are_joined_and_within_one_borrowed() {
        let r = rendered("x 1\ny 2\n");
        let mut b = Builder::new(owners_of(&r).to_vec());
        b.own().extend_from_slice(b"# h\n");
        b.share(&r.text);
        b.own().extend_from_slice(b"# e\n");
        let text = b.finish();
        assert_eq!(text.len(), 16);
        assert!(matches!(text.get(4..8), Some(Cow::Borrowed(b"x 1\n"))));
        assert!(matches!(text.get(2..10), Some(Cow::Owned(v)) if v == b"h\nx 1\ny ".to_vec()));
        assert_eq!(text.get(0..17), None);
        let slices: Vec<Bytes> = text.slices(2..14).collect();
        assert_eq!(slices, [&b"h\n"[..], b"x 1\ny 2\n", b"# "]);
        assert_eq!(text.slices(0..0).count(), 0);
        assert!(text.contains(b"y 2"));
        assert!(!text.contains(b"z"));
    }
}
