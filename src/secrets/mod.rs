//! Secret references (`{env: NAME}`, `{file: PATH}`, `{command: "..."}`) and
//! the values they resolve to.
//!
//! A [`SecretValue`] has no `Display` and a redacted `Debug`, so a value can only
//! reach output through [`SecretValue::expose`], which is greppable. Anything
//! that prints user-derived text can pass it through a [`Redactor`] as a last line
//! of defence.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What every redacted secret is replaced with in output and `render`.
pub const REDACTED: &str = "<redacted>";

#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretRef {
    Env(String),
    File(String),
    Command(String),
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(n) => write!(f, "{{env: {n}}}"),
            SecretRef::File(p) => write!(f, "{{file: {p}}}"),
            SecretRef::Command(c) => write!(f, "{{command: {c:?}}}"),
        }
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SecretValue(String);

impl SecretValue {
    pub fn new(value: impl Into<String>) -> Self {
        SecretValue(value.into())
    }

    /// The clear-text value: only for env files, remote commands' stdin and
    /// comparisons, never for output.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Why a reference could not be resolved. Messages name the reference, never a value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResolveError {
    #[error("environment variable `{0}` is not set")]
    EnvMissing(String),
    #[error("environment variable `{0}` is empty")]
    EnvEmpty(String),
    #[error("cannot read secret file `{path}`: {reason}")]
    File { path: String, reason: String },
    #[error("secret file `{0}` is empty")]
    FileEmpty(String),
    #[error("secret command `{command}` failed: {reason}")]
    Command { command: String, reason: String },
    #[error("secret command `{0}` printed nothing")]
    CommandEmpty(String),
}

/// Expands a leading `~` to the home directory, as the shell would.
pub fn expand_tilde(path: &str) -> PathBuf {
    match path
        .strip_prefix("~/")
        .or(if path == "~" { Some("") } else { None })
    {
        Some(rest) => match std::env::var_os("HOME") {
            Some(home) => PathBuf::from(home).join(rest),
            None => PathBuf::from(path),
        },
        None => PathBuf::from(path),
    }
}

/// A path on the operator's machine: `~` expanded, relative paths taken from
/// `base` (the inventory's folder) when given.
pub fn laptop_path(path: &str, base: Option<&Path>) -> PathBuf {
    let p = expand_tilde(path);
    match base {
        Some(b) if p.is_relative() => b.join(p),
        _ => p,
    }
}

impl SecretRef {
    pub fn resolve(&self) -> Result<SecretValue, ResolveError> {
        self.resolve_from(None)
    }

    /// Resolves the reference; a relative `{file:}` path and a `{command:}`
    /// run from `base` (the inventory's folder), so an inventory works from any
    /// working directory.
    pub fn resolve_from(&self, base: Option<&Path>) -> Result<SecretValue, ResolveError> {
        match self {
            SecretRef::Env(name) => match std::env::var(name) {
                Ok(v) if v.is_empty() => Err(ResolveError::EnvEmpty(name.clone())),
                Ok(v) => Ok(SecretValue(v)),
                Err(_) => Err(ResolveError::EnvMissing(name.clone())),
            },
            SecretRef::File(path) => {
                let bytes =
                    std::fs::read(laptop_path(path, base)).map_err(|e| ResolveError::File {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                let text = String::from_utf8(bytes).map_err(|_| ResolveError::File {
                    path: path.clone(),
                    reason: "not UTF-8 text".into(),
                })?;
                let trimmed = text.strip_suffix('\n').unwrap_or(&text);
                let trimmed = trimmed.strip_suffix('\r').unwrap_or(trimmed);
                if trimmed.is_empty() {
                    return Err(ResolveError::FileEmpty(path.clone()));
                }
                Ok(SecretValue(trimmed.to_string()))
            }
            SecretRef::Command(command) => {
                // stderr is discarded, not shown: a failing secret command may
                // well print part of what it was fetching.
                let mut cmd = Command::new("sh");
                cmd.arg("-c").arg(command);
                if let Some(dir) = base.filter(|d| !d.as_os_str().is_empty()) {
                    cmd.current_dir(dir);
                }
                let out = cmd
                    .stdin(Stdio::null())
                    .stderr(Stdio::null())
                    .output()
                    .map_err(|e| ResolveError::Command {
                        command: command.clone(),
                        reason: e.to_string(),
                    })?;
                if !out.status.success() {
                    return Err(ResolveError::Command {
                        command: command.clone(),
                        reason: match out.status.code() {
                            Some(c) => format!("exit status {c}"),
                            None => "killed by a signal".into(),
                        },
                    });
                }
                let text = String::from_utf8(out.stdout).map_err(|_| ResolveError::Command {
                    command: command.clone(),
                    reason: "output is not UTF-8 text".into(),
                })?;
                let trimmed = text.trim();
                if trimmed.is_empty() {
                    return Err(ResolveError::CommandEmpty(command.clone()));
                }
                Ok(SecretValue(trimmed.to_string()))
            }
        }
    }
}

/// Replaces every known secret value in a piece of text with [`REDACTED`].
#[derive(Debug, Default, Clone)]
pub struct Redactor {
    values: Vec<String>,
}

impl Redactor {
    pub fn new<'a>(values: impl IntoIterator<Item = &'a SecretValue>) -> Self {
        // Very short values would redact ordinary words; they are not secrets
        // worth the name, and validate warns about them.
        let mut values: Vec<String> = values
            .into_iter()
            .map(|v| v.0.clone())
            .filter(|v| v.len() >= 4)
            .collect();
        // Longest first, so a secret that contains another is removed whole.
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        Redactor { values }
    }

    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for v in &self.values {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), REDACTED);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let v = SecretValue::new("hunter2-very-secret");
        assert_eq!(format!("{v:?}"), REDACTED);
    }

    #[test]
    fn file_secrets_trim_one_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        std::fs::write(&p, "abc def\n").unwrap();
        let r = SecretRef::File(p.display().to_string());
        assert_eq!(r.resolve().unwrap().expose(), "abc def");
    }

    #[test]
    fn command_secrets_and_failures() {
        let ok = SecretRef::Command("printf ' tok-123 \\n'".into())
            .resolve()
            .unwrap();
        assert_eq!(ok.expose(), "tok-123");
        // stderr is never shown (it may carry what the command fetched).
        let err = SecretRef::Command("printf 'leaked-%s' value >&2; exit 3".into())
            .resolve()
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("exit status 3"), "{msg}");
        assert!(!msg.contains("leaked-value"));
    }

    #[test]
    fn missing_env_names_the_variable() {
        let err = SecretRef::Env("OCFO_TEST_SURELY_UNSET_VAR".into())
            .resolve()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable `OCFO_TEST_SURELY_UNSET_VAR` is not set"
        );
    }

    #[test]
    fn redactor_replaces_longest_first() {
        let a = SecretValue::new("abcd");
        let b = SecretValue::new("abcdefgh");
        let r = Redactor::new([&a, &b]);
        assert_eq!(r.redact("x abcdefgh y abcd"), "x <redacted> y <redacted>");
    }
}
