//! The embedded minijinja templates, loaded into ocfo's environment
//! (`crate::jinja`: strict undefined, no line breaks in values).

use include_dir::{include_dir, Dir};
use minijinja::Environment;

static TEMPLATES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/templates");

pub fn environment() -> Environment<'static> {
    let mut env = crate::jinja::environment();
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

#[cfg(test)]
mod tests {
    use minijinja::context;

    /// A template that renders a shell script must quote every value it
    /// interpolates: `{{ x }}` anywhere in one is code, whatever the
    /// inventory's validation promised.
    #[test]
    fn shell_templates_quote_every_value() {
        let scripts: Vec<_> = super::names().filter(|n| n.ends_with(".sh.j2")).collect();
        assert!(!scripts.is_empty());
        for name in scripts {
            let text = super::TEMPLATES
                .get_file(name)
                .and_then(|f| f.contents_utf8())
                .unwrap();
            for (i, expr) in text.split("{{").skip(1).enumerate() {
                let expr = expr.split("}}").next().unwrap_or("").trim();
                assert!(
                    expr.ends_with("| shell_quote"),
                    "{name}: value {} `{{{{ {expr} }}}}` is not shell-quoted",
                    i + 1
                );
            }
            assert!(
                !text.contains("{%"),
                "{name}: no control flow in shell templates"
            );
        }
    }

    /// `Description={{ name }}` with a newline in the name would add a
    /// directive (`ExecStartPre=+/bin/sh …`, run as root) to the unit.
    #[test]
    fn a_line_break_in_a_value_is_refused_in_every_template() {
        let env = super::environment();
        let unit = env
            .template_from_str("[Service]\nDescription={{ name }}\nUser=x\n")
            .unwrap();
        let err = unit
            .render(context! { name => "x\nExecStartPre=+/bin/sh -c id" })
            .unwrap_err();
        assert!(err.to_string().contains("line break"), "{err}");
        assert!(!err.to_string().contains("ExecStartPre"), "{err}");
        assert!(unit.render(context! { name => "lab one" }).is_ok());
        // Quoted for the shell, a newline is data.
        let sh = env.template_from_str("echo {{ v | shell_quote }}").unwrap();
        assert_eq!(sh.render(context! { v => "a\nb" }).unwrap(), "echo 'a\nb'");
    }

    /// The push script rendered with hostile values, run against a fake `git`:
    /// the values arrive as data and nothing they hold runs.
    #[test]
    fn workspace_push_script_treats_hostile_values_as_data() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let pwned = d.join("pwned");
        let bin = d.join("bin");
        std::fs::create_dir(&bin).unwrap();
        let log = d.join("git.log");
        // A checkout's git folder, where the script takes its lock.
        std::fs::create_dir(d.join(".git")).unwrap();
        // A git that logs its arguments, one per line, and claims staged
        // changes so the commit and push lines run.
        std::fs::write(
            bin.join("git"),
            format!(
                "#!/bin/sh\nfor a in \"$@\" \"GIT_CONFIG_GLOBAL=$GIT_CONFIG_GLOBAL\"; do printf '%s\\n' \"$a\" >> '{}'; done\nwhile [ \"$1\" = -c ]; do shift 2; done\ncase $1 in diff) exit 1;; rev-list) echo abc;; esac\nexit 0\n",
                log.display()
            ),
        )
        .unwrap();
        std::process::Command::new("chmod")
            .arg("+x")
            .arg(bin.join("git"))
            .status()
            .unwrap();
        let touch = format!("$(touch {})", pwned.display());
        let hostile_branch = format!("main;{touch};`touch {}`'\n\"x", pwned.display());
        let hostile_name = format!("lab\n{touch}");
        let env = super::environment();
        let script = env
            .get_template("workspace-push.sh.j2")
            .unwrap()
            .render(context! {
                name => hostile_name,
                role => "primary",
                workspace => d.display().to_string(),
                branch => &hostile_branch,
                git_ssh_command => format!("ssh {touch}"),
            })
            .unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!pwned.exists(), "a value ran as code:\n{script}");
        let args = std::fs::read_to_string(&log).unwrap();
        assert!(
            args.contains(&format!("HEAD:refs/heads/{hostile_branch}")),
            "{args}"
        );
        // Every git runs without the gateway user's git config and hooks.
        let runs = args.matches("GIT_CONFIG_GLOBAL=").count();
        assert_eq!(runs, args.matches("GIT_CONFIG_GLOBAL=/dev/null\n").count());
        assert_eq!(
            runs,
            args.matches("core.hooksPath=/dev/null\n").count(),
            "{args}"
        );
        assert_eq!(
            runs,
            args.matches("core.fsmonitor=false\n").count(),
            "{args}"
        );
        assert!(runs >= 4, "{args}");
    }
}
