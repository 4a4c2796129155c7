//! Local file writes that never leave a half-written file behind.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to a temporary file next to `path`, sets `mode`, syncs, and
/// renames it into place.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".ocfo-tmp-")
        .tempfile_in(dir)?;
    // Mode first, content second: a secret is never readable by others, not
    // even for an instant.
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Why [`read_regular_capped`] refused a file.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not a regular file (a FIFO, device or directory would block or never end)")]
    NotRegular,
    #[error("larger than the limit of {}", human_size(*.0))]
    TooLarge(u64),
}

fn human_size(bytes: u64) -> String {
    if bytes % (1024 * 1024) == 0 {
        format!("{} MiB", bytes / (1024 * 1024))
    } else {
        format!("{bytes} bytes")
    }
}

/// Reads a regular file of at most `limit` bytes. The file is opened without
/// blocking and checked on the open descriptor, so a FIFO cannot hang the
/// read and a swap between check and read changes nothing; `/dev/zero` and
/// huge files are refused instead of filling memory.
pub fn read_regular_capped(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular);
    }
    if meta.len() > limit {
        return Err(ReadError::TooLarge(limit));
    }
    // The file may grow after the check.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge(limit));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_reads_refuse_fifos_devices_directories_and_big_files() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let st = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(st.success());
        let start = std::time::Instant::now();
        assert!(matches!(
            read_regular_capped(&fifo, 10),
            Err(ReadError::NotRegular)
        ));
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
        assert!(matches!(
            read_regular_capped(Path::new("/dev/zero"), 10),
            Err(ReadError::NotRegular)
        ));
        assert!(matches!(
            read_regular_capped(dir.path(), 10),
            Err(ReadError::NotRegular)
        ));
        let big = dir.path().join("big");
        std::fs::write(&big, [b'x'; 11]).unwrap();
        let err = read_regular_capped(&big, 10).unwrap_err();
        assert_eq!(err.to_string(), "larger than the limit of 10 bytes");
        std::fs::write(&big, [b'x'; 10]).unwrap();
        assert_eq!(read_regular_capped(&big, 10).unwrap().len(), 10);
    }
}
