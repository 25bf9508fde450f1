//! Files written whole or not at all: a temporary file beside the target, synced, then renamed
//! over it, so an interrupted deploy never leaves half a file behind.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct FileError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

fn at(path: &Path) -> impl FnOnce(std::io::Error) -> FileError + '_ {
    move |source| FileError {
        path: path.to_path_buf(),
        source,
    }
}

/// The file's text, or `None` when there is no such file.
pub fn read_optional(path: &Path) -> Result<Option<String>, FileError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(at(path)(e)),
    }
}

/// Replaces `path` with `content` (mode `mode`), creating its directory.
pub fn write_atomic(path: &Path, content: &str, mode: u32) -> Result<(), FileError> {
    write_bytes_atomic(path, content.as_bytes(), mode)
}

pub fn write_bytes_atomic(path: &Path, content: &[u8], mode: u32) -> Result<(), FileError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(at(dir))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&temp)?;
        // The mode asked at creation is masked by the umask; set it exactly.
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.write_all(content)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written.map_err(at(path))
}

/// Whether `path` holds exactly `content` with mode `mode`.
pub fn same(path: &Path, content: &[u8], mode: u32) -> bool {
    std::fs::read(path).is_ok_and(|old| old == content)
        && std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o7777 == mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_replaces_the_whole_file_with_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etc/secret");
        write_atomic(&path, "one", 0o600).unwrap();
        assert!(same(&path, b"one", 0o600));
        write_atomic(&path, "two", 0o644).unwrap();
        assert!(same(&path, b"two", 0o644));
        assert!(!same(&path, b"two", 0o600));
        let left: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file is left behind");
        assert_eq!(read_optional(&dir.path().join("none")).unwrap(), None);
    }
}
