//! systemd `EnvironmentFile=` contents and the variable names that carry
//! secrets from it into OpenClaw's `${VAR}` substitution.

use crate::secrets::REDACTED;

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

/// One `NAME=value` line per entry, values double-quoted with systemd's escapes.
/// With `redact`, every value is replaced by the redaction marker.
pub fn format(header: &str, entries: &[(String, String)], redact: bool) -> String {
    let mut out = format!(
        "# {header}\n# Managed by ocfo; mode 0600. Do not edit: `ocfo deploy` rewrites it.\n"
    );
    for (name, value) in entries {
        let value = if redact { REDACTED } else { value.as_str() };
        out.push_str(name);
        out.push_str("=\"");
        for c in value.chars() {
            match c {
                '"' | '\\' | '$' | '`' => {
                    out.push('\\');
                    out.push(c);
                }
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push_str("\"\n");
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
}
