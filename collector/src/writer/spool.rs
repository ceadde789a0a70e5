//! The spool: an on-disk, append-only log of accepted batches between the queue and the store.
//!
//! Every accepted batch is appended here and fsynced before its requests are answered 202, so
//! an acknowledged event survives a crash of the collector. The store task reads the spool in
//! order, writes to the store, and deletes a segment once the store has acknowledged all of it.
//!
//! Layout: `<data dir>/spool/<sequence>.seg` (20 digits, so names sort in order). A segment is
//! a run of records, each
//! `[payload length: u32 LE][checksum: first 8 bytes of blake3(payload)][payload]`, where the
//! payload is the batch id (u64 LE), a format byte (1: postcard) and the batch's rows. A
//! process appends only to a segment it created itself, and starts a new one at start, so a
//! torn write at a crash can only be a segment's tail. A record whose length runs past the end of its file, or whose checksum
//! does not match, ends the readable part of that segment: what came before is replayed, and the
//! rest is moved aside to `<sequence>.seg.corrupt` and reported.

use std::fs::{self, File, OpenOptions};
use std::io::{Read as _, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use crate::store::EventRow;

/// The largest segment before a new one is started.
pub const SEGMENT_BYTES: u64 = 8 * 1024 * 1024;
/// The largest record, so a corrupt length cannot ask for gigabytes.
const MAX_RECORD_BYTES: u32 = 256 * 1024 * 1024;
const HEADER_BYTES: u64 = 12;
/// The first payload byte after the batch id: how the rows are encoded.
const FORMAT_POSTCARD: u8 = 1;
/// Rows as a JSON array, as the first development builds wrote them; still read.
const FORMAT_JSON: u8 = b'[';

/// Decodes a record's rows by their format byte.
fn decode_rows(encoded: &[u8]) -> Result<Vec<EventRow>, String> {
    match encoded.first() {
        Some(&FORMAT_POSTCARD) => {
            postcard::from_bytes(&encoded[1..]).map_err(|e| format!("unreadable rows: {e}"))
        }
        Some(&FORMAT_JSON) => {
            serde_json::from_slice(encoded).map_err(|e| format!("unreadable rows: {e}"))
        }
        Some(other) => Err(format!(
            "rows in an unknown format {other} (written by a newer Footfall?)"
        )),
        None => Err("a record without its rows".into()),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("the spool is full ({used} of {max} bytes)")]
    Full { used: u64, max: u64 },
    #[error("spool file problem: {0}")]
    Io(#[from] std::io::Error),
}

/// One accepted batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub batch_id: u64,
    pub rows: Vec<EventRow>,
}

/// Where a reader is: a segment and a byte offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
}

/// What reading the next record found.
#[derive(Debug)]
pub enum Next {
    /// A record and the position after it.
    Record(Record, Position),
    /// Nothing more to read yet.
    End,
}

/// A segment's unreadable tail, moved aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corruption {
    pub segment: u64,
    pub offset: u64,
    pub bytes: u64,
    pub reason: String,
}

pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    /// Sizes of the segments on disk, oldest first.
    segments: Vec<(u64, u64)>,
    /// The segment being appended to, opened by this process.
    current: Option<File>,
    /// Tails found corrupt while reading, not yet reported.
    corruptions: Vec<Corruption>,
    /// The sequence number of the next segment: never reused, so positions only grow.
    next_seq: u64,
}

fn segment_name(seq: u64) -> String {
    format!("{seq:020}.seg")
}

fn checksum(payload: &[u8]) -> [u8; 8] {
    let hash = blake3::hash(payload);
    let mut out = [0u8; 8];
    out.copy_from_slice(&hash.as_bytes()[..8]);
    out
}

/// Deletes the damaged tails set aside in `dir` (`*.seg.corrupt`) last written before
/// `before`: they hold event rows, which live no longer than raw events. Returns how many.
pub fn delete_set_aside_before(
    dir: &Path,
    before: std::time::SystemTime,
) -> std::io::Result<usize> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut deleted = 0;
    for entry in entries {
        let entry = entry?;
        let is_aside = entry
            .file_name()
            .to_string_lossy()
            .ends_with(".seg.corrupt");
        if is_aside && entry.metadata()?.modified()? < before {
            fs::remove_file(entry.path())?;
            deleted += 1;
        }
    }
    if deleted > 0 {
        sync_dir(dir)?;
    }
    Ok(deleted)
}

/// Makes a directory entry's creation or removal durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Spool {
    /// Opens (or creates) the spool in `dir`, holding at most `max_bytes`.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Spool, SpoolError> {
        crate::store::files::create_private_dir(dir)?;
        let mut segments = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(seq) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".seg"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            segments.push((seq, entry.metadata()?.len()));
        }
        segments.sort_unstable();
        let next_seq = segments.last().map_or(1, |s| s.0 + 1);
        Ok(Spool {
            next_seq,
            dir: dir.to_path_buf(),
            max_bytes,
            segments,
            current: None,
            corruptions: Vec::new(),
        })
    }

    /// Bytes on disk.
    pub fn used_bytes(&self) -> u64 {
        self.segments.iter().map(|(_, len)| len).sum()
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// The end of what is on disk now.
    pub fn end(&self) -> Position {
        self.segments.last().map_or(
            Position {
                segment: self.next_seq,
                offset: 0,
            },
            |&(segment, offset)| Position { segment, offset },
        )
    }

    /// Where reading starts: the oldest segment's beginning.
    pub fn start(&self) -> Position {
        Position {
            segment: self.segments.first().map_or(self.next_seq, |s| s.0),
            offset: 0,
        }
    }

    /// Whether no segment is on disk.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// Appends a batch and makes it durable; refuses it when the spool would grow past its
    /// limit. Returns where the record starts and where the next one will.
    pub fn append(&mut self, record: &Record) -> Result<(Position, Position), SpoolError> {
        let mut payload = Vec::with_capacity(9 + 256 * record.rows.len());
        payload.extend_from_slice(&record.batch_id.to_le_bytes());
        payload.push(FORMAT_POSTCARD);
        let payload = postcard::to_extend(&record.rows, payload).map_err(std::io::Error::other)?;
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|l| *l <= MAX_RECORD_BYTES)
            .ok_or_else(|| std::io::Error::other("a batch too large for one spool record"))?;
        let size = HEADER_BYTES + u64::from(len);
        let used = self.used_bytes();
        if used + size > self.max_bytes {
            return Err(SpoolError::Full {
                used,
                max: self.max_bytes,
            });
        }
        let roll = match (self.current.as_ref(), self.segments.last()) {
            (Some(_), Some((_, len))) => len + size > SEGMENT_BYTES && *len > 0,
            _ => true,
        };
        if roll {
            let seq = self.next_seq;
            self.next_seq += 1;
            let file = OpenOptions::new()
                .create_new(true)
                .append(true)
                .mode(0o600)
                .open(self.dir.join(segment_name(seq)))?;
            sync_dir(&self.dir)?;
            self.segments.push((seq, 0));
            self.current = Some(file);
        }
        let file = self.current.as_mut().expect("a segment was opened above");
        let mut buf = Vec::with_capacity(size as usize);
        buf.extend_from_slice(&len.to_le_bytes());
        buf.extend_from_slice(&checksum(&payload));
        buf.extend_from_slice(&payload);
        file.write_all(&buf)?;
        file.sync_data()?;
        let last = self
            .segments
            .last_mut()
            .expect("the current segment is listed");
        let start = Position {
            segment: last.0,
            offset: last.1,
        };
        last.1 += size;
        let end = Position {
            segment: last.0,
            offset: last.1,
        };
        Ok((start, end))
    }

    /// Reads the record at `at`, moving to the next segment at a segment's end. A corrupt tail
    /// is moved aside (see [`Spool::take_corruptions`]) and reading goes on after it.
    pub fn read(&mut self, mut at: Position) -> Result<Next, SpoolError> {
        loop {
            let Some(index) = self.segments.iter().position(|s| s.0 >= at.segment) else {
                return Ok(Next::End);
            };
            let (seq, len) = self.segments[index];
            if seq != at.segment {
                at = Position {
                    segment: seq,
                    offset: 0,
                };
            }
            let is_current = self.current.is_some() && index + 1 == self.segments.len();
            if at.offset >= len {
                if is_current || index + 1 == self.segments.len() {
                    return Ok(Next::End);
                }
                at = Position {
                    segment: self.segments[index + 1].0,
                    offset: 0,
                };
                continue;
            }
            match self.read_record(seq, at.offset, len) {
                Ok((record, next)) => {
                    return Ok(Next::Record(
                        record,
                        Position {
                            segment: seq,
                            offset: next,
                        },
                    ));
                }
                Err(reason) if !is_current => {
                    self.set_aside(index, at.offset, reason)?;
                }
                // The segment being written is never corrupt, only ahead of what is synced.
                Err(_) => return Ok(Next::End),
            }
        }
    }

    fn read_record(&self, seq: u64, offset: u64, len: u64) -> Result<(Record, u64), String> {
        let mut file = File::open(self.dir.join(segment_name(seq))).map_err(|e| e.to_string())?;
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| e.to_string())?;
        if len - offset < HEADER_BYTES {
            return Err(format!("{} bytes of a record header", len - offset));
        }
        let mut header = [0u8; HEADER_BYTES as usize];
        file.read_exact(&mut header).map_err(|e| e.to_string())?;
        let size = u32::from_le_bytes(header[..4].try_into().unwrap_or_default());
        if size > MAX_RECORD_BYTES || u64::from(size) > len - offset - HEADER_BYTES {
            return Err(format!(
                "a record of {size} bytes runs past the end (truncated)"
            ));
        }
        let mut payload = vec![0u8; size as usize];
        file.read_exact(&mut payload).map_err(|e| e.to_string())?;
        if header[4..] != checksum(&payload) {
            return Err("checksum mismatch".into());
        }
        if payload.len() < 8 {
            return Err("a record without its batch id".into());
        }
        let batch_id = u64::from_le_bytes(payload[..8].try_into().unwrap_or_default());
        let rows = decode_rows(&payload[8..])?;
        Ok((
            Record { batch_id, rows },
            offset + HEADER_BYTES + u64::from(size),
        ))
    }

    /// Moves the unreadable tail of segment `index` from `offset` to a `.corrupt` file.
    fn set_aside(&mut self, index: usize, offset: u64, reason: String) -> Result<(), SpoolError> {
        let (seq, len) = self.segments[index];
        let path = self.dir.join(segment_name(seq));
        let mut aside = path.clone().into_os_string();
        aside.push(".corrupt");
        let mut tail = Vec::new();
        let mut file = OpenOptions::new().read(true).write(true).open(&path)?;
        file.seek(SeekFrom::Start(offset))?;
        file.read_to_end(&mut tail)?;
        OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&aside)?
            .write_all(&tail)?;
        file.set_len(offset)?;
        file.sync_all()?;
        sync_dir(&self.dir)?;
        self.segments[index].1 = offset;
        self.corruptions.push(Corruption {
            segment: seq,
            offset,
            bytes: len - offset,
            reason,
        });
        Ok(())
    }

    /// The corrupt tails found since the last call.
    pub fn take_corruptions(&mut self) -> Vec<Corruption> {
        std::mem::take(&mut self.corruptions)
    }

    /// Deletes every segment that ends at or before `done` (the store has acknowledged all of
    /// it). A segment being appended to is closed first, so the next append starts a new one.
    pub fn release(&mut self, done: Position) -> Result<(), SpoolError> {
        let mut removed = false;
        while let Some(&(seq, len)) = self.segments.first() {
            let finished = seq < done.segment || (seq == done.segment && done.offset >= len);
            if !finished {
                break;
            }
            if self.segments.len() == 1 {
                self.current = None;
            }
            fs::remove_file(self.dir.join(segment_name(seq)))?;
            self.segments.remove(0);
            removed = true;
        }
        if removed {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: u64, n: usize) -> Record {
        Record {
            batch_id: id,
            rows: (0..n)
                .map(|i| EventRow {
                    site_id: 1,
                    timestamp: i as u32,
                    name: "pageview".into(),
                    pathname: format!("/{id}/{i}"),
                    batch_id: id,
                    ..EventRow::default()
                })
                .collect(),
        }
    }

    fn read_all(spool: &mut Spool) -> (Vec<Record>, Position) {
        let mut at = spool.start();
        let mut out = Vec::new();
        while let Next::Record(r, next) = spool.read(at).unwrap() {
            out.push(r);
            at = next;
        }
        (out, at)
    }

    #[test]
    fn records_come_back_in_order_and_released_segments_go() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 30).unwrap();
        for id in 1..=3 {
            spool.append(&record(id, 5)).unwrap();
        }
        let (got, end) = read_all(&mut spool);
        assert_eq!(got, vec![record(1, 5), record(2, 5), record(3, 5)]);
        // Reopened (a restart), the same records are there, and new ones go to a new segment.
        drop(spool);
        let mut spool = Spool::open(dir.path(), 1 << 30).unwrap();
        spool.append(&record(4, 1)).unwrap();
        let (got, _) = read_all(&mut spool);
        assert_eq!(got.len(), 4);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
        spool.release(end).unwrap();
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "the first segment is gone"
        );
        let (got, end) = read_all(&mut spool);
        assert_eq!(got, vec![record(4, 1)]);
        spool.release(end).unwrap();
        assert_eq!(
            spool.used_bytes(),
            0,
            "written out, the current segment goes too"
        );
        assert!(spool.is_empty());
        spool.append(&record(5, 1)).unwrap();
        let (got, _) = read_all(&mut spool);
        assert_eq!(
            got,
            vec![record(5, 1)],
            "a new segment takes the next append"
        );
    }

    #[test]
    fn a_full_spool_refuses_and_segments_roll() {
        let dir = tempfile::tempdir().unwrap();
        let one = {
            let mut s = Spool::open(&dir.path().join("probe"), 1 << 30).unwrap();
            s.append(&record(1, 3)).unwrap();
            s.used_bytes()
        };
        let mut spool = Spool::open(&dir.path().join("s"), one * 2).unwrap();
        spool.append(&record(1, 3)).unwrap();
        spool.append(&record(2, 3)).unwrap();
        assert!(matches!(
            spool.append(&record(3, 3)),
            Err(SpoolError::Full { .. })
        ));
        let (got, end) = read_all(&mut spool);
        assert_eq!(got.len(), 2);
        spool.release(end).unwrap();
        spool.append(&record(3, 3)).unwrap();
    }

    #[test]
    fn a_truncated_or_damaged_tail_is_set_aside_and_the_rest_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 30).unwrap();
        for id in 1..=3 {
            spool.append(&record(id, 4)).unwrap();
        }
        drop(spool);
        let path = dir.path().join(segment_name(1));
        let full = fs::read(&path).unwrap();
        let one = full.len() / 3;
        // Damage the second record's payload, and cut the file inside the third.
        let mut bad = full.clone();
        bad[one + 30] ^= 0xff;
        bad.truncate(full.len() - 10);
        fs::write(&path, &bad).unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 30).unwrap();
        let (got, _) = read_all(&mut spool);
        assert_eq!(got, vec![record(1, 4)]);
        let corrupt = spool.take_corruptions();
        assert_eq!(corrupt.len(), 1);
        assert_eq!(corrupt[0].offset, one as u64);
        assert_eq!(corrupt[0].reason, "checksum mismatch");
        let aside = fs::read(dir.path().join(format!("{}.corrupt", segment_name(1)))).unwrap();
        assert_eq!(aside, bad[one..]);

        // Only cut: the whole records before the cut are read.
        let mut spool = Spool::open(&dir.path().join("t"), 1 << 30).unwrap();
        for id in 1..=3 {
            spool.append(&record(id, 4)).unwrap();
        }
        drop(spool);
        let path = dir.path().join("t").join(segment_name(1));
        let full = fs::read(&path).unwrap();
        fs::write(&path, &full[..full.len() - 1]).unwrap();
        let mut spool = Spool::open(&dir.path().join("t"), 1 << 30).unwrap();
        let (got, _) = read_all(&mut spool);
        assert_eq!(got, vec![record(1, 4), record(2, 4)]);
        assert!(spool.take_corruptions()[0].reason.contains("truncated"));
    }

    /// Writes one record with a valid checksum around `payload`, as a crash cannot.
    fn write_raw(dir: &Path, payload: &[u8]) {
        let mut bytes = (payload.len() as u32).to_le_bytes().to_vec();
        bytes.extend_from_slice(&checksum(payload));
        bytes.extend_from_slice(payload);
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join(segment_name(1)), bytes).unwrap();
    }

    #[test]
    fn every_field_survives_the_encoding() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 30).unwrap();
        let row = EventRow {
            site_id: u32::MAX,
            timestamp: 1_700_000_000,
            name: "Signup \"quoted\" ✓".into(),
            hostname: "xn--bcher-kva.example".into(),
            pathname: "/ünï/\u{0}/\u{1F600}".into(),
            visitor_id: u64::MAX,
            session_id: 1,
            referrer: "https://news.example/?q=a&b=c".into(),
            props_keys: vec!["plan".into(), String::new()],
            props_values: vec!["pro".into(), "\n".into()],
            revenue_micros: i64::MIN,
            revenue_currency: "EUR".into(),
            interactive: 1,
            engagement_ms: u32::MAX,
            scroll_depth: 255,
            screen_width: u16::MAX,
            batch_id: 7,
            ..EventRow::default()
        };
        let record = Record {
            batch_id: 7,
            rows: vec![row, EventRow::default()],
        };
        spool.append(&record).unwrap();
        let (got, _) = read_all(&mut spool);
        assert_eq!(got, vec![record]);
    }

    #[test]
    fn rows_from_earlier_builds_are_read_and_an_unknown_format_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        // The first development builds wrote the rows as JSON.
        let old = record(9, 2);
        let mut payload = old.batch_id.to_le_bytes().to_vec();
        payload.extend_from_slice(&serde_json::to_vec(&old.rows).unwrap());
        write_raw(&dir.path().join("json"), &payload);
        let mut spool = Spool::open(&dir.path().join("json"), 1 << 30).unwrap();
        assert_eq!(read_all(&mut spool).0, vec![old]);

        let mut payload = 9u64.to_le_bytes().to_vec();
        payload.extend_from_slice(&[0x7f, 1, 2, 3]);
        write_raw(&dir.path().join("new"), &payload);
        let mut spool = Spool::open(&dir.path().join("new"), 1 << 30).unwrap();
        assert!(read_all(&mut spool).0.is_empty());
        let corrupt = spool.take_corruptions();
        assert_eq!(corrupt.len(), 1);
        assert!(
            corrupt[0].reason.contains("unknown format 127"),
            "{}",
            corrupt[0].reason
        );
    }
}
