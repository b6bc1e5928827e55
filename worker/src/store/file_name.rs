//! Names in the chunk directory: chunk files `<key>.<crc32c as 8 lowercase hex>.arrow`, and temp
//! files `.tmp-<purpose>-<random>` (keys never start with `.`, so the two cannot collide).

use std::fmt;

use crate::ChunkKey;

/// The extension of every chunk file: they are plain Arrow IPC files.
const CHUNK_FILE_SUFFIX: &str = ".arrow";
/// The prefix of every temp file; [`ChunkStore::open`](super::ChunkStore::open) removes them all.
const TEMP_FILE_PREFIX: &str = ".tmp-";
/// How many hex digits the checksum takes in a chunk file name.
const CHECKSUM_HEX_DIGITS: usize = 8;

/// The name of a chunk file: which chunk, and the crc32c of the whole file's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ChunkFileName {
    /// The chunk the file holds.
    pub(crate) key: ChunkKey,
    /// The crc32c of every byte of the file: verified on each read, and part of the name so a
    /// replaced chunk's new file never overwrites the old one in place.
    pub(crate) checksum: u32,
}

impl fmt::Display for ChunkFileName {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}.{:08x}{CHUNK_FILE_SUFFIX}", self.key, self.checksum)
    }
}

/// What a name found in the chunk directory is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DirectoryName {
    /// A well-formed chunk file name.
    Chunk(ChunkFileName),
    /// A temp file left by an interrupted write or probe.
    Temp,
    /// Ends in `.arrow` but is not `<key>.<8 lowercase hex>.arrow`.
    MalformedChunk {
        /// What is wrong with it.
        reason: String,
    },
    /// Not the store's: neither a chunk file nor a temp file.
    Foreign,
}

impl DirectoryName {
    /// Classifies a file name found in the chunk directory.
    pub(crate) fn classify(file_name: &str) -> DirectoryName {
        if file_name.starts_with(TEMP_FILE_PREFIX) {
            return DirectoryName::Temp;
        }
        let Some(stem) = file_name.strip_suffix(CHUNK_FILE_SUFFIX) else {
            return DirectoryName::Foreign;
        };
        let Some((key_text, checksum_text)) = stem.rsplit_once('.') else {
            return DirectoryName::MalformedChunk {
                reason: "no checksum before '.arrow'".to_string(),
            };
        };
        let checksum_is_well_formed = checksum_text.len() == CHECKSUM_HEX_DIGITS
            && checksum_text
                .bytes()
                .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte));
        if !checksum_is_well_formed {
            return DirectoryName::MalformedChunk {
                reason: format!("checksum {checksum_text:?} is not 8 lowercase hex digits"),
            };
        }
        let Ok(checksum) = u32::from_str_radix(checksum_text, 16) else {
            return DirectoryName::MalformedChunk {
                reason: format!("checksum {checksum_text:?} is not hex"),
            };
        };
        match ChunkKey::parse(key_text) {
            Ok(key) => DirectoryName::Chunk(ChunkFileName { key, checksum }),
            Err(invalid) => DirectoryName::MalformedChunk {
                reason: invalid.to_string(),
            },
        }
    }
}

/// A fresh temp file name for `purpose` (a chunk key, or `probe`): unique thanks to 64 random bits,
/// and recognisable by [`DirectoryName::classify`].
pub(crate) fn temp_file_name(purpose: &str) -> String {
    let nonce: u64 = rand::random();
    format!("{TEMP_FILE_PREFIX}{purpose}-{nonce:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chunk file name round-trips through `classify`, keys with dots included, so the store
    /// finds every file it wrote after a restart.
    #[test]
    fn chunk_file_names_round_trip() {
        let name = ChunkFileName {
            key: ChunkKey::parse("upload-7.part.3").expect("valid key"),
            checksum: 0x00ab_cdef,
        };
        assert_eq!(name.to_string(), "upload-7.part.3.00abcdef.arrow");
        assert_eq!(DirectoryName::classify(&name.to_string()), DirectoryName::Chunk(name));
    }

    /// Temp files, malformed chunk names and foreign files are told apart, so `open` removes the
    /// first two and leaves the last alone.
    #[test]
    fn other_names_are_classified() {
        assert_eq!(DirectoryName::classify(&temp_file_name("chunk-1")), DirectoryName::Temp);
        assert!(temp_file_name("x").starts_with(".tmp-x-"));
        for malformed in [
            "a.arrow",
            "a.ABCDEF01.arrow",
            "a.1234567.arrow",
            "a.123456789.arrow",
            "$.01234567.arrow",
        ] {
            assert!(
                matches!(DirectoryName::classify(malformed), DirectoryName::MalformedChunk { .. }),
                "{malformed} is malformed"
            );
        }
        assert_eq!(DirectoryName::classify("notes.txt"), DirectoryName::Foreign);
    }
}
