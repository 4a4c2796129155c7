//! The `ocfo` command: argument parsing and output only; the work is in the library.

use std::process::ExitCode;

mod cli;

fn main() -> ExitCode {
    cli::main()
}
