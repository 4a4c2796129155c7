//! Which names `openclaw.env` may set in the gateway's environment file.
//!
//! The file is loaded into every process started with it: the gateway, the
//! CLI calls the monitor makes, `openclaw config validate` at deploy. A name
//! that changes how a process loads code or where it connects turns the
//! agent's files into code or its server into the gateway's proxy: with
//! `PATH=~/.local/bin:…`, whatever the agent plants there runs instead of
//! the tool meant; with `https_proxy`, every API key goes through whoever
//! runs the proxy. Root no longer loads the file (issue 16), but every
//! process that does starts with these names. So:
//!
//! - names that only inject code into a process or a shell, and names ocfo
//!   sets itself, are refused;
//! - names with real uses (a corporate proxy, Node's heap size, a `PATH`
//!   for the agent's tools) are refused unless the operator lists them in
//!   `openclaw.env_allow`, saying they know what the name does.

/// What `openclaw.env` may do with a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Allowed only when listed in `openclaw.env_allow`; why it is risky.
    NeedsOptIn(&'static str),
    /// Never; why.
    Refused(&'static str),
}

/// Names that need `openclaw.env_allow`, and why.
const RISKY: &[(&str, &str)] = &[
    ("PATH", "changes where programs are found: whatever the agent plants early in it runs instead of the real tool, in every process started with this file"),
    ("NODE_OPTIONS", "gives Node command-line options (`--require`, `--import`, `--loader` load code) to every Node process started with this file"),
    ("NODE_PATH", "adds folders Node loads modules from: a module the agent plants there is loaded as code"),
    ("NODE_EXTRA_CA_CERTS", "changes which TLS certificates Node trusts (ocfo sets it to the system bundle; use `network.extra_ca_certificates` instead)"),
    ("NODE_TLS_REJECT_UNAUTHORIZED", "turns off TLS certificate checks: anyone on the path can read the gateway's API keys"),
    ("SSL_CERT_FILE", "changes which TLS certificates are trusted (use `network.extra_ca_certificates` instead)"),
    ("SSL_CERT_DIR", "changes which TLS certificates are trusted (use `network.extra_ca_certificates` instead)"),
    ("PYTHONPATH", "adds folders Python loads modules from"),
    ("PYTHONSTARTUP", "runs a file in every interactive Python"),
    ("PERL5LIB", "adds folders Perl loads modules from"),
    ("PERL5OPT", "gives options (`-M` loads a module) to every Perl"),
    ("RUBYOPT", "gives options (`-r` loads a file) to every Ruby"),
    ("RUBYLIB", "adds folders Ruby loads files from"),
    ("GIT_SSH", "names the program git runs to connect"),
    ("GIT_SSH_COMMAND", "is a command git runs to connect"),
    ("GIT_EXEC_PATH", "changes where git finds its own programs"),
    ("GIT_CONFIG_GLOBAL", "changes which git configuration (hooks, `core.*` commands) applies"),
    ("GIT_CONFIG_SYSTEM", "changes which git configuration (hooks, `core.*` commands) applies"),
    ("GIT_CONFIG_PARAMETERS", "sets git configuration (hooks, `core.*` commands)"),
];

/// Proxy variables, matched without regard to case (curl, Node's fetch
/// and git read both spellings).
const PROXIES: &[&str] = &[
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "FTP_PROXY",
    "GLOBAL_AGENT_HTTP_PROXY",
];
const PROXY_WHY: &str = "sends the gateway's connections (with its API keys and tokens) through a proxy, or exempts hosts from one";

/// Names refused outright, and why.
const NEVER: &[(&str, &str)] = &[
    ("BASH_ENV", "makes every non-interactive bash run the file it names"),
    ("ENV", "makes every interactive POSIX shell run the file it names"),
    ("IFS", "changes how every shell splits words"),
    ("SHELLOPTS", "sets shell options in every bash"),
    ("BASHOPTS", "sets shell options in every bash"),
    ("PS4", "is expanded, commands included, by every traced shell"),
    ("GCONV_PATH", "makes the C library load conversion modules from the folder it names"),
    ("HOME", "is set by ocfo (the gateway user's home); another value moves where OpenClaw, npm and git read their configuration"),
    ("OPENCLAW_CONFIG_PATH", "is set by ocfo: the gateway must read the config ocfo renders"),
    ("OPENCLAW_INCLUDE_ROOTS", "is set by ocfo: it is the one folder the config may `$include` from (the standby's root-owned switches)"),
];

/// The verdict on `name` (already known to be an environment variable name).
pub fn judge(name: &str) -> Verdict {
    if name.starts_with("LD_") {
        return Verdict::Refused(
            "makes the dynamic loader load code (`LD_PRELOAD`, `LD_LIBRARY_PATH`, `LD_AUDIT`, ...) into every program started with this file",
        );
    }
    if name.starts_with("OCFO_") {
        return Verdict::Refused(
            "is one of ocfo's own names (`OCFO_*`: the gateway token, the channels' credentials)",
        );
    }
    if let Some((_, why)) = NEVER.iter().find(|(n, _)| *n == name) {
        return Verdict::Refused(why);
    }
    if let Some((_, why)) = RISKY.iter().find(|(n, _)| *n == name) {
        return Verdict::NeedsOptIn(why);
    }
    if PROXIES.iter().any(|p| p.eq_ignore_ascii_case(name)) {
        return Verdict::NeedsOptIn(PROXY_WHY);
    }
    Verdict::Allowed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_judged() {
        for ok in [
            "ANTHROPIC_API_KEY",
            "OPENAI_BASE_URL",
            "TZ",
            "LANG",
            "PATHS",
            "MY_PATH",
        ] {
            assert_eq!(judge(ok), Verdict::Allowed, "{ok}");
        }
        for opt_in in [
            "PATH",
            "NODE_OPTIONS",
            "NODE_PATH",
            "http_proxy",
            "HTTPS_PROXY",
            "all_proxy",
            "No_Proxy",
            "GIT_SSH_COMMAND",
        ] {
            assert!(matches!(judge(opt_in), Verdict::NeedsOptIn(_)), "{opt_in}");
        }
        for never in [
            "LD_PRELOAD",
            "LD_LIBRARY_PATH",
            "BASH_ENV",
            "ENV",
            "IFS",
            "HOME",
            "OCFO_GATEWAY_TOKEN",
            "OPENCLAW_CONFIG_PATH",
            "OPENCLAW_INCLUDE_ROOTS",
        ] {
            assert!(matches!(judge(never), Verdict::Refused(_)), "{never}");
        }
    }
}
