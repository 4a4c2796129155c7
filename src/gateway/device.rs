//! The Ed25519 device identity a gateway client signs its `connect` with:
//! one key file per client, created once and kept (the gateway pairs the key).

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use ring::signature::{Ed25519KeyPair, KeyPair};

/// A key file is about 120 bytes of PEM; anything much larger is not one.
pub const MAX_KEY_FILE: u64 = 4 * 1024;

const PEM_BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const PEM_END: &str = "-----END PRIVATE KEY-----";

/// Why a device key could not be loaded or created. Never shows key material.
#[derive(Debug, thiserror::Error)]
#[error("device key `{path}`: {reason}")]
pub struct DeviceError {
    pub path: PathBuf,
    pub reason: String,
}

/// An Ed25519 key pair and the two names the gateway knows it by: the device
/// id (hex SHA-256 of the raw public key) and the raw public key in base64url.
/// Computed exactly as OpenClaw's own clients do, so the gateway's
/// `deriveDeviceIdFromPublicKey` agrees with [`DeviceIdentity::id`].
pub struct DeviceIdentity {
    key: Ed25519KeyPair,
    id: String,
    public_key: String,
}

impl fmt::Debug for DeviceIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceIdentity")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl DeviceIdentity {
    /// Loads the key at `path`, or creates it (mode 0600, written atomically)
    /// when nothing is there. Two processes creating it at once end up with
    /// the same key: the loser of the race loads the winner's file.
    pub fn load_or_create(path: &Path) -> Result<Self, DeviceError> {
        match std::fs::symlink_metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(device_error(path, e)),
            Ok(_) => return Self::load(path),
        }
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| device_error(path, "the system random generator failed"))?;
        match crate::fsutil::write_new(path, pem_encode(pkcs8.as_ref()).as_bytes(), 0o600) {
            Ok(()) => Self::from_pkcs8(pkcs8.as_ref()).map_err(|reason| device_error(path, reason)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load(path),
            Err(e) => Err(device_error(path, e)),
        }
    }

    /// Loads an existing key file: PKCS#8 (v1 as Node and OpenSSL write it,
    /// or v2 as ring does), PEM or DER. A symlink, anything but a regular
    /// file, or more than [`MAX_KEY_FILE`] bytes is refused.
    pub fn load(path: &Path) -> Result<Self, DeviceError> {
        let bytes = read_key_file(path).map_err(|reason| device_error(path, reason))?;
        let der = if bytes.starts_with(PEM_BEGIN.as_bytes()) {
            pem_decode(&bytes).map_err(|reason| device_error(path, reason))?
        } else {
            bytes
        };
        Self::from_pkcs8(&der).map_err(|reason| device_error(path, reason))
    }

    /// An identity from PKCS#8 DER bytes.
    pub(crate) fn from_pkcs8(der: &[u8]) -> Result<Self, String> {
        let key = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map_err(|e| format!("not an Ed25519 PKCS#8 key ({e})"))?;
        let raw = key.public_key().as_ref();
        Ok(DeviceIdentity {
            id: crate::sha256_hex(raw),
            public_key: data_encoding::BASE64URL_NOPAD.encode(raw),
            key,
        })
    }

    /// The device id the gateway pairs: hex SHA-256 of the raw 32-byte key.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The raw 32-byte public key, base64url without padding.
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// The Ed25519 signature of `payload` (its UTF-8 bytes), base64url
    /// without padding.
    pub fn sign(&self, payload: &str) -> String {
        data_encoding::BASE64URL_NOPAD.encode(self.key.sign(payload.as_bytes()).as_ref())
    }
}

fn device_error(path: &Path, reason: impl fmt::Display) -> DeviceError {
    DeviceError {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Opens without following a final symlink and without blocking (a FIFO
/// cannot hang the read), then checks the open descriptor, so a swap between
/// check and read changes nothing.
fn read_key_file(path: &Path) -> Result<Vec<u8>, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                "is a symbolic link; a device key must be a regular file".to_string()
            } else {
                e.to_string()
            }
        })?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("is not a regular file".into());
    }
    if meta.len() > MAX_KEY_FILE {
        return Err(format!("is larger than {MAX_KEY_FILE} bytes"));
    }
    let mut bytes = Vec::new();
    file.take(MAX_KEY_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_KEY_FILE {
        return Err(format!("is larger than {MAX_KEY_FILE} bytes"));
    }
    Ok(bytes)
}

fn pem_encode(der: &[u8]) -> String {
    let b64 = data_encoding::BASE64.encode(der);
    let mut pem = format!("{PEM_BEGIN}\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str(PEM_END);
    pem.push('\n');
    pem
}

fn pem_decode(pem: &[u8]) -> Result<Vec<u8>, String> {
    let text = std::str::from_utf8(pem).map_err(|_| "PEM that is not UTF-8".to_string())?;
    let body = text
        .trim()
        .strip_prefix(PEM_BEGIN)
        .and_then(|rest| rest.strip_suffix(PEM_END))
        .ok_or("not a single PEM `PRIVATE KEY` block")?;
    let b64: String = body.split_whitespace().collect();
    data_encoding::BASE64
        .decode(b64.as_bytes())
        .map_err(|_| "PEM with invalid base64".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A throwaway key Node 24 generated (`crypto.generateKeyPairSync("ed25519")`,
    /// PKCS#8 v1 PEM), with the id and public key Node computed for it.
    const NODE_KEY: &str = include_str!("testdata/node-device-key.pem");
    const NODE_DEVICE_ID: &str = "d22b1426339b0a68095f44231eb4717147514351ba38e1de166861045f8abfe4";
    const NODE_PUBLIC_KEY: &str = "whTedYsS_1HKQtAuQVRQxSJrtma5KYAoX814qXhfB0o";

    #[test]
    fn a_node_key_gets_the_id_and_public_key_node_computed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.pem");
        std::fs::write(&path, NODE_KEY).unwrap();
        let device = DeviceIdentity::load(&path).unwrap();
        assert_eq!(device.id(), NODE_DEVICE_ID);
        assert_eq!(device.public_key(), NODE_PUBLIC_KEY);
        assert!(!format!("{device:?}").contains("key:"));
    }

    #[test]
    fn signatures_match_nodes_byte_for_byte() {
        // Ed25519 is deterministic: the frame Node sent to the real gateway
        // carries the signature our key must reproduce for the same payload.
        let frame: serde_json::Value =
            serde_json::from_str(include_str!("testdata/node-device-connect.json")).unwrap();
        let params = &frame["params"];
        let d = &params["device"];
        let payload = format!(
            "v3|{}|gateway-client|backend|operator|operator.admin,operator.read,operator.write|{}|{}|{}|linux|",
            d["id"].as_str().unwrap(),
            d["signedAt"].as_i64().unwrap(),
            params["auth"]["token"].as_str().unwrap(),
            d["nonce"].as_str().unwrap(),
        );
        let der = pem_decode(NODE_KEY.as_bytes()).unwrap();
        let device = DeviceIdentity::from_pkcs8(&der).unwrap();
        assert_eq!(device.sign(&payload), d["signature"].as_str().unwrap());
        assert_eq!(device.id(), d["id"].as_str().unwrap());
        assert_eq!(device.public_key(), d["publicKey"].as_str().unwrap());
    }

    #[test]
    fn created_once_with_mode_0600_then_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/device.pem");
        let first = DeviceIdentity::load_or_create(&path).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(PEM_BEGIN), "{text}");
        let again = DeviceIdentity::load_or_create(&path).unwrap();
        assert_eq!(first.id(), again.id());
        assert_eq!(first.id().len(), 64);
        assert_eq!(first.public_key().len(), 43);
        let sig = first.sign("hello");
        let raw = data_encoding::BASE64URL_NOPAD
            .decode(first.public_key().as_bytes())
            .unwrap();
        let sig = data_encoding::BASE64URL_NOPAD
            .decode(sig.as_bytes())
            .unwrap();
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, raw)
            .verify(b"hello", &sig)
            .unwrap();
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("device.pem")]);
    }

    #[test]
    fn der_keys_load_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.der");
        std::fs::write(&path, pem_decode(NODE_KEY.as_bytes()).unwrap()).unwrap();
        assert_eq!(DeviceIdentity::load(&path).unwrap().id(), NODE_DEVICE_ID);
    }

    #[test]
    fn links_folders_fifos_big_and_garbage_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.pem");
        std::fs::write(&real, NODE_KEY).unwrap();
        let link = dir.path().join("link.pem");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let err = DeviceIdentity::load_or_create(&link).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");

        let err = DeviceIdentity::load_or_create(dir.path()).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");

        let fifo = dir.path().join("fifo");
        let st = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(st.success());
        let err = DeviceIdentity::load(&fifo).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");

        let big = dir.path().join("big.pem");
        std::fs::write(&big, vec![b'A'; MAX_KEY_FILE as usize + 1]).unwrap();
        let err = DeviceIdentity::load_or_create(&big).unwrap_err();
        assert!(err.to_string().contains("larger than 4096"), "{err}");

        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a key").unwrap();
        let err = DeviceIdentity::load_or_create(&garbage).unwrap_err();
        assert!(err.to_string().contains("PKCS#8"), "{err}");
        // The refused file is left alone, not replaced by a fresh key.
        assert_eq!(std::fs::read_to_string(&garbage).unwrap(), "not a key");
    }
}
