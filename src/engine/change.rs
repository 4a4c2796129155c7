//! A planned change: what a module found must change, and the exact steps
//! that make it so. `--check` prints the plan; a real run executes the same
//! steps, which is why check mode reports exactly what deploy then does.

use super::host::{Host, HostError};
use crate::shell::Script;

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// A root shell script (fixed text, values as its arguments); `stdin`
    /// carries secrets so they never appear in a command line (`ps`) or in
    /// output.
    Run {
        script: Script,
        stdin: Option<Vec<u8>>,
    },
    Put {
        path: String,
        content: Vec<u8>,
        mode: u32,
        owner: String,
        group: String,
    },
}

impl Step {
    pub fn run(script: Script) -> Step {
        Step::Run {
            script,
            stdin: None,
        }
    }

    pub async fn execute<H: Host>(&self, host: &H) -> Result<(), HostError> {
        match self {
            Step::Run { script, stdin } => {
                let out = host.run(&script.render(), stdin.as_deref()).await?;
                if !out.success() {
                    return Err(HostError::command(host.name(), &script.describe(), &out));
                }
                Ok(())
            }
            Step::Put {
                path,
                content,
                mode,
                owner,
                group,
            } => host.put(path, content, *mode, owner, group).await,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// One line for humans: `install packages ufw, fail2ban`.
    pub summary: String,
    /// A unified diff for `--diff`, already free of secrets.
    pub diff: Option<String>,
    pub steps: Vec<Step>,
}

impl Change {
    pub fn new(summary: impl Into<String>, steps: Vec<Step>) -> Self {
        Change {
            summary: summary.into(),
            diff: None,
            steps,
        }
    }

    pub fn with_diff(mut self, diff: Option<String>) -> Self {
        self.diff = diff;
        self
    }
}
