//! Problems found in user input, with where they are and what to do next.
//!
//! Every check in ocfo reports through [`Diagnostic`] so that `validate` can list
//! all problems at once and every message has the same shape:
//! `error: FILE:LINE:COL: KEY.PATH: message` plus an optional hint.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// 1-based line and column in the source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// The file the problem is in, when not the report's own (the
    /// operator's tasks file, a template it names).
    /// (Boxed: a diagnostic is an error type, kept small.)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<Box<Path>>,
    /// Key path such as `nodes.primary.channels[0]`, when the problem has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn error(message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            file: None,
            path: None,
            location: None,
            message: message.into(),
            hint: None,
        }
    }

    pub fn warning(message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(message)
        }
    }

    pub fn at(mut self, path: impl Into<String>, location: Option<Location>) -> Self {
        let path = path.into();
        if !path.is_empty() {
            self.path = Some(path);
        }
        self.location = location;
        self
    }

    /// Places the problem in another file than the report's.
    pub fn in_file(mut self, file: &Path) -> Self {
        self.file = Some(file.into());
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// All diagnostics for one input file, in source order, renderable for a terminal.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub file: PathBuf,
    pub diagnostics: Vec<Diagnostic>,
}

/// More problems than anyone reads; a generated file with 50 000 bad keys
/// must not flood the terminal.
pub const MAX_DIAGNOSTICS: usize = 100;

impl Report {
    pub fn new(file: &Path, mut diagnostics: Vec<Diagnostic>) -> Self {
        // Source order reads best, the report's own file first; problems
        // without a place go last.
        diagnostics.sort_by(|a, b| {
            (&a.file, a.location.is_none(), a.location, a.severity).cmp(&(
                &b.file,
                b.location.is_none(),
                b.location,
                b.severity,
            ))
        });
        if diagnostics.len() > MAX_DIAGNOSTICS {
            let rest = diagnostics.split_off(MAX_DIAGNOSTICS);
            let errors = rest.iter().filter(|d| d.is_error()).count();
            let more = if errors > 0 {
                Diagnostic::error(format!(
                    "{} more problem(s) not listed ({errors} error(s)); fix the ones above first",
                    rest.len()
                ))
            } else {
                Diagnostic::warning(format!("{} more warning(s) not listed", rest.len()))
            };
            diagnostics.push(more);
        }
        Report {
            file: file.to_path_buf(),
            diagnostics,
        }
    }

    pub fn error_count(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }

    pub fn warning_count(&self) -> usize {
        self.diagnostics.len() - self.error_count()
    }

    pub fn has_errors(&self) -> bool {
        self.error_count() > 0
    }

    /// Human-readable rendering. Source lines are deliberately not quoted: an
    /// inventory line may hold a literal token, and output must never carry one.
    pub fn render(&self, color: bool) -> String {
        let mut out = String::new();
        for d in &self.diagnostics {
            let (label, code) = match d.severity {
                Severity::Error => ("error", "31"),
                Severity::Warning => ("warning", "33"),
            };
            if color {
                let _ = write!(out, "\x1b[1;{code}m{label}\x1b[0m: ");
            } else {
                let _ = write!(out, "{label}: ");
            }
            let file = d.file.as_deref().unwrap_or(&self.file);
            out.push_str(&escape_control(&file.display().to_string()));
            if let Some(loc) = d.location {
                let _ = write!(out, ":{}:{}", loc.line, loc.column);
            }
            out.push_str(": ");
            if let Some(path) = &d.path {
                let _ = write!(out, "{}: ", escape_control(path));
            }
            out.push_str(&escape_control(&d.message));
            out.push('\n');
            if let Some(hint) = &d.hint {
                let _ = writeln!(out, "  hint: {}", escape_control(hint));
            }
        }
        out
    }
}

/// Messages quote user-supplied text (keys, values, paths); an escape sequence
/// in it must not reach the terminal, where it could recolour, hide or rewrite
/// what the operator reads (`terminal::escape`: controls, bidirectional and
/// other invisible format characters).
pub fn escape_control(text: &str) -> String {
    crate::terminal::escape(text).into_owned()
}

/// The closest candidate by edit distance, for "did you mean" hints.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let word_lower = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (edit_distance(&word_lower, &c.to_ascii_lowercase()), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_keys_only() {
        let keys = ["channels", "nodes", "network", "monitor"];
        assert_eq!(did_you_mean("chanels", keys), Some("channels"));
        assert_eq!(did_you_mean("nodez", keys), Some("nodes"));
        assert_eq!(did_you_mean("zzzzzz", keys), None);
    }

    #[test]
    fn renders_location_path_and_hint() {
        let d = Diagnostic::error("unknown key `chanels`")
            .at("", Some(Location { line: 3, column: 1 }))
            .hint("did you mean `channels`?");
        let r = Report::new(Path::new("inv.yaml"), vec![d]);
        assert_eq!(
            r.render(false),
            "error: inv.yaml:3:1: unknown key `chanels`\n  hint: did you mean `channels`?\n"
        );
    }

    #[test]
    fn control_characters_from_input_are_escaped() {
        let d = Diagnostic::error("unknown key `a\u{1b}[2Jb`")
            .at("x\u{7}", Some(Location { line: 1, column: 1 }))
            .hint("see `\u{1b}]0;title\u{7}`");
        let out = Report::new(Path::new("inv\u{1b}.yaml"), vec![d]).render(true);
        let user_text = out.split_once("\u{1b}[0m: ").unwrap().1;
        assert!(
            !user_text.contains('\u{1b}') && !user_text.contains('\u{7}'),
            "{out:?}"
        );
        assert!(user_text.contains("a\\u{1b}[2Jb"), "{out:?}");
        assert_eq!(escape_control("ab\u{202e}cd"), "ab\\u{202e}cd");
        assert_eq!(escape_control("plain – ünïcode"), "plain – ünïcode");
    }

    #[test]
    fn a_flood_of_problems_is_cut_short() {
        let many = (0..5000)
            .map(|i| {
                Diagnostic::error(format!("p{i}")).at(
                    "",
                    Some(Location {
                        line: i + 1,
                        column: 1,
                    }),
                )
            })
            .collect();
        let r = Report::new(Path::new("i.yaml"), many);
        assert_eq!(r.diagnostics.len(), MAX_DIAGNOSTICS + 1);
        assert!(r.has_errors());
        assert!(r.render(false).contains("4900 more problem(s) not listed"));
    }
}
