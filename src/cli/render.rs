//! `ocfo render`: write exactly the files deploy would install, per node.

use std::path::PathBuf;
use std::process::ExitCode;

use ocfo::render::{render, write_tree, SecretMode};

use super::{load_inventory, OutputSettings};

#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// The inventory file.
    pub inventory: PathBuf,
    /// Folder to write into: DIR/primary/... and DIR/standby/... at their target paths.
    #[arg(long, short)]
    pub out: PathBuf,
    /// Write real secret values into the environment files instead of the redaction marker.
    #[arg(long, conflicts_with = "no_secrets")]
    pub show_secrets: bool,
    /// Do not resolve secret references (they are redacted anyway unless --show-secrets).
    #[arg(long)]
    pub no_secrets: bool,
    /// Print the list of files as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Marks a folder as render output, so a re-render may replace it wholesale
/// without ever deleting a folder ocfo did not create.
const MARKER: &str = ".ocfo-render";

pub fn run(args: RenderArgs, out: OutputSettings) -> ExitCode {
    let Some((inv, secrets)) = load_inventory(&args.inventory, !args.no_secrets, out) else {
        return ExitCode::FAILURE;
    };
    let mode = if args.show_secrets {
        SecretMode::Reveal
    } else {
        SecretMode::Redact
    };
    let nodes = match render(&inv, &secrets, mode) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("error: {}", secrets.redactor().redact(&e.to_string()));
            return ExitCode::FAILURE;
        }
    };
    if args.out.join(MARKER).exists() {
        for role in ["primary", "standby"] {
            let _ = std::fs::remove_dir_all(args.out.join(role));
        }
    } else if args.out.read_dir().is_ok_and(|mut d| d.next().is_some()) {
        eprintln!(
            "error: {} is not empty and was not written by `ocfo render`; choose an empty or new folder",
            args.out.display()
        );
        return ExitCode::FAILURE;
    }
    let written = write_tree(&args.out, &nodes).and_then(|w| {
        std::fs::write(args.out.join(MARKER), b"written by ocfo render\n").map(|_| w)
    });
    let written = match written {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: cannot write into {}: {e}", args.out.display());
            return ExitCode::FAILURE;
        }
    };
    if args.json {
        let doc = serde_json::json!({
            "out": args.out,
            "secrets": if args.show_secrets { "shown" } else { "redacted" },
            "nodes": nodes.iter().map(|n| serde_json::json!({
                "node": n.role,
                "files": n.files.iter().map(|f| serde_json::json!({
                    "path": f.path,
                    "mode": format!("{:04o}", f.mode),
                    "owner": f.owner,
                    "group": f.group,
                    "sensitive": f.sensitive,
                    "sha256": ocfo::sha256_hex(&f.content),
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        });
        println!("{doc:#}");
    } else if !out.quiet {
        for n in &nodes {
            println!("{}:", n.role);
            for f in &n.files {
                println!(
                    "  {:04o} {:<9} {}{}",
                    f.mode,
                    f.owner,
                    f.path,
                    if f.sensitive { "  (secrets)" } else { "" }
                );
            }
        }
        println!(
            "wrote {} files under {}{}",
            written.len(),
            args.out.display(),
            if args.show_secrets {
                ""
            } else {
                " (secret values redacted; --show-secrets writes them)"
            }
        );
    }
    ExitCode::SUCCESS
}
