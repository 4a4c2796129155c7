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
/// `ocfo_as` to the user who controls PATH: `root` when only root can write
/// in every existing folder above it, else the one other user who can (two
/// different ones: refused). `ocfo_as_owner CMD…` then runs CMD as that user,
/// so whatever it follows or writes, it does with that user's rights only.
///
/// Who can write in a folder is not only its owner (issue 16): a folder of
/// root's that its group may write (`root:openclaw 2770`, "shared with the
/// agent") belongs to the user whose own group that is, and is refused when
/// the group is not one user's; a folder anyone may write (`/tmp`, sticky or
/// not: anyone can create names there) is refused outright. Otherwise the
/// agent could swap root's temp file for a link between its creation and
/// root's `chown`/`chmod`.
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
    ocfo_folder_user "$_g_parent" "$1"
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
# ocfo_folder_user FOLDER PATH: sets _g_o to who can write in FOLDER. A
# `stat` process per folder of every path is most of a no-op deploy's time
# on the host, so folders found root's alone are remembered for the script.
ocfo_folder_user() {
  case ${_g_roots-} in *"
$1
"*) _g_o=root; return ;; esac
  _g_st=$(stat -c '%U %G %a' -- "$1") || exit 1
  _g_o=${_g_st%% *}
  _g_grp=${_g_st#* }
  _g_mode=${_g_grp#* }
  _g_grp=${_g_grp% *}
  if [ "$_g_o" = root ]; then
    if [ $(( 0$_g_mode & 02 )) -ne 0 ]; then
      echo "ocfo: refusing '$2': $1 is writable by everyone (mode $_g_mode), so any user could swap what root writes there" >&2
      exit 1
    fi
    if [ $(( 0$_g_mode & 020 )) -ne 0 ] && [ "$_g_grp" != root ]; then
      # A user's own group (root:openclaw 2770): that user's, like its home.
      if [ "$(id -gn -- "$_g_grp" 2>/dev/null)" = "$_g_grp" ]; then
        _g_o=$_g_grp
        return
      fi
      echo "ocfo: refusing '$2': $1 is writable by group $_g_grp (mode $_g_mode), which is not one user's own group, so its members could swap what root writes there" >&2
      exit 1
    fi
    _g_roots="${_g_roots:-
}$1
"
  fi
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

/// For tests: runs `script` with the local `sh`, its stdin closed.
#[cfg(test)]
pub fn run_local(script: &str) -> std::process::Output {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

#[cfg(test)]
mod tests {
    use super::{quote, run_local, Script};

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
        let out = run_local(&script.render());
        assert!(out.status.success());
        let want: String = hostile.iter().map(|h| format!("<{h}>\n")).collect();
        assert_eq!(String::from_utf8_lossy(&out.stdout), want);
    }
}
