//! Quoting for the POSIX shell on the hosts, and [`Script`]: how every root
//! script is built so that no value can ever become code.

use std::fmt;

/// Single-quotes `s` for `sh`, leaving simple words as they are for readability.
pub fn quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%".contains(c));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// A shell script whose text is fixed when ocfo is built (`&'static str`),
/// and the values it works on, which reach it only as positional parameters
/// (`$1`, `"$@"`). Values are quoted in exactly one place ([`Script::render`]),
/// so a module cannot splice an inventory value into code, whatever the
/// value holds. Secrets are never arguments (argv shows in `ps`): they go on
/// the step's stdin.
#[derive(Clone, PartialEq, Eq)]
pub struct Script {
    prelude: Option<&'static str>,
    text: &'static str,
    args: Vec<String>,
}

impl Script {
    pub const fn new(text: &'static str) -> Script {
        Script {
            prelude: None,
            text,
            args: Vec::new(),
        }
    }

    /// The same script with the shell functions of [`PATH_GUARD`] defined
    /// before it.
    pub fn guarded(mut self) -> Script {
        self.prelude = Some(PATH_GUARD);
        self
    }

    pub fn arg(mut self, value: impl Into<String>) -> Script {
        self.args.push(value.into());
        self
    }

    pub fn args<I, S>(mut self, values: I) -> Script
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(values.into_iter().map(Into::into));
        self
    }

    pub fn text(&self) -> &'static str {
        self.text
    }

    pub fn arguments(&self) -> &[String] {
        &self.args
    }

    /// The script as `sh` runs it: `set --` with the quoted arguments, then
    /// the fixed text.
    pub fn render(&self) -> String {
        let mut s = String::new();
        if !self.args.is_empty() {
            s.push_str("set --");
            for a in &self.args {
                s.push(' ');
                s.push_str(&quote(a));
            }
            s.push('\n');
        }
        if let Some(p) = self.prelude {
            s.push_str(p);
            s.push('\n');
        }
        s.push_str(self.text);
        s
    }

    /// One line for error messages: the script's leading `# comment` if it
    /// has one, else its first command; then its arguments.
    pub fn describe(&self) -> String {
        let lines = || self.text.lines().map(str::trim);
        let label = lines()
            .next()
            .and_then(|l| l.strip_prefix("# "))
            .map(|l| (l, ""));
        let (first, more) = label.unwrap_or_else(|| {
            let first = lines()
                .find(|l| {
                    !l.is_empty() && !l.starts_with('#') && !l.starts_with("set -") && *l != "cd /"
                })
                .unwrap_or("");
            let more = if self.text.trim().lines().count() > 1 {
                " …"
            } else {
                ""
            };
            (first, more)
        });
        if self.args.is_empty() {
            format!("{first}{more}")
        } else {
            let args: Vec<String> = self.args.iter().map(|a| quote(a)).collect();
            format!("{first}{more} (with {})", args.join(" "))
        }
    }
}

impl fmt::Debug for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

/// Shell functions for scripts that touch paths a less-privileged user may
/// control (the gateway user's home). The gateway user runs an AI agent's
/// tool calls, so anything it can write is hostile; root must never follow a
/// link it planted, nor write through a folder it owns.
///
/// `ocfo_guard PATH` fails the script when any existing component of PATH is
/// a symbolic link (or PATH is relative or has `.`/`..`), and sets
/// `ocfo_as` to the user who controls PATH: `root` when every existing folder
/// above it is root's, else the one other user owning such a folder (two
/// different ones: refused). `ocfo_as_owner CMD…` then runs CMD as that user,
/// so whatever it follows or writes, it does with that user's rights only.
pub const PATH_GUARD: &str = r#"ocfo_guard() {
  case $1 in
    /*) ;;
    *) echo "ocfo: refusing relative path '$1'" >&2; exit 1 ;;
  esac
  case "$1/" in
    */./*|*/../*) echo "ocfo: refusing path with . or ..: '$1'" >&2; exit 1 ;;
  esac
  ocfo_as=root
  _g_cur=
  _g_rest=${1#/}
  while [ -n "$_g_rest" ]; do
    _g_c=${_g_rest%%/*}
    case $_g_rest in
      */*) _g_rest=${_g_rest#*/} ;;
      *) _g_rest= ;;
    esac
    [ -n "$_g_c" ] || continue
    _g_parent=${_g_cur:-/}
    _g_cur=$_g_cur/$_g_c
    if [ -L "$_g_cur" ]; then
      echo "ocfo: refusing to follow $_g_cur: it is a symbolic link (in '$1'); root never follows links in folders another user controls" >&2
      exit 1
    fi
    # Scripts run as root, so `-O` (a shell builtin) is "owned by root":
    # most folders are, and a `stat` process per folder of every path is
    # most of a no-op deploy's time on the host.
    if [ -O "$_g_parent" ]; then _g_o=root; else _g_o=$(stat -c %U -- "$_g_parent"); fi
    if [ "$_g_o" != root ]; then
      if [ "$ocfo_as" != root ] && [ "$ocfo_as" != "$_g_o" ]; then
        echo "ocfo: refusing '$1': folders above it belong to two users ($ocfo_as, $_g_o)" >&2
        exit 1
      fi
      ocfo_as=$_g_o
    fi
    [ -e "$_g_cur" ] || break
  done
}
ocfo_as_owner() {
  if [ "$ocfo_as" = root ]; then "$@"; else runuser -u "$ocfo_as" -- "$@"; fi
}
# ocfo_user_only PATH OWNER: PATH lies in folders OWNER controls, or only root's.
ocfo_user_only() {
  if [ "$ocfo_as" != root ] && [ "$ocfo_as" != "$2" ]; then
    echo "ocfo: refusing to manage '$1' for $2: a folder above it belongs to $ocfo_as" >&2
    exit 1
  fi
}"#;

#[cfg(test)]
mod tests {
    use super::{quote, Script};

    #[test]
    fn quotes_only_when_needed() {
        assert_eq!(
            quote("/home/openclaw/workspace"),
            "/home/openclaw/workspace"
        );
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("$(rm -rf /)"), "'$(rm -rf /)'");
    }

    #[test]
    fn hostile_arguments_arrive_as_data() {
        let hostile = [
            "$(touch /tmp/pwned)",
            "'; rm -rf /;'",
            "`id`",
            "a\nb; echo no",
            "-n",
            "",
            "\\",
        ];
        let script = Script::new(r#"for a in "$@"; do printf '<%s>\n' "$a"; done"#).args(hostile);
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script.render())
            .output()
            .unwrap();
        assert!(out.status.success());
        let want: String = hostile.iter().map(|h| format!("<{h}>\n")).collect();
        assert_eq!(String::from_utf8_lossy(&out.stdout), want);
    }
}
