//! Deploy progress on the terminal: a spinner per host with its current task
//! on a TTY, plain lines otherwise; then the recap.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use ocfo::engine::runner::Event;
use ocfo::engine::{HostReport, Status};
// Task errors, changes and diffs carry what hosts printed (stderr, versions,
// file contents), and hosts may lie: escaped before they reach the terminal.
use ocfo::terminal::{escape, escape_lines};

use super::OutputSettings;

pub struct Progress {
    multi: Option<MultiProgress>,
    bars: HashMap<String, ProgressBar>,
    out: OutputSettings,
    verbose: bool,
    diff: bool,
    check: bool,
}

impl Progress {
    pub fn new(
        out: OutputSettings,
        nodes: &[String],
        verbose: bool,
        diff: bool,
        check: bool,
    ) -> Self {
        let tty = std::io::stderr().is_terminal() && !out.quiet;
        let mut bars = HashMap::new();
        let multi = tty.then(|| {
            let m = MultiProgress::new();
            let style = ProgressStyle::with_template("{spinner} {prefix:.bold} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            for n in nodes {
                let b = m.add(ProgressBar::new_spinner());
                b.set_style(style.clone());
                b.set_prefix(format!("{n:<8}"));
                b.set_message("connecting");
                b.enable_steady_tick(Duration::from_millis(100));
                bars.insert(n.clone(), b);
            }
            m
        });
        Progress {
            multi,
            bars,
            out,
            verbose,
            diff,
            check,
        }
    }

    fn line(&self, text: &str) {
        if self.out.quiet {
            return;
        }
        match &self.multi {
            Some(m) => {
                let _ = m.println(text);
            }
            None => eprintln!("{text}"),
        }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.out.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub fn event(&mut self, e: Event) {
        match e {
            Event::Started { node, task } => {
                if let Some(b) = self.bars.get(&node) {
                    b.set_message(escape(&task).into_owned());
                }
            }
            Event::Finished { node, report } => {
                let label = match (report.status, self.check) {
                    (Status::Changed, true) => self.paint("33", "would change"),
                    (Status::Changed, false) => self.paint("33", "changed"),
                    (Status::Failed, _) => self.paint("1;31", "FAILED"),
                    (Status::Ok, _) => self.paint("32", "ok"),
                    (Status::Skipped, _) => self.paint("36", "skipped"),
                };
                let show =
                    matches!(report.status, Status::Changed | Status::Failed) || self.verbose;
                if show {
                    let handler = if report.handler { " (handler)" } else { "" };
                    self.line(&format!(
                        "{node:<8} {label}: {}{handler} [{} ms]",
                        escape(&report.task),
                        report.duration_ms
                    ));
                    for c in &report.changes {
                        self.line(&format!("         - {}", escape(c)));
                    }
                    if let Some(err) = &report.error {
                        for l in err.lines() {
                            self.line(&format!("         {}", escape(l)));
                        }
                    }
                    if self.diff {
                        for d in &report.diffs {
                            for l in d.lines() {
                                let l = &*escape(l);
                                let painted = if l.starts_with('+') && !l.starts_with("+++") {
                                    self.paint("32", l)
                                } else if l.starts_with('-') && !l.starts_with("---") {
                                    self.paint("31", l)
                                } else {
                                    l.to_string()
                                };
                                self.line(&format!("         {painted}"));
                            }
                        }
                    }
                }
            }
        }
    }

    pub fn finish(&mut self) {
        for b in self.bars.values() {
            b.finish_and_clear();
        }
        if let Some(m) = &self.multi {
            let _ = m.clear();
        }
    }
}

/// The Ansible-like recap, one line per host.
pub fn recap(reports: &[HostReport], out: OutputSettings, check: bool) -> String {
    let mut s = String::from(if check {
        "\nRECAP (check mode: nothing was changed)\n"
    } else {
        "\nRECAP\n"
    });
    for r in reports {
        let c = &r.counts;
        let state = if r.failed() {
            "failed"
        } else if r.interrupted {
            "interrupted"
        } else if c.changed > 0 {
            if check {
                "changes pending"
            } else {
                "changed"
            }
        } else {
            "converged"
        };
        let line = format!(
            "{:<8} {:<22} ok={:<3} changed={:<3} failed={:<3} skipped={:<3} {:>6.2}s  {state}",
            r.node.as_str(),
            r.host,
            c.ok,
            c.changed,
            c.failed,
            c.skipped,
            r.duration_ms as f64 / 1000.0
        );
        let code = if r.failed() {
            "31"
        } else if c.changed > 0 {
            "33"
        } else {
            "32"
        };
        if out.color {
            s.push_str(&format!("\x1b[{code}m{line}\x1b[0m\n"));
        } else {
            s.push_str(&line);
            s.push('\n');
        }
        if let Some(e) = &r.error {
            for l in e.lines() {
                s.push_str(&format!("         error: {}\n", escape(l)));
            }
        }
        for n in &r.notes {
            s.push_str(&format!("         {}\n", escape_lines(n)));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use ocfo::engine::HostReport;
    use ocfo::inventory::Role;

    /// A host whose error and notes carry escape sequences and a
    /// right-to-left override: the recap shows them escaped (issue 16).
    #[test]
    fn the_recap_escapes_what_a_host_said() {
        let lie = "\u{1b}]0;owned\u{7}\u{1b}[2J\u{9b}1m\u{202e}";
        let mut r = HostReport::new(Role::Standby, "192.0.2.20");
        r.error = Some(format!("connection failed: {lie}\nsecond line {lie}"));
        r.notes.push(format!("note {lie}"));
        let text = super::recap(
            &[r],
            super::OutputSettings {
                quiet: false,
                color: false,
            },
            false,
        );
        assert!(
            !text
                .replace('\n', "")
                .chars()
                .any(ocfo::terminal::is_hidden),
            "{text:?}"
        );
        assert!(text.contains("second line \\u{1b}]0;owned"), "{text}");
    }
}
