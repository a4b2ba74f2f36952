//! Each queue's checkpoint: the position it has delivered up to, one small
//! file per queue, written to a temporary file and renamed over the old one.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::PoisonError;

use super::segment::sync_dir;
use super::{Position, Wal, WalError};

impl Wal {
    pub(super) fn checkpoint_path(&self, queue: &str) -> PathBuf {
        checkpoint_file(&self.dir, queue)
    }

    /// Gives the checkpoint saved under queue `from` to queue `to` when
    /// `to` has none (a queue whose name changed resumes where it was,
    /// nothing resent or skipped); Ok(true) when it did. Called before the
    /// WAL is opened with `to`, or before `to` is registered.
    pub fn adopt_checkpoint(dir: &Path, from: &str, to: &str) -> Result<bool, WalError> {
        let (old, new) = (checkpoint_file(dir, from), checkpoint_file(dir, to));
        let err = |path: &Path| {
            let path = path.to_owned();
            move |source| WalError::Checkpoint { path, source }
        };
        if new.try_exists().map_err(err(&new))? || !old.try_exists().map_err(err(&old))? {
            return Ok(false);
        }
        fs::rename(&old, &new).map_err(err(&old))?;
        sync_dir(&dir.join("checkpoints"));
        Ok(true)
    }

    pub(super) fn read_checkpoint(&self, queue: &str) -> Result<Option<Position>, WalError> {
        let path = self.checkpoint_path(queue);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(WalError::Checkpoint { path, source }),
        };
        let mut parts = text.split_whitespace().map(str::parse::<u64>);
        match (parts.next(), parts.next()) {
            (Some(Ok(segment)), Some(Ok(offset))) => Ok(Some(Position {
                segment: u32::try_from(segment).unwrap_or(u32::MAX),
                offset,
            })),
            _ => {
                tracing::warn!(path = %path.display(), "unreadable checkpoint; resending the whole WAL");
                Ok(Some(Position::default()))
            }
        }
    }

    /// Records that `queue` has delivered everything before `position`
    /// (written to a temporary file, then renamed over the old one).
    pub fn save_checkpoint(&self, queue: &str, position: Position) -> Result<(), WalError> {
        // Held across the write and the rename: two savers of one queue (its
        // saver task and its stop) would otherwise share the temporary file,
        // and the second rename would find it gone.
        let mut saved = self
            .checkpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Unchanged (a receiver outage, an idle queue): nothing to write.
        if saved.get(queue) == Some(&position) {
            return Ok(());
        }
        let path = self.checkpoint_path(queue);
        let tmp = path.with_extension("tmp");
        let err = |source| WalError::Checkpoint {
            path: path.clone(),
            source,
        };
        fs::write(&tmp, format!("{} {}\n", position.segment, position.offset)).map_err(err)?;
        fs::rename(&tmp, &path).map_err(err)?;
        saved.insert(queue.to_owned(), position);
        Ok(())
    }

    /// Adds a queue (at start, or when a reload adds it) and says where it
    /// resumes: its saved checkpoint when there is one on disk (clamped to
    /// the segments there are), else the start of the active segment. The
    /// checkpoint is written now, so a crash before its first delivery
    /// still resends from here.
    pub fn register(&self, queue: &str) -> Result<Position, WalError> {
        let active = self.epoch.load(Ordering::Acquire);
        let first = self.first_segment();
        let position = match self.read_checkpoint(queue)? {
            Some(p) if p.segment > active => {
                tracing::warn!(queue = %queue, segment = p.segment, "checkpoint is past the end of the WAL; starting at the active segment");
                Position {
                    segment: active,
                    offset: 0,
                }
            }
            Some(p) if p.segment >= first => p,
            Some(p) => {
                tracing::warn!(queue = %queue, segment = p.segment, "checkpoint is older than the WAL; starting at its oldest segment");
                Position {
                    segment: first,
                    offset: 0,
                }
            }
            None => Position {
                segment: active,
                offset: 0,
            },
        };
        self.save_checkpoint(queue, position)?;
        Ok(position)
    }

    /// A queue a reload removed no longer holds segments back (its
    /// checkpoint file stays, should the entry come back).
    pub fn unregister(&self, queue: &str) {
        self.checkpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(queue);
        self.truncate();
    }

    /// Where `queue` resumes: everything before it was delivered.
    pub fn checkpoint(&self, queue: &str) -> Position {
        self.checkpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(queue)
            .copied()
            .unwrap_or_default()
    }

    /// The position the slowest queue has delivered up to.
    pub(super) fn slowest(&self) -> Option<Position> {
        self.checkpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .min()
            .copied()
    }
}

/// A queue's checkpoint file: its name with anything but letters, digits,
/// `-` and `_` percent-encoded (any `remote_write.name` is valid).
pub(super) fn checkpoint_file(dir: &Path, queue: &str) -> PathBuf {
    let mut file = String::with_capacity(queue.len());
    for b in queue.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            file.push(char::from(b));
        } else {
            file.push_str(&format!("%{b:02X}"));
        }
    }
    dir.join("checkpoints").join(file)
}
