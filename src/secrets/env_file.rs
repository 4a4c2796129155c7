//! systemd `EnvironmentFile=` contents and the variable names that carry
//! secrets from it into OpenClaw's `${VAR}` substitution. Here, beside the
//! secrets, because the redactor must know how a value looks once written.

use super::REDACTED;

/// `channels.telegram.botToken` → `OCFO_TELEGRAM_BOTTOKEN`. OpenClaw only
/// substitutes upper-case names, so everything is folded to `[A-Z0-9_]`.
pub fn var_name(prefix: &str, path: &[&str]) -> String {
    let mut name = String::from(prefix);
    for part in path {
        name.push('_');
        for c in part.chars() {
            name.push(if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            });
        }
    }
    name
}

/// One `NAME=value` entry each, values double-quoted with systemd's escapes.
/// With `redact`, every value is replaced by the redaction marker.
///
/// Inside double quotes systemd unescapes only `\"`, `\\`, `\$` and `` \` ``
/// and keeps any other backslash literally, so `\n` would reach OpenClaw as
/// a backslash and an `n` (a broken PEM key or JSON). A newline written as
/// itself inside the quotes is kept, so a multi-line value spans lines here.
pub fn format(header: &str, entries: &[(String, String)], redact: bool) -> String {
    let mut out = format!(
        "# {header}\n# Managed by ocfo; mode 0600. Do not edit: `ocfo deploy` rewrites it.\n"
    );
    for (name, value) in entries {
        let value = if redact { REDACTED } else { value.as_str() };
        out.push_str(name);
        out.push_str("=\"");
        out.push_str(&escape_value(value));
        out.push_str("\"\n");
    }
    out
}

/// A value as written between the env file's double quotes.
pub fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '"' | '\\' | '$' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_upper_snake() {
        assert_eq!(
            var_name("OCFO", &["telegram", "botToken"]),
            "OCFO_TELEGRAM_BOTTOKEN"
        );
        assert_eq!(
            var_name("OCFO_CONFIG", &["a-b", "c.d"]),
            "OCFO_CONFIG_A_B_C_D"
        );
    }

    #[test]
    fn values_are_quoted_and_escaped() {
        let e = vec![("A".to_string(), "x\"y$z\\".to_string())];
        assert!(format("t", &e, false).ends_with("A=\"x\\\"y\\$z\\\\\"\n"));
        assert!(format("t", &e, true).ends_with("A=\"<redacted>\"\n"));
    }

    #[test]
    fn newlines_stay_newlines() {
        let e = vec![(
            "K".to_string(),
            "-----BEGIN-----\nabc\n-----END-----".to_string(),
        )];
        assert!(format("t", &e, false).ends_with("K=\"-----BEGIN-----\nabc\n-----END-----\"\n"));
    }

    /// systemd's own parser, as shipped: the environment.d generator reads
    /// files with the same code as EnvironmentFile= and prints the result.
    #[cfg(feature = "system-tests")]
    #[test]
    fn systemd_reads_back_the_exact_values() {
        const GENERATOR: &str =
            "/usr/lib/systemd/user-environment-generators/30-systemd-environment-d-generator";
        assert!(
            std::path::Path::new(GENERATOR).exists(),
            "system test prerequisite missing: {GENERATOR} (apt-get install systemd)"
        );
        // `$` is left out: the generator expands variables, EnvironmentFile= does not.
        let values = [
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk=\n-----END OPENSSH PRIVATE KEY-----",
            "{\"type\": \"service_account\",\n \"key\": \"a\\\\nb\"}",
            "trailing newline\n",
            "crlf\r\nline",
        ];
        let entries: Vec<(String, String)> = values
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("OCFO_T{i}"), v.to_string()))
            .collect();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("environment.d")).unwrap();
        std::fs::write(
            dir.path().join("environment.d/10-ocfo.conf"),
            format("test", &entries, false),
        )
        .unwrap();
        let out = std::process::Command::new(GENERATOR)
            .env_clear()
            .env("XDG_CONFIG_HOME", dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let printed = String::from_utf8(out.stdout).unwrap();
        for (name, want) in &entries {
            let line = printed
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("{name} missing from {printed}"));
            assert_eq!(&c_unescape(line), want, "{name}");
        }
    }

    /// The generator prints values C-escaped, in double quotes when needed.
    #[cfg(feature = "system-tests")]
    fn c_unescape(s: &str) -> String {
        let s = s
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .unwrap_or(s);
        let mut out = String::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('t') => out.push('\t'),
                Some(c) => out.push(c),
                None => out.push('\\'),
            }
        }
        out
    }
}
