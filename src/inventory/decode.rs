//! Typed reads from the position-carrying YAML tree. Every read that fails
//! records a located diagnostic and returns `None`, so one pass finds every
//! problem in the file.

use std::net::IpAddr;
use std::time::Duration;

use indexmap::IndexMap;

use crate::diagnostics::{did_you_mean, Diagnostic, Location};
use crate::secrets::SecretRef;

use super::model::{Secret, Value};
use super::units::{parse_duration, Cidr};
use super::yaml::{Key, Kind, Node, Scalar};

pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

#[derive(Default)]
pub struct Decoder {
    pub diagnostics: Vec<Diagnostic>,
    /// Every secret reference met, in file order, for resolution afterwards.
    pub secrets: Vec<Secret>,
    /// Literal credentials written in the inventory (under secret-looking
    /// keys), so output redacts them like resolved secrets.
    pub literals: Vec<String>,
}

/// A mapping whose keys have been checked against the allowed set.
pub struct Fields<'n> {
    pub path: String,
    pub loc: Location,
    entries: &'n [(Key, Node)],
}

impl<'n> Fields<'n> {
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v)
            // An explicit `key:` with nothing after it means "use the default".
            .filter(|v| !v.is_null())
    }

    pub fn path_of(&self, key: &str) -> String {
        join(&self.path, key)
    }
}

impl Decoder {
    pub fn error(&mut self, path: &str, loc: Location, message: impl Into<String>) {
        self.diagnostics
            .push(Diagnostic::error(message).at(path, Some(loc)));
    }

    pub fn warn(&mut self, path: &str, loc: Location, message: impl Into<String>) {
        self.diagnostics
            .push(Diagnostic::warning(message).at(path, Some(loc)));
    }

    fn expected(&mut self, node: &Node, path: &str, what: &str) {
        self.error(
            path,
            node.loc,
            format!("expected {what}, found {}", node.type_name()),
        );
    }

    /// Opens a mapping, reporting keys outside `allowed` with a suggestion.
    pub fn fields<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        allowed: &[&str],
    ) -> Option<Fields<'n>> {
        let Kind::Map(entries) = &node.kind else {
            self.expected(node, path, "a mapping");
            return None;
        };
        for (key, _) in entries {
            if !allowed.contains(&key.name.as_str()) {
                let mut d = Diagnostic::error(format!("unknown key `{}`", key.name))
                    .at(path, Some(key.loc));
                d = match did_you_mean(&key.name, allowed.iter().copied()) {
                    Some(s) => d.hint(format!("did you mean `{s}`?")),
                    None => d.hint(format!("allowed here: {}", allowed.join(", "))),
                };
                self.diagnostics.push(d);
            }
        }
        Some(Fields {
            path: path.to_string(),
            loc: node.loc,
            entries,
        })
    }

    /// The raw entries of a mapping with free-form keys (channels, env).
    pub fn entries<'n>(&mut self, node: &'n Node, path: &str) -> Option<&'n [(Key, Node)]> {
        match &node.kind {
            Kind::Map(entries) => Some(entries),
            _ if node.is_null() => Some(&[]),
            _ => {
                self.expected(node, path, "a mapping");
                None
            }
        }
    }

    pub fn required<'n>(&mut self, f: &Fields<'n>, key: &str) -> Option<&'n Node> {
        let node = f.get(key);
        if node.is_none() {
            self.error(&f.path, f.loc, format!("missing required key `{key}`"));
        }
        node
    }

    pub fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        match node.scalar() {
            Some(Scalar::Str(s)) if !s.trim().is_empty() => Some(s.to_string()),
            Some(Scalar::Str(_)) => {
                self.error(path, node.loc, "must not be empty");
                None
            }
            // A plain number where text is wanted (a version `2026.9`, a
            // branch `2024`) is still text: keep it as written.
            Some(Scalar::Int(_) | Scalar::Float(_)) => match &node.kind {
                Kind::Scalar { text, .. } => Some(text.clone()),
                _ => None,
            },
            _ => {
                self.expected(node, path, "a string");
                None
            }
        }
    }

    pub fn opt_string(&mut self, f: &Fields<'_>, key: &str) -> Option<String> {
        let node = f.get(key)?;
        self.string(node, &f.path_of(key))
    }

    pub fn req_string(&mut self, f: &Fields<'_>, key: &str) -> Option<String> {
        let node = self.required(f, key)?;
        self.string(node, &f.path_of(key))
    }

    pub fn boolean(&mut self, f: &Fields<'_>, key: &str, default: bool) -> Option<bool> {
        let Some(node) = f.get(key) else {
            return Some(default);
        };
        match node.scalar() {
            Some(Scalar::Bool(b)) => Some(b),
            _ => {
                self.expected(node, &f.path_of(key), "true or false");
                None
            }
        }
    }

    pub fn integer(&mut self, node: &Node, path: &str, min: i64, max: i64) -> Option<i64> {
        match node.scalar() {
            Some(Scalar::Int(i)) if (min..=max).contains(&i) => Some(i),
            Some(Scalar::Int(i)) => {
                self.error(
                    path,
                    node.loc,
                    format!("{i} is out of range: must be {min}..{max}"),
                );
                None
            }
            _ => {
                self.expected(node, path, "an integer");
                None
            }
        }
    }

    pub fn port(&mut self, f: &Fields<'_>, key: &str, default: u16) -> Option<u16> {
        match f.get(key) {
            None => Some(default),
            Some(n) => self
                .integer(n, &f.path_of(key), 1, 65535)
                .and_then(|i| u16::try_from(i).ok()),
        }
    }

    pub fn count(&mut self, f: &Fields<'_>, key: &str, default: u32) -> Option<u32> {
        match f.get(key) {
            None => Some(default),
            Some(n) => self
                .integer(n, &f.path_of(key), 1, 1000)
                .and_then(|i| u32::try_from(i).ok()),
        }
    }

    /// A duration up to `max`: a typo like `5000h` would otherwise render as a
    /// timer firing once in centuries or overflow what systemd accepts.
    pub fn duration(
        &mut self,
        f: &Fields<'_>,
        key: &str,
        default: Duration,
        max: Duration,
    ) -> Option<Duration> {
        let Some(node) = f.get(key) else {
            return Some(default);
        };
        let path = f.path_of(key);
        let text = match (&node.kind, node.scalar()) {
            (
                Kind::Scalar { text, .. },
                Some(Scalar::Str(_) | Scalar::Int(_) | Scalar::Float(_)),
            ) => text,
            _ => {
                self.expected(node, &path, "a duration like `2s`");
                return None;
            }
        };
        match parse_duration(text) {
            Ok(d) if d.is_zero() => {
                self.error(&path, node.loc, "must be longer than zero");
                None
            }
            Ok(d) if d > max => {
                self.error(
                    &path,
                    node.loc,
                    format!(
                        "`{}` is too long: at most {}",
                        text.trim(),
                        super::units::format_duration(max)
                    ),
                );
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.error(&path, node.loc, e);
                None
            }
        }
    }

    pub fn ip(&mut self, node: &Node, path: &str) -> Option<IpAddr> {
        let s = self.string(node, path)?;
        match s.parse() {
            Ok(ip) => Some(ip),
            Err(_) => {
                self.error(path, node.loc, format!("`{s}` is not an IP address"));
                None
            }
        }
    }

    pub fn cidr(&mut self, node: &Node, path: &str) -> Option<Cidr> {
        let s = self.string(node, path)?;
        match Cidr::parse(&s) {
            Ok(c) => Some(c),
            Err(e) => {
                self.error(path, node.loc, e);
                None
            }
        }
    }

    pub fn string_list(&mut self, node: &Node, path: &str) -> Option<Vec<String>> {
        let Kind::Seq(items) = &node.kind else {
            if node.is_null() {
                return Some(Vec::new());
            }
            self.expected(node, path, "a list");
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match self.string(item, &format!("{path}[{i}]")) {
                Some(s) => out.push(s),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// `{env: NAME}`, `{file: PATH}` or `{command: "..."}`; `None` (no
    /// diagnostic) when the node is not shaped like a reference at all.
    fn try_secret_ref(&mut self, node: &Node, path: &str) -> Option<Option<Secret>> {
        let Kind::Map(entries) = &node.kind else {
            return None;
        };
        let [(key, value)] = entries.as_slice() else {
            return None;
        };
        let make = match key.name.as_str() {
            "env" => SecretRef::Env,
            "file" => SecretRef::File,
            "command" => SecretRef::Command,
            _ => return None,
        };
        let Some(Scalar::Str(text)) = value.scalar() else {
            self.expected(value, &join(path, &key.name), "a string");
            return Some(None);
        };
        if text.trim().is_empty() {
            self.error(&join(path, &key.name), value.loc, "must not be empty");
            return Some(None);
        }
        if key.name == "env" && !is_env_name(text) {
            self.error(
                &join(path, "env"),
                value.loc,
                format!("`{text}` is not an environment variable name"),
            );
            return Some(None);
        }
        let secret = Secret {
            reference: make(text.to_string()),
            path: path.to_string(),
            loc: node.loc,
        };
        self.secrets.push(secret.clone());
        Some(Some(secret))
    }

    /// A value that must be a secret reference: a plain string is an error, so a
    /// credential never ends up committed in the inventory by accident.
    pub fn secret(&mut self, node: &Node, path: &str) -> Option<Secret> {
        match self.try_secret_ref(node, path) {
            Some(s) => s,
            None => {
                let mut d = Diagnostic::error(format!(
                    "must be a secret reference, found {}",
                    node.type_name()
                ))
                .at(path, Some(node.loc))
                .hint("write `{env: NAME}`, `{file: PATH}` or `{command: \"...\"}`");
                if matches!(node.kind, Kind::Scalar { .. }) {
                    d.message = "must be a secret reference, not a literal value".into();
                }
                self.diagnostics.push(d);
                None
            }
        }
    }

    /// A free-form value in which any leaf may be a secret reference.
    pub fn value(&mut self, node: &Node, path: &str) -> Value {
        if let Some(secret) = self.try_secret_ref(node, path) {
            return secret.map(Value::Secret).unwrap_or(Value::Null);
        }
        match &node.kind {
            Kind::Seq(items) => Value::Seq(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, n)| self.value(n, &format!("{path}[{i}]")))
                    .collect(),
            ),
            Kind::Map(entries) => {
                let mut map = IndexMap::new();
                for (k, v) in entries {
                    map.insert(k.name.clone(), self.value(v, &join(path, &k.name)));
                }
                Value::Map(map)
            }
            Kind::Scalar { .. } => match node.scalar() {
                Some(Scalar::Bool(b)) => Value::Bool(b),
                Some(Scalar::Int(i)) => Value::Int(i),
                Some(Scalar::Float(f)) => Value::Float(f),
                Some(Scalar::Str(s)) => Value::Str(s.to_string()),
                Some(Scalar::Null) | None => Value::Null,
            },
        }
    }
}

pub fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
