//! Secret references (`{env: NAME}`, `{file: PATH}`, `{command: "..."}`) and
//! the values they resolve to.
//!
//! A [`SecretValue`] has no `Display` and a redacted `Debug`, so a value can only
//! reach output through [`SecretValue::expose`], which is greppable. Anything
//! that prints user-derived text can pass it through a [`Redactor`] as a last line
//! of defence.

mod command;
pub mod env_file;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::fsutil::{read_regular_capped, ReadError};

/// The largest secret file read; a credential, even a PEM chain, is far smaller.
pub const MAX_SECRET_FILE: u64 = 1024 * 1024;

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
    #[error("environment variable `{0}` is not valid UTF-8")]
    EnvNotUtf8(String),
    #[error("environment variable `{0}` is empty")]
    EnvEmpty(String),
    #[error("cannot read secret file `{path}`: {reason}")]
    File { path: String, reason: String },
    #[error("secret file `{0}` is empty")]
    FileEmpty(String),
    #[error("secret command `{command}` failed: {reason}")]
    Command { command: String, reason: String },
    #[error("the value contains a NUL byte, which no environment variable can carry")]
    Nul,
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
        let value = self.resolve_raw(base)?;
        // Environment variables are C strings: a NUL would cut the value short.
        if value.0.contains('\0') {
            return Err(ResolveError::Nul);
        }
        Ok(value)
    }

    fn resolve_raw(&self, base: Option<&Path>) -> Result<SecretValue, ResolveError> {
        match self {
            SecretRef::Env(name) => match std::env::var(name) {
                Ok(v) if v.is_empty() => Err(ResolveError::EnvEmpty(name.clone())),
                Ok(v) => Ok(SecretValue(v)),
                Err(std::env::VarError::NotUnicode(_)) => {
                    Err(ResolveError::EnvNotUtf8(name.clone()))
                }
                Err(std::env::VarError::NotPresent) => Err(ResolveError::EnvMissing(name.clone())),
            },
            SecretRef::File(path) => {
                let file_error = |reason: String| ResolveError::File {
                    path: path.clone(),
                    reason,
                };
                let bytes = read_regular_capped(&laptop_path(path, base), MAX_SECRET_FILE)
                    .map_err(|e| match e {
                        ReadError::Io(e) => file_error(e.to_string()),
                        other => file_error(format!("it is {other}")),
                    })?;
                let text =
                    String::from_utf8(bytes).map_err(|_| file_error("not UTF-8 text".into()))?;
                let trimmed = text.strip_suffix('\n').unwrap_or(&text);
                let trimmed = trimmed.strip_suffix('\r').unwrap_or(trimmed);
                if trimmed.is_empty() {
                    return Err(ResolveError::FileEmpty(path.clone()));
                }
                Ok(SecretValue(trimmed.to_string()))
            }
            SecretRef::Command(cmd) => {
                let failed = |reason: String| ResolveError::Command {
                    command: cmd.clone(),
                    reason,
                };
                let stdout = command::run(cmd, base, command::TIMEOUT, command::MAX_OUTPUT)
                    .map_err(|f| {
                        failed(match f {
                            command::Failure::Spawn(e) => e,
                            command::Failure::TimedOut(t) => format!(
                                "no result within {}s; it was stopped",
                                t.as_secs()
                            ),
                            command::Failure::TooMuchOutput(n) => format!(
                                "it printed more than {} KiB, too much for a credential; it was stopped",
                                n / 1024
                            ),
                            command::Failure::Status(Some(c)) => format!("exit status {c}"),
                            command::Failure::Status(None) => "killed by a signal".into(),
                        })
                    })?;
                let text = String::from_utf8(stdout)
                    .map_err(|_| failed("output is not UTF-8 text".into()))?;
                let trimmed = text.trim();
                if trimmed.is_empty() {
                    return Err(ResolveError::CommandEmpty(cmd.clone()));
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

/// Values shorter than this are not redacted: they would blank out ordinary
/// words. `validate` warns about secrets shorter than [`SHORT_SECRET`].
pub const MIN_REDACTED: usize = 4;

/// Below this a value is too short to be a credential or to be told apart
/// from ordinary text in output.
pub const SHORT_SECRET: usize = 8;

impl Redactor {
    pub fn new<'a>(values: impl IntoIterator<Item = &'a SecretValue>) -> Self {
        let mut forms = Vec::new();
        for v in values {
            let v = v.0.as_str();
            if v.chars().count() < MIN_REDACTED {
                continue;
            }
            forms.push(v.to_string());
            // The same value as it appears inside JSON (openclaw.json diffs,
            // --json output) and inside the env file's double quotes.
            if let Ok(json) = serde_json::to_string(v) {
                forms.push(json[1..json.len() - 1].to_string());
            }
            forms.push(env_file::escape_value(v));
        }
        // Longest first, so a secret that contains another is removed whole.
        // (Ties sorted too, so equal forms sit together for dedup.)
        forms.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        forms.dedup();
        Redactor { values: forms }
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
    fn nul_bytes_are_refused_newlines_kept() {
        let err = SecretRef::Command("printf 'a\\000b'".into())
            .resolve()
            .unwrap_err();
        assert_eq!(err, ResolveError::Nul);
        let v = SecretRef::Command("printf 'a\\nb'".into())
            .resolve()
            .unwrap();
        assert_eq!(v.expose(), "a\nb");
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

    #[test]
    fn redactor_catches_json_and_env_file_escaped_forms() {
        let v = SecretValue::new("pa\"ss\\word$1\nline2");
        let r = Redactor::new([&v]);
        let json = serde_json::to_string(&serde_json::json!({ "k": v.expose() })).unwrap();
        assert_eq!(r.redact(&json), "{\"k\":\"<redacted>\"}");
        let env = super::env_file::format("h", &[("K".into(), v.expose().into())], false);
        assert!(r.redact(&env).ends_with("K=\"<redacted>\"\n"), "{env}");
    }
}
