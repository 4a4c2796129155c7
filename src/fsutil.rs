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
