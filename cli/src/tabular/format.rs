//! Which format a file is in, from its extension, and which flavour of Arrow IPC it holds.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::error::TabularError;

/// The tabular formats the CLI reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// Comma-separated values with a header row (`.csv`).
    Csv,
    /// Apache Parquet (`.parquet`, `.pq`).
    Parquet,
    /// Arrow IPC, file or stream flavour (`.arrow`, `.arrows`, `.ipc`, `.feather`).
    ArrowIpc,
}

impl FileFormat {
    /// The format named by the extension of `path` (case-insensitive).
    pub fn from_path(path: &Path) -> Result<FileFormat, TabularError> {
        let extension = path
            .extension()
            .and_then(|extension| extension.to_str())
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        match extension.as_str() {
            "csv" => Ok(FileFormat::Csv),
            "parquet" | "pq" => Ok(FileFormat::Parquet),
            "arrow" | "arrows" | "ipc" | "feather" => Ok(FileFormat::ArrowIpc),
            _ => Err(TabularError::UnsupportedExtension {
                path: path.to_path_buf(),
            }),
        }
    }
}

impl fmt::Display for FileFormat {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            FileFormat::Csv => "CSV",
            FileFormat::Parquet => "Parquet",
            FileFormat::ArrowIpc => "Arrow IPC",
        };
        formatter.write_str(name)
    }
}

/// The two layouts of Arrow IPC data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum IpcFlavour {
    /// Random-access file: starts (and ends) with the magic `ARROW1`, has a footer.
    File,
    /// Stream: a sequence of messages, each starting with the continuation marker `0xFFFFFFFF`.
    Stream,
}

/// The first bytes of an Arrow IPC file.
const IPC_FILE_MAGIC: &[u8; 6] = b"ARROW1";

/// The first bytes of every message of an Arrow IPC stream since format version 0.15.
const IPC_STREAM_CONTINUATION: &[u8; 4] = &[0xFF, 0xFF, 0xFF, 0xFF];

/// Tells an IPC file from an IPC stream by their first bytes, whatever the extension says.
///
/// A stream must start with the continuation marker: pre-0.15 streams (a bare length) are not
/// accepted, because without the marker arbitrary text would be read as a message length.
pub(super) fn sniff_ipc_flavour(path: &Path) -> Result<IpcFlavour, TabularError> {
    let mut file = File::open(path).map_err(|source| TabularError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let mut start = Vec::with_capacity(IPC_FILE_MAGIC.len());
    file.by_ref()
        .take(IPC_FILE_MAGIC.len() as u64)
        .read_to_end(&mut start)
        .map_err(|source| TabularError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    if start.as_slice() == IPC_FILE_MAGIC {
        return Ok(IpcFlavour::File);
    }
    if start.starts_with(IPC_STREAM_CONTINUATION) {
        return Ok(IpcFlavour::Stream);
    }
    Err(not_ipc(path))
}

fn not_ipc(path: &Path) -> TabularError {
    TabularError::NotThisFormat {
        path: PathBuf::from(path),
        format: FileFormat::ArrowIpc,
        detail: "it starts neither with the IPC file magic \"ARROW1\" nor with an IPC stream message".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Extensions map to formats case-insensitively.
    #[test]
    fn extensions_name_formats() {
        for (name, format) in [
            ("a.csv", FileFormat::Csv),
            ("a.CSV", FileFormat::Csv),
            ("a.parquet", FileFormat::Parquet),
            ("a.pq", FileFormat::Parquet),
            ("a.arrow", FileFormat::ArrowIpc),
            ("a.arrows", FileFormat::ArrowIpc),
            ("a.ipc", FileFormat::ArrowIpc),
            ("dir.d/a.feather", FileFormat::ArrowIpc),
        ] {
            assert_eq!(FileFormat::from_path(Path::new(name)).expect(name), format, "{name}");
        }
    }

    /// An unknown or missing extension is an error that names the file and lists the
    /// supported extensions.
    #[test]
    fn unknown_extension_lists_the_supported_ones() {
        for name in ["data.json", "data.csv.gz", "data"] {
            let error = FileFormat::from_path(Path::new(name)).expect_err(name);
            let message = error.to_string();
            assert!(message.starts_with(&format!("{name}: ")), "{message}");
            for extension in [".csv", ".parquet", ".pq", ".arrow", ".arrows", ".ipc", ".feather"] {
                assert!(message.contains(extension), "{message} lacks {extension}");
            }
        }
    }
}
