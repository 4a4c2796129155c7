//! The npm trees ocfo installs OpenClaw from: a lock (`package-lock.json`)
//! per version, every package in it with its `resolved` URL and `integrity`
//! (sha512), so both nodes install the same tree and a changed tarball is
//! refused by `npm ci`.
//!
//! OpenClaw's package ships no lock, and its dependencies' own dependencies
//! float: without one, two installs minutes apart can resolve different
//! trees. ocfo ships the locks of the versions it supports (`locks/` in the
//! repository, compiled in); any other version needs `openclaw.lockfile` in
//! the inventory. The lock's SHA-256 is the tree's identity on the host
//! (`/opt/openclaw/.ocfo-tree`).

use std::sync::Arc;

/// `(version, lock)`. Generated with, in an empty folder holding only
/// `package.json` = `{"name": "ocfo-openclaw", "private": true,
/// "dependencies": {"openclaw": "<version>"}}`:
/// `npm install --package-lock-only --ignore-scripts --userconfig /dev/null
/// --omit-lockfile-registry-resolved=false`, then reviewed (docs/deploy.md).
/// 2026.9.5 is shipped for upgrades and rollbacks between the two
/// (`tests/releases.rs`, the Ubuntu 24.04 pair).
const SHIPPED: &[(&str, &str)] = &[
    (
        "2026.9.5",
        include_str!("../../locks/openclaw-2026.9.5.json"),
    ),
    (
        "2026.9.6",
        include_str!("../../locks/openclaw-2026.9.6.json"),
    ),
];

/// The most bytes an operator's lock may have (2026.9.6's is 170 KB).
pub const MAX_LOCKFILE: u64 = 16 * 1024 * 1024;

/// A checked lock, and who vouches for it.
#[derive(Clone, PartialEq, Eq)]
pub struct Lock {
    pub text: Arc<str>,
    /// SHA-256 of `text`, lower-case hex: the tree's identity.
    pub sha256: String,
    /// `shipped with ocfo 0.x` or `openclaw.lockfile in the inventory`.
    pub vouched_by: String,
    /// Packages in the tree (entries other than the project itself).
    pub packages: usize,
}

impl std::fmt::Debug for Lock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lock")
            .field("sha256", &self.sha256)
            .field("vouched_by", &self.vouched_by)
            .field("packages", &self.packages)
            .finish()
    }
}

/// The versions ocfo ships a lock for, for messages.
pub fn shipped_versions() -> Vec<&'static str> {
    SHIPPED.iter().map(|(v, _)| *v).collect()
}

/// ocfo's own lock for `version`, if it ships one.
pub fn shipped(version: &str) -> Option<Lock> {
    let (_, text) = SHIPPED.iter().find(|(v, _)| *v == version)?;
    let packages = check(text, version).expect("a shipped lock is checked by the tests");
    Some(Lock {
        text: Arc::from(*text),
        sha256: crate::sha256_hex(text.as_bytes()),
        vouched_by: format!("shipped with ocfo {}", env!("CARGO_PKG_VERSION")),
        packages,
    })
}

/// An operator's lock for `version`.
pub fn from_inventory(text: &str, version: &str) -> Result<Lock, String> {
    let packages = check(text, version)?;
    Ok(Lock {
        text: Arc::from(text),
        sha256: crate::sha256_hex(text.as_bytes()),
        vouched_by: "openclaw.lockfile in the inventory".into(),
        packages,
    })
}

/// Whether `text` is a lock `npm ci` installs exactly `openclaw@<version>`
/// from, every package fetched by URL and checked by its sha512: a
/// project whose only dependency is `openclaw` at that exact version,
/// lockfile version 2 or 3, no links to local folders. Packages bundled
/// inside another (`inBundle`) come in their parent's tarball, checked with
/// it. Returns the number of packages; an error says what is wrong.
pub fn check(text: &str, version: &str) -> Result<usize, String> {
    let doc: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| format!("not JSON (line {}, column {}): {e}", e.line(), e.column()))?;
    let lockfile_version = doc["lockfileVersion"].as_u64().unwrap_or(0);
    if !(2..=3).contains(&lockfile_version) {
        return Err(format!(
            "lockfileVersion is {}, not 2 or 3 (a package-lock.json of npm 7 or later)",
            doc["lockfileVersion"]
        ));
    }
    let Some(packages) = doc["packages"].as_object() else {
        return Err("it has no `packages`".into());
    };
    let root_deps = &packages.get("").map(|p| &p["dependencies"]);
    let want = serde_json::json!({ "openclaw": version });
    if root_deps.map(|d| d == &want) != Some(true) {
        return Err(format!(
            "its project must depend on exactly `\"openclaw\": \"{version}\"` and nothing else (packages[\"\"].dependencies is {})",
            root_deps.map_or("missing".to_string(), |d| d.to_string())
        ));
    }
    for key in [
        "devDependencies",
        "optionalDependencies",
        "peerDependencies",
    ] {
        if packages[""].get(key).is_some() {
            return Err(format!(
                "its project has {key}: only `openclaw` belongs there"
            ));
        }
    }
    match packages.get("node_modules/openclaw").map(|p| &p["version"]) {
        Some(serde_json::Value::String(v)) if v == version => {}
        other => {
            return Err(format!(
                "it locks openclaw at {}, not {version}",
                other.map_or("nothing".to_string(), |v| v.to_string())
            ))
        }
    }
    let mut count = 0;
    for (path, p) in packages {
        if path.is_empty() {
            continue;
        }
        count += 1;
        let shown = crate::terminal::escape(path);
        if !path.starts_with("node_modules/") || path.split('/').any(|s| s == ".." || s == ".") {
            return Err(format!("package `{shown}` is not under node_modules/"));
        }
        if p["link"].as_bool() == Some(true) {
            return Err(format!(
                "package `{shown}` is a link to a local folder, which would not be the same on the hosts"
            ));
        }
        if p["inBundle"].as_bool() == Some(true) {
            continue;
        }
        let resolved = p["resolved"].as_str().unwrap_or("");
        if !resolved.starts_with("https://") {
            return Err(format!(
                "package `{shown}` has no https `resolved` URL (generate the lock with --omit-lockfile-registry-resolved=false)"
            ));
        }
        let integrity = p["integrity"].as_str().unwrap_or("");
        if !integrity.starts_with("sha512-") || integrity.contains(' ') {
            return Err(format!(
                "package `{shown}` has no single sha512 `integrity`"
            ));
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_lock_is_complete_and_pins_its_version() {
        for (version, text) in SHIPPED {
            let n = check(text, version).unwrap_or_else(|e| panic!("{version}: {e}"));
            assert!(n > 300, "{version}: {n} packages");
            assert!(shipped(version).unwrap().vouched_by.starts_with("shipped"));
        }
        assert!(shipped("2026.9.7").is_none());
        // The lab and the example run a shipped version.
        assert!(shipped_versions().contains(&"2026.9.6"));
    }

    #[test]
    fn a_lock_that_floats_or_points_elsewhere_is_refused() {
        let text = SHIPPED.iter().find(|(v, _)| *v == "2026.9.6").unwrap().1;
        let edit = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut v: serde_json::Value = serde_json::from_str(text).unwrap();
            f(&mut v);
            check(&v.to_string(), "2026.9.6").unwrap_err()
        };
        assert!(check(text, "2026.9.7").unwrap_err().contains("exactly"));
        let e = edit(&|v| {
            v["packages"]["node_modules/yaml"]
                .as_object_mut()
                .unwrap()
                .remove("integrity");
        });
        assert!(
            e.contains("`node_modules/yaml` has no single sha512"),
            "{e}"
        );
        let e = edit(&|v| {
            v["packages"]["node_modules/yaml"]["resolved"] = "http://mirror.invalid/yaml.tgz".into()
        });
        assert!(e.contains("no https `resolved`"), "{e}");
        let e = edit(&|v| {
            v["packages"]["node_modules/evil"] =
                serde_json::json!({"resolved": "../evil", "link": true})
        });
        assert!(e.contains("link to a local folder"), "{e}");
        let e = edit(&|v| v["packages"]["node_modules/openclaw"]["version"] = "2026.9.5".into());
        assert!(e.contains("locks openclaw at \"2026.9.5\""), "{e}");
        let e = edit(&|v| {
            v["packages"][""]["dependencies"]["left-pad"] = "*".into();
        });
        assert!(e.contains("nothing else"), "{e}");
        let e = edit(&|v| v["lockfileVersion"] = 1.into());
        assert!(e.contains("lockfileVersion is 1"), "{e}");
        let e = check("{\n  \"a\": ,\n}", "2026.9.6").unwrap_err();
        assert!(e.contains("line 2, column"), "{e}");
    }
}
