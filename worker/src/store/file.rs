//! The on-disk chunk format: one plain Arrow IPC **file** per chunk (readable by any Arrow tool),
//! named after the crc32c of all its bytes.
//!
//! Writing streams the IPC encoding through a checksumming writer into a temp file (no second copy
//! of the chunk in memory); the caller renames it into place. Reading loads the whole file into one
//! 64-byte-aligned buffer, checks the crc32c against the name, and decodes the batch zero-copy from
//! that buffer, so a chunk read back is one allocation the size of its file.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::buffer::{Buffer, MutableBuffer};
use arrow::error::ArrowError;
use arrow::ipc::convert::try_fb_to_schema;
use arrow::ipc::reader::{read_footer_length, FileDecoder};
use arrow::ipc::writer::FileWriter;
use arrow::ipc::{root_as_footer, root_as_message, Block, Footer, MessageHeader};

use super::disk::{remove_file_if_present, WriteFaults};
use super::file_name::{temp_file_name, ChunkFileName};
use crate::ChunkKey;

/// The magic bytes that open (padded to 8) and close every Arrow IPC file.
const ARROW_MAGIC: &[u8; 6] = b"ARROW1";
/// The trailer of an Arrow IPC file: the footer length (4 bytes) and the magic.
const TRAILER_BYTES: usize = 10;
/// The piece of a file read at a time to checksum it, when a file is read for sending.
const CHECKSUM_PIECE_BYTES: usize = 256 * 1024;
/// The write buffer between the IPC encoder and the file.
const WRITE_BUFFER_BYTES: usize = 1 << 20;

/// A chunk file under its final name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChunkFile {
    /// The file's name in the chunk directory (key and checksum).
    pub(crate) name: ChunkFileName,
    /// The file's size, for the disk figures in the stats.
    pub(crate) bytes: u64,
}

/// Whether a written file is fsync'd before it is renamed into place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileSync {
    /// Fsync the file: it holds a published chunk that must survive a crash.
    Durable,
    /// No fsync: a spilled task result; a torn file after a crash fails its checksum at open.
    Lazy,
}

/// A chunk encoded into a temp file, ready to be renamed into place (or removed).
#[derive(Debug)]
pub(crate) struct TempChunkFile {
    /// Where it was written.
    pub(crate) temp_path: PathBuf,
    /// What it becomes once renamed to `file.name`.
    pub(crate) file: ChunkFile,
}

/// Why writing a chunk file failed.
#[derive(Debug)]
pub(crate) enum WriteFailure {
    /// The batch cannot be encoded as IPC: not a disk problem, nothing to pause for.
    Encode(ArrowError),
    /// The disk refused (full, read-only, gone...): the store pauses.
    Disk {
        /// The file that failed.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

/// Why reading a chunk file failed.
#[derive(Debug)]
pub(crate) enum ReadFailure {
    /// The content is not what was written (checksum, decoding), or the file is gone.
    Corrupt {
        /// What the verification found.
        reason: String,
    },
    /// The file could not be read (the disk, permissions): its content is unknown, not corrupt.
    Io {
        /// The OS error.
        source: io::Error,
    },
}

/// Encodes `batch` as an Arrow IPC file into a fresh temp file in `dir`, computing its crc32c on
/// the way. The temp file is removed on any failure.
pub(crate) fn write_temp_chunk_file(
    dir: &Path,
    key: &ChunkKey,
    batch: &RecordBatch,
    sync: FileSync,
    faults: &WriteFaults,
) -> Result<TempChunkFile, WriteFailure> {
    let temp_path = dir.join(temp_file_name(key.as_str()));
    let written = encode_into_file(&temp_path, batch, sync, faults);
    match written {
        Ok((checksum, bytes)) => Ok(TempChunkFile {
            temp_path,
            file: ChunkFile {
                name: ChunkFileName {
                    key: key.clone(),
                    checksum,
                },
                bytes,
            },
        }),
        Err(failure) => {
            if let Err(error) = remove_file_if_present(&temp_path) {
                tracing::warn!(path = %temp_path.display(), %error, "could not remove a partial chunk file");
            }
            Err(failure)
        }
    }
}

/// The body of [`write_temp_chunk_file`]; returns the checksum and the size.
fn encode_into_file(
    temp_path: &Path,
    batch: &RecordBatch,
    sync: FileSync,
    faults: &WriteFaults,
) -> Result<(u32, u64), WriteFailure> {
    let disk_failure = |source: io::Error| WriteFailure::Disk {
        path: temp_path.to_path_buf(),
        source,
    };
    let arrow_failure = |error: ArrowError| match error {
        ArrowError::IoError(_, source) => disk_failure(source),
        other => WriteFailure::Encode(other),
    };

    let file = File::create_new(temp_path).map_err(disk_failure)?;
    let writer = ChecksummingWriter::new(BufWriter::with_capacity(WRITE_BUFFER_BYTES, file));
    let mut ipc_writer = FileWriter::try_new(writer, batch.schema().as_ref()).map_err(arrow_failure)?;
    ipc_writer.write(batch).map_err(arrow_failure)?;
    let writer = ipc_writer.into_inner().map_err(arrow_failure)?;
    faults.check().map_err(disk_failure)?;
    let (buffered, checksum, bytes) = writer.into_parts();
    let file = buffered
        .into_inner()
        .map_err(|error| disk_failure(error.into_error()))?;
    if sync == FileSync::Durable {
        file.sync_all().map_err(disk_failure)?;
    }
    Ok((checksum, bytes))
}

/// Passes bytes through to `inner`, keeping the crc32c and the count of what was written.
struct ChecksummingWriter<W> {
    /// Where the bytes go.
    inner: W,
    /// The crc32c of every byte accepted so far.
    checksum: u32,
    /// How many bytes were accepted so far.
    bytes_written: u64,
}

impl<W: Write> ChecksummingWriter<W> {
    fn new(inner: W) -> Self {
        ChecksummingWriter {
            inner,
            checksum: 0,
            bytes_written: 0,
        }
    }

    /// The inner writer, the checksum and the byte count.
    fn into_parts(self) -> (W, u32, u64) {
        (self.inner, self.checksum, self.bytes_written)
    }
}

impl<W: Write> Write for ChecksummingWriter<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let accepted = self.inner.write(bytes)?;
        let accepted_bytes = bytes.get(..accepted).unwrap_or(bytes);
        self.checksum = crc32c::crc32c_append(self.checksum, accepted_bytes);
        self.bytes_written += accepted_bytes.len() as u64;
        Ok(accepted)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads the whole file at `path`, checks its crc32c against `name`, and decodes its one batch.
pub(crate) fn read_chunk_file(path: &Path, name: &ChunkFileName) -> Result<RecordBatch, ReadFailure> {
    let contents = read_whole_file(path)?;
    check_checksum(path, name, contents.as_slice())?;
    decode_chunk_file(&contents).map_err(|reason| ReadFailure::Corrupt {
        reason: format!("{} does not decode: {reason}", path.display()),
    })
}

/// The whole file at `path`, its crc32c checked against `name`; the bytes, not decoded (for
/// sending as they are). The bytes are the file's mapping (`mapped.rs`): the page cache's own
/// pages, neither copied nor freshly allocated.
///
/// The checksum is computed over a `read` of the file, through a small buffer this thread
/// reuses, not over the mapping: a disk that cannot give a page back then fails the read with
/// an error (a mapping would raise SIGBUS and take the worker down), and the pages sent from
/// the mapping are the ones that read just brought into the page cache.
pub(crate) fn read_chunk_file_bytes(path: &Path, name: &ChunkFileName) -> Result<bytes::Bytes, ReadFailure> {
    thread_local! {
        static PIECE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let mut file = open_chunk_file(path)?;
    let (checksum, length) = PIECE.with_borrow_mut(|piece| {
        piece.resize(CHECKSUM_PIECE_BYTES, 0);
        let (mut checksum, mut length) = (0, 0u64);
        loop {
            match file.read(piece) {
                Ok(0) => return Ok((checksum, length)),
                Ok(read) => {
                    checksum = crc32c::crc32c_append(checksum, &piece[..read]);
                    length += read as u64;
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => return Err(ReadFailure::Io { source }),
            }
        }
    })?;
    if checksum != name.checksum {
        return Err(checksum_mismatch(path, name, checksum));
    }
    let contents = super::mapped::map_whole_file(&file).map_err(|source| ReadFailure::Io { source })?;
    if contents.len() as u64 != length {
        return Err(ReadFailure::Corrupt {
            reason: format!("{} changed size while being read", path.display()),
        });
    }
    Ok(contents)
}

/// One Arrow IPC message of a chunk file, as Arrow Flight carries it: the flatbuffer
/// `Message` and the body that follows it.
#[derive(Debug, Clone)]
pub struct IpcMessage {
    /// The flatbuffer `Message` (its 8-byte padding included).
    pub(crate) header: bytes::Bytes,
    /// The message's body (empty for the schema).
    pub(crate) body: bytes::Bytes,
}

/// Splits a chunk file's bytes into the messages of an Arrow IPC *stream* — the schema, then
/// each dictionary, then the record batch — without decoding any data: each is a slice of
/// `contents`. Every offset is checked, and each header must parse as the message it should be.
pub(crate) fn chunk_file_messages(contents: &bytes::Bytes) -> Result<Vec<IpcMessage>, String> {
    let bytes = contents.as_ref();
    let (footer, footer_start) = read_footer(bytes)?;
    // The schema message opens the stream, after the magic and the zeros that pad it to
    // the writer's alignment (8 or more): the first 8-aligned word that is not zero.
    let mut schema_at = ARROW_MAGIC.len() + 2;
    while bytes.get(schema_at..schema_at + 4) == Some(&[0; 4]) && schema_at < footer_start {
        schema_at += 8;
    }
    let (header_start, header_end) = encapsulated_header(bytes, schema_at, footer_start)?;
    let mut messages = vec![IpcMessage {
        header: contents.slice(header_start..header_end),
        body: bytes::Bytes::new(),
    }];
    expect_header(&messages[0].header, MessageHeader::Schema)?;
    let batches = footer
        .recordBatches()
        .ok_or_else(|| "the footer lists no record batches".to_string())?;
    let dictionaries = footer.dictionaries();
    let blocks = dictionaries
        .iter()
        .flatten()
        .map(|block| (block, MessageHeader::DictionaryBatch))
        .chain(batches.iter().map(|block| (block, MessageHeader::RecordBatch)));
    for (block, kind) in blocks {
        let range = block_range(block, footer_start)?;
        let (header_start, header_end) = encapsulated_header(bytes, range.start, range.start + range.metadata)?;
        let message = IpcMessage {
            header: contents.slice(header_start..header_end),
            body: contents.slice(range.start + range.metadata..range.end),
        };
        expect_header(&message.header, kind)?;
        messages.push(message);
    }
    Ok(messages)
}

/// Where the flatbuffer of the encapsulated message at `at` lies: after the continuation
/// marker (if any) and the length, not past `limit`.
fn encapsulated_header(bytes: &[u8], at: usize, limit: usize) -> Result<(usize, usize), String> {
    let word = |offset: usize| -> Result<u32, String> {
        bytes
            .get(offset..offset + 4)
            .and_then(|word| <[u8; 4]>::try_from(word).ok())
            .map(u32::from_le_bytes)
            .ok_or_else(|| format!("a message at byte {at} runs past the file"))
    };
    let (length, start) = match word(at)? {
        0xFFFF_FFFF => (word(at + 4)?, at + 8),
        length => (length, at + 4),
    };
    let end = start + length as usize;
    if length == 0 || end > limit {
        return Err(format!("the message at byte {at} has a bad length {length}"));
    }
    Ok((start, end))
}

/// Checks that `header` parses as an IPC `Message` of the `expected` kind.
fn expect_header(header: &[u8], expected: MessageHeader) -> Result<(), String> {
    let message = root_as_message(header).map_err(|error| format!("bad message: {error}"))?;
    if message.header_type() != expected {
        return Err(format!(
            "expected a {:?} message, found {:?}",
            expected,
            message.header_type()
        ));
    }
    Ok(())
}

/// Checks that `contents` have the crc32c that `name` records.
fn check_checksum(path: &Path, name: &ChunkFileName, contents: &[u8]) -> Result<(), ReadFailure> {
    let actual_checksum = crc32c::crc32c(contents);
    if actual_checksum != name.checksum {
        return Err(checksum_mismatch(path, name, actual_checksum));
    }
    Ok(())
}

/// The failure of a file whose bytes have crc32c `actual`, not the one `name` records.
fn checksum_mismatch(path: &Path, name: &ChunkFileName, actual: u32) -> ReadFailure {
    ReadFailure::Corrupt {
        reason: format!(
            "checksum mismatch in {}: the bytes have crc32c {actual:08x}, the name says {:08x}",
            path.display(),
            name.checksum
        ),
    }
}

/// Opens a chunk file for reading; a missing file is corrupt (the store lists it).
fn open_chunk_file(path: &Path) -> Result<File, ReadFailure> {
    match File::open(path) {
        Ok(file) => Ok(file),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Err(ReadFailure::Corrupt {
            reason: format!("{} is missing", path.display()),
        }),
        Err(source) => Err(ReadFailure::Io { source }),
    }
}

/// Reads the whole file into one 64-byte-aligned buffer (so decoding needs no copies).
fn read_whole_file(path: &Path) -> Result<Buffer, ReadFailure> {
    let mut file = open_chunk_file(path)?;
    let length = file.metadata().map_err(|source| ReadFailure::Io { source })?.len();
    let Ok(length) = usize::try_from(length) else {
        return Err(ReadFailure::Corrupt {
            reason: format!("{} is too large to load ({length} bytes)", path.display()),
        });
    };
    let Ok(mut contents) = MutableBuffer::try_from_len_zeroed(length) else {
        return Err(ReadFailure::Corrupt {
            reason: format!("{} is too large to load ({length} bytes)", path.display()),
        });
    };
    match file.read_exact(contents.as_slice_mut()) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => {
            return Err(ReadFailure::Corrupt {
                reason: format!("{} shrank while being read", path.display()),
            });
        }
        Err(source) => return Err(ReadFailure::Io { source }),
    }
    Ok(contents.into())
}

/// Decodes the single record batch of an Arrow IPC file held in `contents`, zero-copy.
///
/// The bytes passed their checksum, so they are what this store wrote; still, every offset is
/// checked, and a panic inside Arrow's decoder (possible only on crafted input) is reported as a
/// decoding failure rather than taking the worker down.
fn decode_chunk_file(contents: &Buffer) -> Result<RecordBatch, String> {
    match panic::catch_unwind(AssertUnwindSafe(|| decode_chunk_file_unguarded(contents))) {
        Ok(decoded) => decoded,
        Err(_) => Err("the Arrow decoder panicked".to_string()),
    }
}

/// The body of [`decode_chunk_file`].
fn decode_chunk_file_unguarded(contents: &Buffer) -> Result<RecordBatch, String> {
    let bytes = contents.as_slice();
    let (footer, footer_start) = read_footer(bytes)?;
    let schema = footer.schema().ok_or_else(|| "the footer has no schema".to_string())?;
    let schema = try_fb_to_schema(schema).map_err(|error| format!("bad schema: {error}"))?;

    let mut decoder = FileDecoder::new(Arc::new(schema), footer.version());
    for block in footer.dictionaries().iter().flatten() {
        let message = block_bytes(contents, footer_start, block)?;
        decoder
            .read_dictionary(block, &message)
            .map_err(|error| format!("bad dictionary: {error}"))?;
    }
    let batches = footer
        .recordBatches()
        .ok_or_else(|| "the footer lists no record batches".to_string())?;
    if batches.len() != 1 {
        return Err(format!("expected exactly one record batch, found {}", batches.len()));
    }
    let block = batches.get(0);
    let message = block_bytes(contents, footer_start, block)?;
    decoder
        .read_record_batch(block, &message)
        .map_err(|error| format!("bad record batch: {error}"))?
        .ok_or_else(|| "the record batch block holds no batch".to_string())
}

/// The footer of the IPC file in `bytes` and where it starts, after checking the
/// leading magic and the trailer.
fn read_footer(bytes: &[u8]) -> Result<(Footer<'_>, usize), String> {
    if bytes.len() < ARROW_MAGIC.len() + TRAILER_BYTES || !bytes.starts_with(ARROW_MAGIC) {
        return Err("not an Arrow IPC file (no leading magic)".to_string());
    }
    let trailer_start = bytes.len() - TRAILER_BYTES;
    let trailer: [u8; TRAILER_BYTES] = bytes[trailer_start..]
        .try_into()
        .map_err(|_| "the trailer is not 10 bytes".to_string())?;
    let footer_length = read_footer_length(trailer).map_err(|error| error.to_string())?;
    let footer_start = trailer_start
        .checked_sub(footer_length)
        .ok_or_else(|| format!("the footer length {footer_length} exceeds the file"))?;
    let footer = root_as_footer(&bytes[footer_start..trailer_start]).map_err(|error| format!("bad footer: {error}"))?;
    Ok((footer, footer_start))
}

/// Where one message block lies in the file.
struct BlockRange {
    /// Its first byte.
    start: usize,
    /// The length of its encapsulated metadata (marker, length, flatbuffer, padding).
    metadata: usize,
    /// One past its body's last byte.
    end: usize,
}

/// Where `block` lies, checked to be before the footer.
fn block_range(block: &Block, footer_start: usize) -> Result<BlockRange, String> {
    let start = usize::try_from(block.offset()).ok();
    let metadata = usize::try_from(block.metaDataLength()).ok();
    let body = usize::try_from(block.bodyLength()).ok();
    let range = match (start, metadata, body) {
        (Some(start), Some(metadata), Some(body)) => metadata
            .checked_add(body)
            .and_then(|length| start.checked_add(length))
            .map(|end| BlockRange { start, metadata, end }),
        _ => None,
    };
    match range {
        Some(range) if range.end <= footer_start => Ok(range),
        _ => Err(format!(
            "a block (offset {}, metadata {}, body {}) lies outside the file",
            block.offset(),
            block.metaDataLength(),
            block.bodyLength()
        )),
    }
}

/// The bytes of one message block, checked to lie before the footer.
fn block_bytes(contents: &Buffer, footer_start: usize, block: &Block) -> Result<Buffer, String> {
    let range = block_range(block, footer_start)?;
    Ok(contents.slice_with_length(range.start, range.end - range.start))
}

#[cfg(test)]
mod tests {
    use std::fs;

    use arrow::array::{Int64Array, StringArray};
    use arrow::ipc::reader::FileReader;

    use super::*;

    fn sample_batch() -> RecordBatch {
        RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from(vec![1, 2, 3])) as _),
            (
                "name",
                Arc::new(StringArray::from(vec![Some("a"), None, Some("c")])) as _,
            ),
        ])
        .expect("valid batch")
    }

    /// A chunk file is a plain Arrow IPC file — Arrow's own `FileReader` reads it — and the name's
    /// checksum covers every byte, so other tools can inspect spilled data and we can verify it.
    #[test]
    fn chunk_files_are_plain_arrow_ipc_files() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let key = ChunkKey::parse("sample")?;
        let batch = sample_batch();
        let temp = write_temp_chunk_file(dir.path(), &key, &batch, FileSync::Durable, &WriteFaults::default())
            .map_err(|failure| anyhow::anyhow!("{failure:?}"))?;
        let contents = fs::read(&temp.temp_path)?;
        assert_eq!(crc32c::crc32c(&contents), temp.file.name.checksum);
        assert_eq!(contents.len() as u64, temp.file.bytes);

        let batches = FileReader::try_new(fs::File::open(&temp.temp_path)?, None)?.collect::<Result<Vec<_>, _>>()?;
        assert_eq!(batches, vec![batch.clone()]);

        let decoded =
            read_chunk_file(&temp.temp_path, &temp.file.name).map_err(|failure| anyhow::anyhow!("{failure:?}"))?;
        assert_eq!(decoded, batch);
        Ok(())
    }

    /// Bytes that pass no checksum, or that are not an Arrow file at all, are reported as corrupt
    /// rather than decoded or panicking.
    #[test]
    fn damaged_bytes_are_corrupt() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("junk");
        fs::write(&path, b"ARROW1\0\0not really an arrow file at all")?;
        let checksum = crc32c::crc32c(&fs::read(&path)?);
        let name = ChunkFileName {
            key: ChunkKey::parse("junk")?,
            checksum,
        };
        assert!(matches!(
            read_chunk_file(&path, &name),
            Err(ReadFailure::Corrupt { .. })
        ));

        let wrong_name = ChunkFileName {
            checksum: checksum ^ 1,
            ..name
        };
        match read_chunk_file(&path, &wrong_name) {
            Err(ReadFailure::Corrupt { reason }) => assert!(reason.contains("checksum mismatch"), "{reason}"),
            other => panic!("expected a checksum mismatch, got {other:?}"),
        }
        assert!(matches!(
            read_chunk_file(&dir.path().join("absent"), &wrong_name),
            Err(ReadFailure::Corrupt { .. })
        ));
        assert!(matches!(
            read_chunk_file_bytes(&path, &wrong_name),
            Err(ReadFailure::Corrupt { .. })
        ));
        Ok(())
    }

    /// A chunk file splits into its schema and batch messages, each a slice of the file; a
    /// truncated or damaged file gives an error, never a panic or a slice out of bounds.
    #[test]
    fn chunk_files_split_into_ipc_messages_and_damage_is_an_error() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let key = ChunkKey::parse("sample")?;
        let temp = write_temp_chunk_file(
            dir.path(),
            &key,
            &sample_batch(),
            FileSync::Lazy,
            &WriteFaults::default(),
        )
        .map_err(|failure| anyhow::anyhow!("{failure:?}"))?;
        let contents = read_chunk_file_bytes(&temp.temp_path, &temp.file.name)
            .map_err(|failure| anyhow::anyhow!("{failure:?}"))?;
        let messages = chunk_file_messages(&contents).map_err(|reason| anyhow::anyhow!(reason))?;
        assert_eq!(messages.len(), 2, "the schema and one batch");
        assert!(messages[0].body.is_empty());
        assert!(!messages[1].body.is_empty());

        for cut in 0..contents.len() {
            assert!(chunk_file_messages(&contents.slice(..cut)).is_err(), "cut at {cut}");
        }
        for at in 0..contents.len() {
            let mut damaged = contents.to_vec();
            damaged[at] ^= 0xa5;
            // Some flips only touch data bytes; none may panic.
            let _ = chunk_file_messages(&bytes::Bytes::from(damaged));
        }
        Ok(())
    }
}
