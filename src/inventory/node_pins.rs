//! The Node.js tarballs ocfo trusts by itself: their SHA-256, compiled in.
//!
//! A mirror's own `SHASUMS256.txt` proves nothing: whoever controls the
//! mirror (or the path to an `http://` one) writes both the tarball and the
//! list. These sums are the ones of Node's signed `SHASUMS256.txt` for each
//! supported release; any other version (or a build of one's own, such as
//! the lab's mirror) needs `node.sha256` in the inventory.

/// `(version, Node's arch name, SHA-256 of node-v<version>-linux-<arch>.tar.gz)`.
/// Bump with the default version (`DEFAULT_NODE_VERSION`), copying the two
/// `.tar.gz` lines of `https://nodejs.org/dist/v<version>/SHASUMS256.txt`
/// after checking its signature (`SHASUMS256.txt.sig`, the keys listed in
/// Node's README).
const PINNED: &[(&str, &str, &str)] = &[
    (
        "24.21.0",
        "x64",
        "6e1db87ef58b8819e5d5402eff1536491b18edd8eb7bee5ef7897876e88dc5ff",
    ),
    (
        "24.21.0",
        "arm64",
        "724282c3b43aec998aa9527380465b45d229e021b58035f5f4f63095eabfe5d5",
    ),
];

/// Node's names for the architectures ocfo installs it on.
pub const NODE_ARCHS: &[&str] = &["x64", "arm64"];

/// The pinned SHA-256 of `node-v<version>-linux-<arch>.tar.gz`, if ocfo has one.
pub fn pinned(version: &str, arch: &str) -> Option<&'static str> {
    PINNED
        .iter()
        .find(|(v, a, _)| *v == version && *a == arch)
        .map(|(_, _, sum)| *sum)
}

/// The versions ocfo pins, for messages.
pub fn pinned_versions() -> Vec<&'static str> {
    let mut v: Vec<&str> = PINNED.iter().map(|(v, _, _)| *v).collect();
    v.dedup();
    v
}

/// The tarball's checksum to install with and who vouches for it: the
/// inventory's `node.sha256.<arch>` (an operator's own build, another
/// version) wins over ocfo's pin; neither is an error saying what to set.
pub fn expected(
    version: &str,
    arch: &str,
    inventory: &std::collections::BTreeMap<String, String>,
) -> Result<(String, String), String> {
    if let Some(sum) = inventory.get(arch) {
        return Ok((sum.clone(), format!("node.sha256.{arch} in the inventory")));
    }
    if let Some(sum) = pinned(version, arch) {
        return Ok((
            sum.to_string(),
            format!("pinned in ocfo {}", env!("CARGO_PKG_VERSION")),
        ));
    }
    Err(format!(
        "Node.js {version} for linux-{arch} has no checksum pinned in ocfo (it pins {}): set node.sha256.{arch} in the inventory to the SHA-256 of node-v{version}-linux-{arch}.tar.gz, from the release's SHASUMS256.txt after checking its signature",
        pinned_versions().join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn the_default_version_is_pinned_for_every_arch() {
        for arch in NODE_ARCHS {
            let sum = pinned(super::super::DEFAULT_NODE_VERSION, arch).expect(arch);
            assert_eq!(sum.len(), 64);
            assert!(sum
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        }
    }

    #[test]
    fn the_inventory_wins_and_nothing_is_an_error_naming_the_key() {
        let none = BTreeMap::new();
        let (sum, by) = expected("24.21.0", "x64", &none).unwrap();
        assert!(sum.starts_with("6e1db87e") && by.starts_with("pinned in ocfo"));
        let own: BTreeMap<String, String> = [("x64".to_string(), "ab".repeat(32))].into();
        let (sum, by) = expected("24.21.0", "x64", &own).unwrap();
        assert_eq!(
            (sum, by.as_str()),
            ("ab".repeat(32), "node.sha256.x64 in the inventory")
        );
        let err = expected("24.99.0", "arm64", &own).unwrap_err();
        assert!(err.contains("set node.sha256.arm64"), "{err}");
        assert!(err.contains("node-v24.99.0-linux-arm64.tar.gz"), "{err}");
        assert!(err.contains("pins 24.21.0"), "{err}");
    }
}
