//! `ocfo drill --junit FILE`: the drill report as JUnit XML, the one test
//! report format every CI system displays (GitHub Actions through a report
//! action, GitLab natively, Jenkins). One `<testsuite>` per drill, with two
//! test cases, `failover` and `failback`, timed as the drill measured them;
//! a failed phase carries a `<failure>` with the drill's error.
//!
//! Built from [`DrillReport`] alone, so it says exactly what `--json` says.
//! Every piece of text goes through [`Redactor`] and an XML escape: the
//! drill's errors quote remote stderr, which nobody controls.

use crate::drill::{DrillReport, Milestone};
use crate::secrets::Redactor;

/// One phase's outcome.
enum Outcome {
    Passed,
    /// `(message, body)`: a short message attribute and the full text.
    Failed(String, String),
    /// Not reached because an earlier phase failed.
    Skipped(String),
}

struct Case {
    name: &'static str,
    time_ms: Option<u64>,
    outcome: Outcome,
    marks: Vec<Milestone>,
}

/// Which phase the drill's single error belongs to, and the SLO checks,
/// judged from the measured times: both SLOs are reported even when the
/// report's error names only the first.
fn cases(r: &DrillReport) -> [Case; 2] {
    let error = r.error.clone().unwrap_or_default();
    let marks = |phase: &str| -> Vec<Milestone> {
        r.timeline
            .iter()
            .filter(|m| m.phase == phase)
            .cloned()
            .collect()
    };
    let slo = |what: &str, took: u64, max: u64, flag: &str| {
        Outcome::Failed(
            format!("{what} took {took} ms, over {flag} {max} ms"),
            format!("{what} took {took} ms, over {flag} {max} ms\n{error}"),
        )
    };
    let failover = match r.failover_ms {
        None => Outcome::Failed(
            first_line(&error, "the standby never took over"),
            error.clone(),
        ),
        Some(ms) if ms > r.max_failover_ms => {
            slo("failover", ms, r.max_failover_ms, "--max-failover")
        }
        Some(_) => Outcome::Passed,
    };
    let failback = match (r.failover_ms, r.failback_ms) {
        (None, _) => Outcome::Skipped("the failover did not complete".into()),
        (Some(_), None) => Outcome::Failed(
            first_line(&error, "the standby never stepped down"),
            error.clone(),
        ),
        (Some(_), Some(ms)) if ms > r.max_failback_ms => {
            slo("failback", ms, r.max_failback_ms, "--max-failback")
        }
        // A failed restore (or any other error) after both phases passed
        // still fails the drill: it shows on the failback.
        (Some(_), Some(_)) if !r.ok && !matches!(failover, Outcome::Failed(..)) => {
            Outcome::Failed(first_line(&error, "the drill failed"), error.clone())
        }
        _ => Outcome::Passed,
    };
    [
        Case {
            name: "failover",
            time_ms: r.failover_ms,
            outcome: failover,
            marks: marks("failover"),
        },
        Case {
            name: "failback",
            time_ms: r.failback_ms,
            outcome: failback,
            marks: marks("failback"),
        },
    ]
}

fn first_line(text: &str, default: &str) -> String {
    text.lines()
        .next()
        .filter(|l| !l.trim().is_empty())
        .unwrap_or(default)
        .to_string()
}

/// Escapes text for an XML attribute or element. Characters XML 1.0 cannot
/// hold at all (most control characters, which a remote stderr may carry)
/// become U+FFFD, so the file always parses.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

fn secs(ms: u64) -> String {
    format!("{:.3}", ms as f64 / 1000.0)
}

/// The JUnit XML document for one drill. `suite` names it (e.g. the
/// inventory's `name`); `redactor` scrubs every text that goes in.
pub fn junit(r: &DrillReport, suite: &str, redactor: &Redactor) -> String {
    let t = |s: &str| escape(&redactor.redact(s));
    let fault = r
        .fault
        .map_or("unknown".to_string(), |f| format!("{f:?}").to_lowercase());
    let cases = cases(r);
    let failures = cases
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::Failed(..)))
        .count();
    let skipped = cases
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::Skipped(_)))
        .count();
    let total_ms: u64 = cases.iter().filter_map(|c| c.time_ms).sum();
    let suite_name = t(&format!("ocfo drill {suite} ({fault})"));
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.push_str(&format!(
        "<testsuites name=\"{suite_name}\" tests=\"2\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{}\">\n",
        secs(total_ms)
    ));
    x.push_str(&format!(
        "  <testsuite name=\"{suite_name}\" tests=\"2\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{}\">\n",
        secs(total_ms)
    ));
    x.push_str("    <properties>\n");
    let opt = |v: Option<u64>| v.map_or(String::new(), |m| m.to_string());
    for (name, value) in [
        ("fault", fault.clone()),
        ("restored", r.restored.to_string()),
        ("max_failover_ms", r.max_failover_ms.to_string()),
        ("max_failback_ms", r.max_failback_ms.to_string()),
        ("detection_ms", opt(r.detection_ms)),
        ("pull_ms", opt(r.pull_ms)),
        ("gateway_start_ms", opt(r.gateway_start_ms)),
        ("primary_recovery_ms", opt(r.primary_recovery_ms)),
        ("answered_ms", opt(r.answered_ms)),
        (
            "announced_ms",
            opt(r.user.as_ref().and_then(|u| u.announced_ms)),
        ),
        (
            "primary_answered_ms",
            opt(r.user.as_ref().and_then(|u| u.primary_answered_ms)),
        ),
        (
            "message_in_flight",
            r.user
                .as_ref()
                .and_then(|u| u.before_fault.as_ref())
                .map_or(String::new(), |b| b.outcome.clone()),
        ),
    ] {
        x.push_str(&format!(
            "      <property name=\"{name}\" value=\"{}\"/>\n",
            t(&value)
        ));
    }
    x.push_str("    </properties>\n");
    let classname = t(&format!("ocfo.drill.{fault}"));
    for c in &cases {
        x.push_str(&format!(
            "    <testcase classname=\"{classname}\" name=\"{}\" time=\"{}\">\n",
            c.name,
            secs(c.time_ms.unwrap_or(0))
        ));
        match &c.outcome {
            Outcome::Passed => {}
            Outcome::Failed(message, body) => x.push_str(&format!(
                "      <failure message=\"{}\" type=\"drill\">{}</failure>\n",
                t(message),
                t(body)
            )),
            Outcome::Skipped(message) => {
                x.push_str(&format!("      <skipped message=\"{}\"/>\n", t(message)))
            }
        }
        if !c.marks.is_empty() {
            let lines: Vec<String> = c
                .marks
                .iter()
                .map(|m| format!("+{:.1}s {}", m.at_ms as f64 / 1000.0, m.event))
                .collect();
            x.push_str(&format!(
                "      <system-out>{}</system-out>\n",
                t(&lines.join("\n"))
            ));
        }
        x.push_str("    </testcase>\n");
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::Fault;
    use crate::secrets::SecretValue;

    fn mark(phase: &'static str, event: &str, at_ms: u64) -> Milestone {
        Milestone {
            phase,
            event: event.into(),
            at_ms,
        }
    }

    fn passed() -> DrillReport {
        DrillReport {
            fault: Some(Fault::Stop),
            taker: None,
            ok: true,
            error: None,
            timeline: vec![
                mark("failover", "fault injected on the primary (stop)", 0),
                mark("failover", "standby's gateway answers /healthz", 50_900),
                mark("failback", "primary restored", 0),
                mark("failback", "standby demoted, its gateway stopped", 62_000),
            ],
            detection_ms: Some(16_300),
            pull_ms: Some(12),
            gateway_start_ms: Some(34_400),
            failover_ms: Some(50_900),
            fallback_restart: false,
            primary_recovery_ms: Some(17_900),
            failback_ms: Some(62_000),
            max_failover_ms: 60_000,
            max_failback_ms: 120_000,
            restored: true,
            answered_ms: Some(53_100),
            user: Some(crate::drill::UserView {
                answered_ms: Some(53_100),
                announced_ms: Some(52_000),
                ..Default::default()
            }),
        }
    }

    fn none() -> Redactor {
        Redactor::new(std::iter::empty())
    }

    #[test]
    fn a_passing_drill_is_two_timed_passing_cases() {
        let x = junit(&passed(), "pair", &none());
        assert!(x.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"));
        assert!(x.contains(
            "<testsuite name=\"ocfo drill pair (stop)\" tests=\"2\" failures=\"0\" errors=\"0\" skipped=\"0\" time=\"112.900\">"
        ), "{x}");
        assert!(x.contains(
            "<testcase classname=\"ocfo.drill.stop\" name=\"failover\" time=\"50.900\">"
        ));
        assert!(x.contains(
            "<testcase classname=\"ocfo.drill.stop\" name=\"failback\" time=\"62.000\">"
        ));
        assert!(!x.contains("<failure"));
        assert!(x.contains("<property name=\"detection_ms\" value=\"16300\"/>"));
        assert!(x.contains("<property name=\"answered_ms\" value=\"53100\"/>"));
        assert!(x.contains("<property name=\"announced_ms\" value=\"52000\"/>"));
        assert!(x.contains("+50.9s standby&apos;s gateway answers /healthz"));
        assert_eq!(x.matches("<testcase ").count(), 2);
        assert_eq!(x.matches("</testcase>").count(), 2);
    }

    #[test]
    fn a_failover_that_never_came_fails_failover_and_skips_failback() {
        let r = DrillReport {
            ok: false,
            error: Some("the standby did not take over within 600s".into()),
            failover_ms: None,
            failback_ms: None,
            timeline: vec![mark("failover", "fault injected", 0)],
            ..passed()
        };
        let x = junit(&r, "pair", &none());
        assert!(
            x.contains("failures=\"1\" errors=\"0\" skipped=\"1\""),
            "{x}"
        );
        assert!(x.contains(
            "<failure message=\"the standby did not take over within 600s\" type=\"drill\">"
        ));
        assert!(x.contains("<skipped message=\"the failover did not complete\"/>"));
    }

    #[test]
    fn both_slos_are_judged_from_the_times() {
        let r = DrillReport {
            ok: false,
            error: Some("failover took 70000 ms, over --max-failover 60000 ms".into()),
            failover_ms: Some(70_000),
            failback_ms: Some(130_000),
            ..passed()
        };
        let x = junit(&r, "pair", &none());
        assert!(x.contains("failures=\"2\""), "{x}");
        assert!(x.contains("message=\"failback took 130000 ms, over --max-failback 120000 ms\""));
        assert!(x.contains("time=\"70.000\""));
    }

    #[test]
    fn a_failed_restore_fails_the_failback_case() {
        let r = DrillReport {
            ok: false,
            restored: false,
            error: Some("RESTORING THE PRIMARY FAILED: exit 1".into()),
            ..passed()
        };
        let x = junit(&r, "pair", &none());
        assert!(x.contains("failures=\"1\""), "{x}");
        assert!(x.contains("<property name=\"restored\" value=\"false\"/>"));
        let failback = x.split("name=\"failback\"").nth(1).unwrap();
        assert!(failback.contains("<failure message=\"RESTORING THE PRIMARY FAILED: exit 1\""));
    }

    #[test]
    fn everything_is_escaped_and_control_characters_replaced() {
        let r = DrillReport {
            ok: false,
            error: Some("preflight: <b>\"x\" & 'y'</b>\u{1b}[31m\nsecond line".into()),
            failover_ms: None,
            failback_ms: None,
            ..passed()
        };
        let x = junit(&r, "a&b<c>", &none());
        assert!(
            x.contains("name=\"ocfo drill a&amp;b&lt;c&gt; (stop)\""),
            "{x}"
        );
        assert!(x.contains(
            "message=\"preflight: &lt;b&gt;&quot;x&quot; &amp; &apos;y&apos;&lt;/b&gt;\u{FFFD}[31m\""
        ), "{x}");
        assert!(!x.contains('\u{1b}'));
        assert!(!x.contains("<b>"));
        // The body keeps every line of the error.
        assert!(x.contains("second line</failure>"));
    }

    #[test]
    fn secret_values_never_reach_the_report() {
        let secret = SecretValue::new("s3cr3t-webhook-token-value");
        let r = DrillReport {
            ok: false,
            error: Some(format!(
                "injecting the fault failed: curl https://hooks.example/{}",
                secret.expose()
            )),
            timeline: vec![mark("failover", &format!("event {}", secret.expose()), 0)],
            failover_ms: None,
            failback_ms: None,
            ..passed()
        };
        let x = junit(&r, "pair", &Redactor::new([&secret]));
        assert!(!x.contains(secret.expose()), "{x}");
        assert!(x.contains("injecting the fault failed"));
    }
}
