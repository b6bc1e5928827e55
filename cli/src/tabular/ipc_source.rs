//! Reading one Arrow IPC file, in the file or the stream flavour, batch by batch.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::{FileReader, StreamReader};

use super::error::TabularError;
use super::format::{sniff_ipc_flavour, FileFormat, IpcFlavour};

/// A reader that counts the bytes read through it, for the progress bar.
struct CountingReader<R> {
    /// The file.
    inner: R,
    /// Bytes returned by `read` so far (a seek does not count).
    bytes_read: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.bytes_read += read as u64;
        Ok(read)
    }
}

impl<R: Seek> Seek for CountingReader<R> {
    fn seek(&mut self, position: SeekFrom) -> io::Result<u64> {
        self.inner.seek(position)
    }
}

/// The file handle as the IPC readers see it.
type CountedFile = BufReader<CountingReader<File>>;

/// Arrow's two IPC readers.
enum IpcReader {
    /// The random-access file flavour (magic `ARROW1`).
    File(FileReader<CountedFile>),
    /// The stream flavour.
    Stream(StreamReader<CountedFile>),
}

/// Batches, as written, from one Arrow IPC file (the caller slices them to the chunk size).
pub(super) struct IpcSource {
    /// The file, for error messages.
    path: PathBuf,
    /// The reader for the flavour found in the file.
    reader: IpcReader,
}

impl IpcSource {
    /// Opens `path`, telling the file flavour from the stream flavour by the first bytes.
    pub(super) fn open(path: &Path) -> Result<IpcSource, TabularError> {
        let flavour = sniff_ipc_flavour(path)?;
        let file = File::open(path).map_err(|source| TabularError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let counted = BufReader::new(CountingReader {
            inner: file,
            bytes_read: 0,
        });
        let not_ipc = |source: arrow::error::ArrowError| TabularError::NotThisFormat {
            path: path.to_path_buf(),
            format: FileFormat::ArrowIpc,
            detail: source.to_string(),
        };
        let reader = match flavour {
            IpcFlavour::File => IpcReader::File(FileReader::try_new(counted, None).map_err(not_ipc)?),
            IpcFlavour::Stream => IpcReader::Stream(StreamReader::try_new(counted, None).map_err(not_ipc)?),
        };
        Ok(IpcSource {
            path: path.to_path_buf(),
            reader,
        })
    }

    /// The schema written in the file.
    pub(super) fn schema(&self) -> SchemaRef {
        match &self.reader {
            IpcReader::File(reader) => reader.schema(),
            IpcReader::Stream(reader) => reader.schema(),
        }
    }

    /// Bytes read from the file so far (the file flavour also reads its footer first).
    pub(super) fn bytes_consumed(&self) -> u64 {
        match &self.reader {
            IpcReader::File(reader) => reader.get_ref().get_ref().bytes_read,
            IpcReader::Stream(reader) => reader.get_ref().get_ref().bytes_read,
        }
    }

    /// The next batch as stored, or `None` at the end of the file.
    pub(super) fn next_batch(&mut self) -> Result<Option<RecordBatch>, TabularError> {
        let next = match &mut self.reader {
            IpcReader::File(reader) => reader.next(),
            IpcReader::Stream(reader) => reader.next(),
        };
        next.transpose().map_err(|source| TabularError::Decode {
            path: self.path.clone(),
            format: FileFormat::ArrowIpc,
            source,
        })
    }
}
