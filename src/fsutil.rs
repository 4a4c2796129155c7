//! Local file writes that never leave a half-written file behind.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to a temporary file next to `path`, sets `mode`, syncs, and
/// renames it into place.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    write_via_temp(dir, path, bytes, mode, None, true)
}

/// Like [`write_atomic`], but only if nothing is at `path` yet
/// (`AlreadyExists` otherwise): two writers racing to create a key keep
/// the first one's.
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    write_via_temp(dir, path, bytes, mode, None, false)
}

/// Like [`write_atomic`], for a file another user must own (in a folder that
/// must already exist): the temporary file is handed to `uid:gid` before any
/// content is written, so the file never holds the content under another
/// owner or mode.
pub fn write_atomic_owned(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    uid: u32,
    gid: u32,
) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    write_via_temp(dir, path, bytes, mode, Some((uid, gid)), true)
}

fn write_via_temp(
    dir: &Path,
    path: &Path,
    bytes: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
    replace: bool,
) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut tmp = tempfile::Builder::new()
        .prefix(".ocfo-tmp-")
        .tempfile_in(dir)?;
    // Mode (and owner) first, content second: a secret is never readable by
    // others, not even for an instant.
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::fchown(tmp.as_file(), Some(uid), Some(gid))?;
    }
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    if replace {
        tmp.persist(path).map_err(|e| e.error)?;
    } else {
        tmp.persist_noclobber(path).map_err(|e| e.error)?;
    }
    Ok(())
}

/// Makes `dir` root's (group `gid`, mode 0750) and refuses a link or a
/// folder someone else owns: root writes only where nobody else can.
pub fn private_dir(dir: &Path, gid: u32) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir(dir)?,
        Err(e) => return Err(e),
        Ok(m) if !m.is_dir() || m.uid() != 0 => {
            return Err(std::io::Error::other(
                "exists and is not a folder of root's",
            ))
        }
        Ok(_) => {}
    }
    std::os::unix::fs::chown(dir, Some(0), Some(gid))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750))
}

/// A user's uid and primary gid, from `/etc/passwd`.
pub fn user_ids(user: &str) -> Option<(u32, u32)> {
    let text = read_regular_capped(Path::new("/etc/passwd"), 4 * 1024 * 1024).ok()?;
    parse_passwd(&String::from_utf8_lossy(&text), user)
}

fn parse_passwd(text: &str, user: &str) -> Option<(u32, u32)> {
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 4 && f[0] == user).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
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

    #[test]
    fn passwd_lookup() {
        let t = "root:x:0:0:root:/root:/bin/sh\nopenclaw:x:999:998::/home/openclaw:/bin/sh\n";
        assert_eq!(parse_passwd(t, "openclaw"), Some((999, 998)));
        assert_eq!(parse_passwd(t, "open"), None);
        assert_eq!(parse_passwd("bad:x:y:z\n", "bad"), None);
    }

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
