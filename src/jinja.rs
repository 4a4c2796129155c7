//! The minijinja set-up every template in ocfo is read with: ocfo's own
//! (render), the operator's file templates and the tasks' `when:` and
//! `{{ }}` (checked when the inventory is read, rendered by the engine).
//! Undefined variables are errors, never empty strings, so a template and
//! its caller cannot silently drift apart. A value with a line break is an
//! error too: in a systemd unit, an sshd or apt config, a newline starts a
//! new directive (`ExecStartPre=+…` runs as root), and no value ocfo renders
//! is legitimately multi-line. Only `shell_quote`'s output, whose newlines
//! sit inside quotes, may hold one. On the ground floor, so the inventory
//! can check a template's syntax without the renderer.

use minijinja::value::Value;
use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior};

/// An environment with ocfo's rules and filters, and no templates.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
        .keep_trailing_newline(true)
        .trim_blocks(true)
        .build()
    {
        env.set_syntax(syntax);
    }
    env.add_filter("shell_quote", |s: String| {
        Value::from_safe_string(crate::shell::quote(&s))
    });
    env.set_formatter(|out, _state, value| {
        let text = value.to_string();
        if !value.is_safe() && text.chars().any(|c| c.is_control() && c != '\t') {
            // The value itself stays out of the message: it may be long or hostile.
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                "a value with a line break or control character cannot go into a rendered file",
            ));
        }
        out.write_str(&text).map_err(Error::from)
    });
    env
}
