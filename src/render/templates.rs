//! The embedded minijinja templates. Undefined variables are errors, never
//! empty strings, so a template and its caller cannot silently drift apart.

use include_dir::{include_dir, Dir};
use minijinja::{Environment, UndefinedBehavior};

static TEMPLATES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/templates");

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
    env.add_filter("shell_quote", |s: String| crate::shell::quote(&s));
    for file in TEMPLATES.files() {
        if let (Some(name), Some(text)) = (file.path().to_str(), file.contents_utf8()) {
            // A broken embedded template is a build-time bug; the tests render
            // every template, so it cannot ship.
            if let Err(e) = env.add_template(name, text) {
                tracing::error!("embedded template {name} does not parse: {e}");
            }
        }
    }
    env
}

pub fn names() -> impl Iterator<Item = &'static str> {
    TEMPLATES.files().filter_map(|f| f.path().to_str())
}
