//! Compressed files: the `compression` property of the CSV, JSON Lines and JSON readers
//! and writers, and the codecs behind it (gzip through `flate2`, Zstandard through `zstd`).
//!
//! * Readers decompress what they read: a local file through [`InputFile`], an object on a
//!   storage through [`decompress_stream`]. Files of several gzip members or Zstandard
//!   frames (what `cat a.gz b.gz` makes, and what the writers write) are read whole. The
//!   saved position is an offset in the *decompressed* text; a restart decompresses the
//!   file again up to it (compressed data has no index to seek in).
//! * Local writers write through an [`OutputFile`]: every committed chunk closes one gzip
//!   member or Zstandard frame, so the file is a valid compressed file at every commit and
//!   the saved size is a member boundary; a restart truncates the file to it, as for plain
//!   files. Writers on a storage compress each part object whole ([`compress_part`]).

mod input;
mod output;

use serde::Deserialize;

pub(crate) use input::{InputFile, decompress_stream};
pub(crate) use output::{OutputFile, compress_part};

/// The `compression` property: how a file's bytes are compressed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// By the file name's extension (the default): `.gz`/`.gzip` is gzip, `.zst`/`.zstd`
    /// is Zstandard, anything else is not compressed. Part files of the writers on a
    /// storage are not compressed.
    #[default]
    Auto,
    /// Not compressed, whatever the name.
    None,
    /// gzip (RFC 1952); `gz` is an alias.
    #[serde(alias = "gz")]
    Gzip,
    /// Zstandard (RFC 8878); `zst` is an alias.
    #[serde(alias = "zst")]
    Zstd,
}

/// A compression codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// gzip.
    Gzip,
    /// Zstandard.
    Zstd,
}

impl Codec {
    /// The codec a file name's extension says (`.gz`, `.gzip`, `.zst`, `.zstd`, in any
    /// case), if any.
    pub fn from_name(name: &str) -> Option<Codec> {
        let extension = name.rsplit_once('.')?.1;
        if extension.eq_ignore_ascii_case("gz") || extension.eq_ignore_ascii_case("gzip") {
            Some(Codec::Gzip)
        } else if extension.eq_ignore_ascii_case("zst") || extension.eq_ignore_ascii_case("zstd") {
            Some(Codec::Zstd)
        } else {
            None
        }
    }

    /// The extension the writers add to part names (`gz`, `zst`).
    pub fn extension(self) -> &'static str {
        match self {
            Codec::Gzip => "gz",
            Codec::Zstd => "zst",
        }
    }

    /// The codec's name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Gzip => "gzip",
            Codec::Zstd => "zstd",
        }
    }
}

impl Compression {
    /// The codec of the file `name` (local path or object path).
    pub fn codec_for(self, name: &str) -> Option<Codec> {
        match self {
            Compression::Auto => Codec::from_name(name),
            Compression::None => None,
            Compression::Gzip => Some(Codec::Gzip),
            Compression::Zstd => Some(Codec::Zstd),
        }
    }

    /// The codec of the part objects a writer on a storage names itself: `auto` is none.
    pub fn codec_for_parts(self) -> Option<Codec> {
        self.codec_for("")
    }
}

#[cfg(test)]
mod tests;
