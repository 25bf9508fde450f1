//! gzip of whole files (snapshots), in memory: a shard compresses to a fraction of its size,
//! and object stores want one body per upload.

use std::io::{Read, Write};

use bytes::Bytes;
use flate2::{Compression, read::GzDecoder, write::GzEncoder};

use crate::error::BackupError;

pub fn gzip_file(path: &std::path::Path) -> Result<Bytes, BackupError> {
    let raw =
        std::fs::read(path).map_err(BackupError::io(format!("reading {}", path.display())))?;
    let mut gz = GzEncoder::new(Vec::with_capacity(raw.len() / 3), Compression::fast());
    gz.write_all(&raw).expect("writing to memory");
    Ok(Bytes::from(gz.finish().expect("writing to memory")))
}

/// Unpacks `bytes` into the file `dest`; a damaged stream is an error naming `key`.
pub fn gunzip_to(bytes: &[u8], dest: &std::path::Path, key: &str) -> Result<(), BackupError> {
    let mut raw = Vec::new();
    GzDecoder::new(bytes)
        .read_to_end(&mut raw)
        .map_err(|e| BackupError::damaged(key, format!("not a readable gzip stream: {e}")))?;
    std::fs::write(dest, raw).map_err(BackupError::io(format!("writing {}", dest.display())))
}
