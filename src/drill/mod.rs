//! `ocfo drill`: break the primary on purpose, measure the failover and the
//! failback, and put the primary back whatever happens.

mod chat;
pub mod junit;

pub use chat::{BeforeFault, UserView};

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::clock::unix_ms;
use crate::engine::Host;
use crate::inventory::{Inventory, Role};
use crate::layout::GATEWAY_UNIT;
use crate::monitor::machine::StandbyRole;
use crate::monitor::MonitorState;
use crate::shell::Script;
use crate::standby_client::{check, poll, Observation, Standby, Verdict, Wait, WaitError};
use crate::user_side::UserSide;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Fault {
    /// Stop the primary's gateway unit.
    Stop,
    /// SIGKILL the primary's gateway and keep it down.
    Kill,
    /// Block the standby's probes at the primary's firewall (the gateway keeps running).
    Cut,
}

#[derive(Debug, Clone)]
pub struct DrillOptions {
    pub fault: Fault,
    pub max_failover: Duration,
    pub max_failback: Duration,
    /// The longest any phase may take before the drill gives up.
    pub phase_timeout: Duration,
    /// How long preflight waits for a healthy, idle pair before refusing
    /// (zero: check once).
    pub wait: Duration,
    /// Drill even when this promotion would make the flap guard pin the
    /// standby (it then keeps serving after the drill).
    pub allow_pin: bool,
    /// Told what preflight waits for, now and then.
    pub progress: Option<Progress>,
    /// The node that must take over: the standby, or a chain's standby2
    /// when the fault breaks the standby too (its monitor and gateway
    /// stopped, or, for `cut`, standby2's probes blocked at its firewall
    /// too; put back after the failback).
    pub taker: Role,
}

/// A callback for progress lines (the CLI prints them on stderr).
#[derive(Clone)]
pub struct Progress(pub std::sync::Arc<dyn Fn(&str) + Send + Sync>);

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress")
    }
}

/// A moment of a drill in its phase (failover or failback) and what happened.
#[derive(Debug, Clone, Serialize)]
pub struct Milestone {
    pub phase: &'static str,
    pub event: String,
    /// Milliseconds since the phase began (fault injection, or restore).
    pub at_ms: u64,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct DrillReport {
    pub fault: Option<Fault>,
    /// The node that took over (`standby`, or a chain's `standby2` when the
    /// fault broke the standby too).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub taker: Option<Role>,
    pub ok: bool,
    pub error: Option<String>,
    pub timeline: Vec<Milestone>,
    /// Fault → standby's monitor decides to promote.
    pub detection_ms: Option<u64>,
    pub pull_ms: Option<u64>,
    pub gateway_start_ms: Option<u64>,
    /// Fault → the standby serves: warm, OpenClaw started its channel; cold,
    /// its gateway answers /healthz.
    pub failover_ms: Option<u64>,
    /// Warm: the live switch failed and the monitor restarted the gateway.
    pub fallback_restart: bool,
    /// Restore → primary healthy again.
    pub primary_recovery_ms: Option<u64>,
    /// Restore → standby demoted and its gateway stopped, and (with a
    /// user's side) the primary's bot answering again.
    pub failback_ms: Option<u64>,
    pub max_failover_ms: u64,
    pub max_failback_ms: u64,
    pub restored: bool,
    /// Fault → the standby's bot answered the user (with a user's side: the
    /// lab's chat world).
    pub answered_ms: Option<u64>,
    /// The user's side of the drill, when one was reachable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<UserView>,
}

/// $1 the gateway's unit.
const STOP: &str = r#"systemctl stop --no-block -- "$1""#;

/// Killed, then stopped so that Restart=always does not bring it back. $1
/// the gateway's unit.
const KILL: &str = r#"pid=$(systemctl show -p MainPID --value -- "$1"); [ "$pid" -gt 0 ] && kill -9 "$pid"; systemctl stop --no-block -- "$1""#;

/// $1 the standby's address, $2 the gateway's port.
const CUT: &str =
    r#"iptables -w -I INPUT 1 -s "$1" -p tcp --dport "$2" -m comment --comment ocfo-drill -j DROP"#;

/// $1 the gateway's unit.
const START: &str = r#"systemctl start -- "$1""#;

/// The standby of a chain broken with the primary: its monitor first (or it
/// would start its gateway again and promote), then its gateway. $1 the
/// monitor's unit, $2 the gateway's unit, $3 `kill` or `stop`.
const STANDBY_DOWN: &str = r#"systemctl stop -- "$1"
if [ "$3" = kill ]; then pid=$(systemctl show -p MainPID --value -- "$2"); [ "$pid" -gt 0 ] && kill -9 "$pid"; fi
systemctl stop -- "$2""#;

/// The standby back, after the failback: its gateway, then its monitor
/// (which finds the primary serving and watches). $1 the gateway's unit,
/// $2 the monitor's unit.
const STANDBY_UP: &str = r#"systemctl start -- "$1" && systemctl start -- "$2""#;

/// $1 the standby's address, $2 the gateway's port: every rule `CUT` added.
const UNCUT: &str = r#"while iptables -w -C INPUT -s "$1" -p tcp --dport "$2" -m comment --comment ocfo-drill -j DROP; do iptables -w -D INPUT -s "$1" -p tcp --dport "$2" -m comment --comment ocfo-drill -j DROP; done"#;

fn fault_script(inv: &Inventory, fault: Fault, taker: Role) -> Script {
    match fault {
        Fault::Stop => Script::new(STOP).arg(GATEWAY_UNIT),
        Fault::Kill => Script::new(KILL).arg(GATEWAY_UNIT),
        Fault::Cut => cut_rule(inv, taker, CUT),
    }
}

fn cut_rule(inv: &Inventory, taker: Role, text: &'static str) -> Script {
    Script::new(text).args([
        inv.node(taker).private_address.to_string(),
        inv.openclaw.port.to_string(),
    ])
}

fn restore_script(inv: &Inventory, fault: Fault, taker: Role) -> Script {
    match fault {
        Fault::Stop | Fault::Kill => Script::new(START).arg(GATEWAY_UNIT),
        Fault::Cut => cut_rule(inv, taker, UNCUT),
    }
}

/// The fault on a chain's standby: down like a dead host, or (cut) out of
/// the taker's sight.
fn standby_fault_script(inv: &Inventory, fault: Fault, taker: Role) -> Script {
    use crate::layout::MONITOR_UNIT;
    match fault {
        Fault::Stop => Script::new(STANDBY_DOWN).args([MONITOR_UNIT, GATEWAY_UNIT, "stop"]),
        Fault::Kill => Script::new(STANDBY_DOWN).args([MONITOR_UNIT, GATEWAY_UNIT, "kill"]),
        Fault::Cut => cut_rule(inv, taker, CUT),
    }
}

fn standby_restore_script(inv: &Inventory, fault: Fault, taker: Role) -> Script {
    use crate::layout::MONITOR_UNIT;
    match fault {
        Fault::Stop | Fault::Kill => Script::new(STANDBY_UP).args([GATEWAY_UNIT, MONITOR_UNIT]),
        Fault::Cut => cut_rule(inv, taker, UNCUT),
    }
}

struct Clock {
    start: Instant,
}

impl Clock {
    fn ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }
}

/// The drill. `standby` is the node that must take over (`opts.taker`);
/// `broken_standby`, for a chain's double fault, the standby broken with
/// the primary.
pub async fn run<H: Host, U: UserSide>(
    inv: &Inventory,
    primary: &H,
    standby: &H,
    broken_standby: Option<&H>,
    user: Option<&U>,
    opts: &DrillOptions,
    cancel: &AtomicBool,
) -> DrillReport {
    let mut report = DrillReport {
        fault: Some(opts.fault),
        taker: Some(opts.taker),
        max_failover_ms: opts.max_failover.as_millis() as u64,
        max_failback_ms: opts.max_failback.as_millis() as u64,
        ..Default::default()
    };
    let taker = opts.taker.as_str();
    let Begun {
        promotions_before,
        seq0,
        in_flight,
        word,
    } = match begin(inv, primary, standby, user, opts, cancel).await {
        Ok(b) => b,
        Err(e) => {
            report.error = Some(e);
            return report;
        }
    };
    let mut view = user.map(|_| UserView {
        word: word.clone(),
        ..Default::default()
    });

    let clock = Clock {
        start: Instant::now(),
    };
    let fault_at_ms = unix_ms();
    let mut injected = check(primary, &fault_script(inv, opts.fault, opts.taker)).await;
    if let (Ok(_), Some(b)) = (&injected, broken_standby) {
        injected = check(b, &standby_fault_script(inv, opts.fault, opts.taker)).await;
    }
    if let Err(e) = injected {
        report.error = Some(format!("injecting the fault failed: {e}"));
        restore(inv, primary, opts, &mut report).await;
        restore_standby(inv, broken_standby, opts, &mut report).await;
        unmark(standby, opts).await;
        return report;
    }
    report.timeline.push(Milestone {
        phase: "failover",
        event: format!(
            "fault injected on the primary{} ({:?})",
            if broken_standby.is_some() {
                " and the standby"
            } else {
                ""
            },
            opts.fault
        )
        .to_lowercase(),
        at_ms: 0,
    });

    // The machine's side and the user's side of the failover, together.
    let machine = failover(inv, standby, opts, cancel, &clock, promotions_before);
    let users = async {
        match (user, view.as_mut()) {
            (Some(u), Some(v)) => {
                chat::ping_until_answered(u, taker, fault_at_ms, opts.phase_timeout, v).await
            }
            _ => Ok(()),
        }
    };
    let (machine, users) = tokio::join!(machine, users);
    let user_error = users.err();
    match machine {
        Ok(marks) => {
            report.detection_ms = marks.detection_ms;
            report.failover_ms = marks.failover_ms;
            report.pull_ms = marks.pull_ms;
            report.gateway_start_ms = marks.gateway_start_ms;
            report.fallback_restart = marks.fallback_restart;
            report.timeline.extend(marks.timeline);
        }
        Err(e) => {
            report.error = Some(e);
            restore(inv, primary, opts, &mut report).await;
            restore_standby(inv, broken_standby, opts, &mut report).await;
            unmark(standby, opts).await;
            return report;
        }
    }
    if let Some(v) = &view {
        file_failover_answer(taker, v, &mut report);
    }
    if let (Some(u), Some(v), Some(word), None) = (user, view.as_mut(), &word, &user_error) {
        match remembered(inv, standby, u, word, fault_at_ms, opts).await {
            Ok(ms) => v.remembered_ms = Some(ms),
            Err(e) => report.error = Some(e),
        }
    }
    if let (Fault::Cut, Some(u), Some(v)) = (opts.fault, user, view.as_mut()) {
        v.cut_both_answered = Some(both_answer_during_the_cut(u, taker).await);
    }
    if let (Some(u), Some(v), Some(_), None, None) =
        (user, view.as_mut(), &word, &user_error, &report.error)
    {
        match tell_standby_word(u, taker, opts).await {
            Ok(w) => v.outage_word = Some(w),
            Err(e) => report.error = Some(format!("the user's side: {e}")),
        }
    }

    let clock = Clock {
        start: Instant::now(),
    };
    restore(inv, primary, opts, &mut report).await;
    if !report.restored {
        restore_standby(inv, broken_standby, opts, &mut report).await;
        unmark(standby, opts).await;
        return report;
    }
    let restored_at_ms = unix_ms();
    report.timeline.push(Milestone {
        phase: "failback",
        event: "primary restored".into(),
        at_ms: 0,
    });
    let failback = failback(inv, standby, opts, cancel, &clock, &mut report).await;
    if let Err(e) = failback {
        report.error = Some(e);
    } else if let (Some(u), Some(v)) = (user, view.as_mut()) {
        primary_answers_again(u, v, restored_at_ms, opts, &mut report).await;
        if let (Some(word), None) = (v.outage_word.clone(), &report.error) {
            match handed_back(inv, standby, u, &word, restored_at_ms, opts).await {
                Ok(ms) => v.handed_back_ms = Some(ms),
                Err(e) => report.error = Some(e),
            }
        }
    }
    // The standby last: its monitor then finds the primary serving, so it
    // watches (put back earlier, it could promote on a primary still
    // starting).
    restore_standby(inv, broken_standby, opts, &mut report).await;
    if broken_standby.is_some() && report.error.is_none() {
        report.timeline.push(Milestone {
            phase: "failback",
            event: "the standby put back (after the failback)".into(),
            at_ms: clock.ms(),
        });
    }
    unmark(standby, opts).await;
    finish_view(
        user,
        taker,
        view,
        seq0,
        in_flight,
        fault_at_ms,
        restored_at_ms,
        &mut report,
    )
    .await;
    judge(&mut report, user_error);
    report
}

/// Where things stood before the fault.
struct Begun {
    /// The monitor's promotion count: the drill's promotion is the next.
    promotions_before: u64,
    /// The user's side's last event: its review reads on from here.
    seq0: u64,
    /// The message sent to the primary just before the fault.
    in_flight: Option<(u64, u64)>,
    /// The word told to the primary, in a snapshot before the fault.
    word: Option<String>,
}

/// Checks the pair is fit for a drill, marks the drill on the standby (it
/// announces the takeover as a drill) and sends the message that will be in
/// flight at the fault. An error says why no fault was injected; the mark
/// is taken back if it was made.
async fn begin<H: Host, U: UserSide>(
    inv: &Inventory,
    primary: &H,
    standby: &H,
    user: Option<&U>,
    opts: &DrillOptions,
    cancel: &AtomicBool,
) -> Result<Begun, String> {
    if let Err(p) = preflight(inv, standby, user, opts, cancel).await {
        return Err(format!("preflight: {p}; not injecting a fault"));
    }
    let promotions_before = Standby::of(standby, opts.taker)
        .observe(inv)
        .await
        .ok()
        .and_then(|o| o.state)
        .map_or(0, |s| s.counters.promotions);
    let seq0 = match user {
        Some(u) => {
            u.events_after(u64::MAX, Duration::ZERO)
                .await
                .map_err(|e| format!("the user's side: {e}"))?
                .1
        }
        None => 0,
    };
    let lease = opts.phase_timeout * 2 + inv.monitor.hold_down;
    Standby::of(standby, opts.taker)
        .mark_drill(&format!("{:?}", opts.fault).to_lowercase(), lease)
        .await
        .map_err(|e| format!("cannot mark the drill on the standby: {e}"))?;
    let word = match user.filter(|_| inv.workspace.conversations) {
        Some(u) => match tell_word(inv, primary, u, opts).await {
            Ok(w) => Some(w),
            Err(e) => {
                unmark(standby, opts).await;
                return Err(format!("the user's side: {e}"));
            }
        },
        None => None,
    };
    let in_flight = match user {
        Some(u) => match chat::in_flight(u).await {
            Ok(m) => Some(m),
            Err(e) => {
                unmark(standby, opts).await;
                return Err(format!("the user's side: {e}"));
            }
        },
        None => None,
    };
    Ok(Begun {
        promotions_before,
        seq0,
        in_flight,
        word,
    })
}

/// Tells the primary's bot a word to remember and waits until the
/// primary's conversation snapshot holds it (taken after its answer), so
/// the standby must quote it after the fault: the conversation carried
/// over, not only the service.
async fn tell_word<H: Host, U: UserSide>(
    inv: &Inventory,
    primary: &H,
    u: &U,
    opts: &DrillOptions,
) -> Result<String, String> {
    let word = format!("kumquat-{:04x}", rand::random::<u16>());
    chat::ask(
        u,
        "primary",
        &format!("drill: please remember the word {word}."),
        opts.phase_timeout,
    )
    .await?;
    let layout = crate::layout::Layout::new(&inv.openclaw.user);
    let branch = crate::layout::conversation_branch("primary");
    let holds = Script::new(SNAPSHOT_HOLDS).args([
        layout.user.as_str(),
        &layout.conversation_repo,
        &branch,
        &word,
    ]);
    let within = inv.workspace.conversation_interval * 3 + Duration::from_secs(30);
    let deadline = Instant::now() + within;
    loop {
        let out = check(primary, &holds).await?;
        if out.stdout.trim() == "yes" {
            return Ok(word);
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "no conversation snapshot on the primary holds the word within {}s of telling it (is ocfo-conversation-push.timer running?)",
                within.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Once the standby's catch-up is over (its monitor says so), asks its bot
/// for the word told to the primary before the fault: fault → the answer
/// that quotes it. A person asking earlier is answered after the catch-up's
/// restart too, so this is when the conversation is back, give or take one
/// turn.
async fn remembered<H: Host, U: UserSide>(
    inv: &Inventory,
    standby: &H,
    u: &U,
    word: &str,
    fault_at_ms: u64,
    opts: &DrillOptions,
) -> Result<u64, String> {
    let fault_at = fault_at_ms / 1000;
    let deadline = Instant::now() + opts.phase_timeout;
    let catch_up = loop {
        let state = Standby::of(standby, opts.taker)
            .observe(inv)
            .await
            .ok()
            .and_then(|o| o.state);
        let done = state
            .and_then(|s| s.last_catch_up)
            .filter(|c| crate::clock::parse_rfc3339(&c.at).is_some_and(|at| at >= fault_at));
        if let Some(c) = done {
            break c;
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the standby did not catch up on the primary's conversation within {}s of the fault",
                opts.phase_timeout.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    match chat::ask_word(u, opts.taker.as_str(), word, fault_at_ms, opts.phase_timeout).await? {
        Some(ms) => Ok(ms),
        None => Err(format!(
            "the {}'s bot answered without the word told to the primary before the fault (its catch-up: {}{})",
            opts.taker,
            catch_up.outcome,
            catch_up.detail.map(|d| format!(": {d}")).unwrap_or_default()
        )),
    }
}

/// During the outage, tells the standby's bot a word to remember: after the
/// failback the primary's bot must quote it (the outage's conversation was
/// handed back). The standby's hand-back snapshot is taken when it steps
/// down, after this answer.
async fn tell_standby_word<U: UserSide>(
    u: &U,
    taker: &str,
    opts: &DrillOptions,
) -> Result<String, String> {
    let word = format!("fig-{:04x}", rand::random::<u16>());
    chat::ask(
        u,
        taker,
        &format!("drill: please remember the word {word}."),
        opts.phase_timeout,
    )
    .await?;
    Ok(word)
}

/// After the failback, asks the primary's bot for the word told to the
/// standby during the outage: primary restored → the answer that quotes it.
async fn handed_back<H: Host, U: UserSide>(
    inv: &Inventory,
    standby: &H,
    u: &U,
    word: &str,
    restored_at_ms: u64,
    opts: &DrillOptions,
) -> Result<u64, String> {
    match chat::ask_word(u, "primary", word, restored_at_ms, opts.phase_timeout).await? {
        Some(ms) => Ok(ms),
        None => {
            let hand_back = Standby::of(standby, opts.taker)
                .observe(inv)
                .await
                .ok()
                .and_then(|o| o.state)
                .and_then(|s| s.last_hand_back);
            Err(format!(
                "the primary's bot answered without the word told to the standby during the outage (the standby's hand-back: {})",
                hand_back.map_or("none recorded".to_string(), |h| format!(
                    "{}{}",
                    h.outcome,
                    h.detail.map(|d| format!(": {d}")).unwrap_or_default()
                ))
            ))
        }
    }
}

/// $1 the gateway's user, $2 the conversation replica, $3 its branch, $4
/// the word: `yes` when the newest snapshot that reached the remote holds
/// the word (a snapshot taken after the answer may still have begun before
/// the turn was written). The remote-tracking ref moves only when a push
/// succeeded: a snapshot committed but not yet pushed is not one the
/// standby can restore.
const SNAPSHOT_HOLDS: &str = r#"cd / && if runuser -u "$1" -- env GIT_CONFIG_GLOBAL=/dev/null git -c core.hooksPath=/dev/null -C "$2" grep -q -F -e "$4" "refs/remotes/origin/$3" -- 2>/dev/null; then echo yes; else echo no; fi"#;

/// The user's side of the failover, in the report and its timeline.
fn file_failover_answer(taker: &str, v: &UserView, report: &mut DrillReport) {
    report.answered_ms = v.answered_ms;
    for (at, event) in [
        (
            v.standby_fetched_ms,
            "'s gateway fetched the user's ping (its channel runs)",
        ),
        (v.answered_ms, "'s bot answered the user"),
    ] {
        if let Some(at_ms) = at {
            report.timeline.push(Milestone {
                phase: "failover",
                event: format!("{taker}{event}"),
                at_ms,
            });
        }
    }
}

/// A partition: both bots keep answering, each its own user.
async fn both_answer_during_the_cut<U: UserSide>(u: &U, taker: &str) -> bool {
    let within = Duration::from_secs(60);
    let (p, s) = tokio::join!(
        chat::ask(
            u,
            "primary",
            "drill: during the cut, to the primary",
            within
        ),
        chat::ask(u, taker, "drill: during the cut, to the standby", within),
    );
    p.is_ok() && s.is_ok()
}

/// The failback is over when the user can use the primary's bot again, not
/// when its gateway answers.
async fn primary_answers_again<U: UserSide>(
    u: &U,
    v: &mut UserView,
    restored_at_ms: u64,
    opts: &DrillOptions,
    report: &mut DrillReport,
) {
    match chat::ask(u, "primary", "drill: are you back?", opts.phase_timeout).await {
        Ok(_) => {
            let at = unix_ms().saturating_sub(restored_at_ms);
            v.primary_answered_ms = Some(at);
            report.timeline.push(Milestone {
                phase: "failback",
                event: "primary's bot answered the user again".into(),
                at_ms: at,
            });
            report.failback_ms = report.failback_ms.map(|f| f.max(at));
        }
        Err(e) => {
            report.error = Some(format!(
                "the standby stepped down, but the primary's bot does not answer: {e}"
            ));
        }
    }
}

/// The verdict: the first error wins; then what the user saw (an error on
/// their side, a message answered twice, a bot silent during a cut); then
/// the time limits.
fn judge(report: &mut DrillReport, user_error: Option<String>) {
    if report.error.is_none() {
        if let Some(e) = user_error {
            report.error = Some(format!("the user's side: {e}"));
        } else if let Some(v) = &report.user {
            if !v.answered_twice.is_empty() {
                report.error = Some(v.answered_twice.join("; "));
            } else if v.cut_both_answered == Some(false) {
                report.error = Some("during the cut, a bot did not answer its own user".into());
            }
        }
    }
    if report.error.is_none() {
        let slo_failover = report
            .failover_ms
            .is_some_and(|m| m <= report.max_failover_ms);
        let slo_failback = report
            .failback_ms
            .is_some_and(|m| m <= report.max_failback_ms);
        if !slo_failover {
            report.error = Some(format!(
                "failover took {} ms, over --max-failover {} ms",
                report.failover_ms.unwrap_or(0),
                report.max_failover_ms
            ));
        } else if !slo_failback {
            report.error = Some(format!(
                "failback took {} ms, over --max-failback {} ms",
                report.failback_ms.unwrap_or(0),
                report.max_failback_ms
            ));
        }
    }
    report.ok = report.error.is_none();
}

/// Reads what the user saw during the drill and files it in the report.
#[allow(clippy::too_many_arguments)]
async fn finish_view<U: UserSide>(
    user: Option<&U>,
    taker: &str,
    view: Option<UserView>,
    seq0: u64,
    in_flight: Option<(u64, u64)>,
    fault_at_ms: u64,
    restored_at_ms: u64,
    report: &mut DrillReport,
) {
    let (Some(u), Some(mut v)) = (user, view) else {
        return;
    };
    let mut events = Vec::new();
    let mut seq = seq0;
    loop {
        match u.events_after(seq, Duration::ZERO).await {
            Ok((batch, last)) if !batch.is_empty() => {
                events.extend(batch);
                seq = last;
            }
            _ => break,
        }
    }
    chat::review(
        taker,
        &events,
        in_flight,
        fault_at_ms,
        Some(restored_at_ms),
        &mut v,
    );
    for (phase, at, event) in [
        (
            "failover",
            v.announced_ms,
            format!("{taker}'s takeover announcement reached the user"),
        ),
        (
            "failover",
            v.caught_up_announced_ms,
            format!("{taker}'s word that it has the conversation back reached the user"),
        ),
        (
            "failover",
            v.remembered_ms,
            format!("{taker}'s bot answered quoting the word told to the primary before the fault"),
        ),
        (
            "failback",
            v.failback_announced_ms,
            format!("{taker}'s failback message reached the user"),
        ),
        (
            "failback",
            v.handed_back_ms,
            format!(
                "primary's bot answered quoting the word told to the {taker} during the outage"
            ),
        ),
    ] {
        if let Some(at_ms) = at {
            report.timeline.push(Milestone {
                phase,
                event,
                at_ms,
            });
        }
    }
    report
        .timeline
        .sort_by_key(|m| (m.phase != "failover", m.at_ms));
    report.user = Some(v);
}

async fn unmark<H: Host>(standby: &H, opts: &DrillOptions) {
    let _ = Standby::of(standby, opts.taker).unmark_drill().await;
}

/// What the failover phase measured.
#[derive(Default)]
struct FailoverMarks {
    detection_ms: Option<u64>,
    failover_ms: Option<u64>,
    pull_ms: Option<u64>,
    gateway_start_ms: Option<u64>,
    fallback_restart: bool,
    timeline: Vec<Milestone>,
}

/// How a phase waits: from its clock's start, up to the phase timeout,
/// looking every 250 ms, until Ctrl-C.
fn phase_wait<'a>(opts: &DrillOptions, cancel: &'a AtomicBool, clock: &Clock) -> Wait<'a> {
    Wait {
        since: clock.start,
        cancel: Some(cancel),
        ..Wait::new(opts.phase_timeout, Duration::from_millis(250))
    }
}

/// From the fault until the standby serves, polling it every 250 ms.
async fn failover<H: Host>(
    inv: &Inventory,
    standby: &H,
    opts: &DrillOptions,
    cancel: &AtomicBool,
    clock: &Clock,
    promotions_before: u64,
) -> Result<FailoverMarks, String> {
    let mut m = FailoverMarks::default();
    let standby = Standby::of(standby, opts.taker);
    poll(
        &phase_wait(opts, cancel, clock),
        || standby.observe(inv),
        |o| took_over(o, opts.taker, &mut m, clock, promotions_before),
    )
    .await
    .map_err(|e| {
        e.message(|| {
            format!(
                "the {} did not take over within {}s",
                opts.taker,
                opts.phase_timeout.as_secs()
            )
        })
    })?;
    Ok(m)
}

/// One look during the failover: marks the monitor's decision, and is done
/// once the standby serves.
fn took_over(
    o: &Observation,
    taker: Role,
    m: &mut FailoverMarks,
    clock: &Clock,
    promotions_before: u64,
) -> Verdict {
    let warm = o.warm();
    let Some(s) = &o.state else {
        return Verdict::Pending(None);
    };
    if m.detection_ms.is_none()
        && s.counters.promotions >= promotions_before
        && s.role != StandbyRole::Watching
    {
        m.detection_ms = Some(clock.ms());
        m.timeline.push(Milestone {
            phase: "failover",
            event: format!("{taker}'s monitor decided to promote"),
            at_ms: clock.ms(),
        });
    }
    let promoted = s.role == StandbyRole::Promoted && s.counters.promotions > promotions_before;
    if !(promoted && (warm || o.own_up)) {
        return Verdict::Pending(None);
    }
    let t = s.last_promotion.clone();
    if let Some(t) = &t {
        m.pull_ms = Some(t.pull_ms);
        m.gateway_start_ms = Some(t.start_ms);
        m.fallback_restart = t.fallback_restart;
        if !t.healthy {
            return Verdict::Stop(format!(
                "the {taker} was promoted but does not serve: {}",
                s.last_error.clone().unwrap_or_default()
            ));
        }
    }
    // Warm: failover ends when OpenClaw started the channel, by the
    // standby's own clock relative to its decision (the verification after
    // it is bookkeeping, not downtime).
    let serving = match (&t, m.detection_ms) {
        (Some(t), Some(d)) if warm => t
            .serving_at_ms
            .map(|at| d + at.saturating_sub(t.decided_at_ms)),
        _ => None,
    };
    let at = serving.unwrap_or_else(|| clock.ms());
    m.failover_ms = Some(at);
    m.timeline.push(Milestone {
        phase: "failover",
        event: if warm {
            format!("{taker}'s channel started (OpenClaw's own start time)")
        } else {
            format!("{taker}'s gateway answers /healthz")
        },
        at_ms: at,
    });
    if warm {
        m.timeline.push(Milestone {
            phase: "failover",
            event: "monitor verified the channel with OpenClaw".into(),
            at_ms: clock.ms(),
        });
    }
    Verdict::Done
}

/// From the restore until the standby stepped down; a flap guard's pin is
/// reported as exactly that.
async fn failback<H: Host>(
    inv: &Inventory,
    standby: &H,
    opts: &DrillOptions,
    cancel: &AtomicBool,
    clock: &Clock,
    report: &mut DrillReport,
) -> Result<(), String> {
    let standby = Standby::of(standby, opts.taker);
    poll(
        &phase_wait(opts, cancel, clock),
        || standby.observe(inv),
        |o| stepped_down(o, inv, opts.taker, clock, report),
    )
    .await
    .map(drop)
    .map_err(|e| {
        e.message(|| {
            format!(
                "the {} did not step down within {}s",
                opts.taker,
                opts.phase_timeout.as_secs()
            )
        })
    })
}

/// One look during the failback: marks the primary's recovery, and is done
/// once the standby stepped down.
fn stepped_down(
    o: &Observation,
    inv: &Inventory,
    taker: Role,
    clock: &Clock,
    report: &mut DrillReport,
) -> Verdict {
    let primary_seen = report.primary_recovery_ms.is_some() || o.primary_up;
    if o.primary_up && report.primary_recovery_ms.is_none() {
        report.primary_recovery_ms = Some(clock.ms());
        report.timeline.push(Milestone {
            phase: "failback",
            event: "primary healthy again".into(),
            at_ms: clock.ms(),
        });
    }
    if o.state.as_ref().is_some_and(|s| s.pinned) {
        return Verdict::Stop(format!(
            "the flap guard pinned the standby promoted ({} promotions within {}): it keeps serving and steps down once they age out; this is its answer to a flapping primary, not a failure of the drill's fault",
            inv.monitor.flap_max_promotions,
            crate::inventory::units::format_duration(inv.monitor.flap_window),
        ));
    }
    if let Some(reason) = o
        .state
        .as_ref()
        .and_then(|s| s.primary_channels_failing_since.as_ref())
        .filter(|_| primary_seen && clock.start.elapsed() > Duration::from_secs(150))
    {
        return Verdict::Stop(format!(
            "the primary's gateway is back but its channel has failed since {reason}: the standby keeps serving (so the user still has a bot); start the primary's channel (if OpenClaw's crash-loop breaker holds it, after repeated kills: `openclaw gateway call channels.start --params '{{\"channel\":\"<id>\"}}'` as the gateway user on the primary, or a restart once its 5-minute window has passed)"
        ));
    }
    // Stepped down: no longer serving (a warm standby then finishes its
    // demotion, still Demoting, before it is ready again).
    let stepping_down = matches!(
        o.role(),
        Some(StandbyRole::Watching | StandbyRole::Demoting)
    );
    if !(primary_seen && stepping_down && !o.standby_serving()) {
        return Verdict::Pending(None);
    }
    report.failback_ms = Some(clock.ms());
    report.timeline.push(Milestone {
        phase: "failback",
        event: if o.warm() {
            format!("{taker} demoted, its channels switched off")
        } else {
            format!("{taker} demoted, its gateway stopped")
        },
        at_ms: clock.ms(),
    });
    Verdict::Done
}

/// Refuses to break anything unless the pair is healthy and idle, waiting up
/// to `opts.wait` for it (saying what it waits for); and unless this drill
/// would leave the standby pinned by the flap guard.
async fn preflight<H: Host, U: UserSide>(
    inv: &Inventory,
    standby: &H,
    user: Option<&U>,
    opts: &DrillOptions,
    cancel: &AtomicBool,
) -> Result<(), String> {
    let standby = Standby::of(standby, opts.taker);
    let tell = |p: &str| {
        if let Some(progress) = &opts.progress {
            (progress.0)(&format!(
                "waiting (up to {}s) for a healthy, idle pair: {p}",
                opts.wait.as_secs()
            ));
        }
    };
    let wait = Wait {
        cancel: Some(cancel),
        progress: Some(&tell),
        ..Wait::new(opts.wait, Duration::from_secs(1))
    };
    // One look: the problem, if any; a flap problem stops the wait.
    let look = || async {
        let problem = match standby.observe(inv).await {
            Err(e) => Some(format!("cannot read the standby: {e}")),
            Ok(o) => {
                if let Some(p) = o
                    .state
                    .as_ref()
                    .and_then(|s| flap_problem(s, inv))
                    .filter(|_| !opts.allow_pin)
                {
                    return Err(p);
                }
                preflight_problem(o)
            }
        };
        // The primary's channel must really answer, not only its gateway.
        Ok(match (problem, user) {
            (None, Some(u)) => chat::ask(
                u,
                "primary",
                "drill: are you there?",
                Duration::from_secs(30),
            )
            .await
            .err()
            .map(|e| format!("{e} (its channel is down?)")),
            (p, _) => p,
        })
    };
    let judge = |p: &Option<String>| match p {
        None => Verdict::Done,
        Some(p) => Verdict::Pending(Some(p.clone())),
    };
    match poll(&wait, look, judge).await {
        Ok(_) => Ok(()),
        Err(WaitError::TimedOut(p) | WaitError::Cancelled(p)) => Err(p.unwrap_or_default()),
        Err(WaitError::Stopped(p)) => Err(p),
    }
}

/// When this drill's promotion would be one too many for the flap guard
/// (so the standby would stay promoted), why, and until when.
fn flap_problem(s: &MonitorState, inv: &Inventory) -> Option<String> {
    let now = crate::clock::parse_rfc3339(&s.updated)?;
    let window = inv.monitor.flap_window.as_secs();
    let recent: Vec<u64> = s
        .transitions
        .iter()
        .filter(|t| t.to == StandbyRole::Promoting && t.reason != "planned switchover")
        .filter_map(|t| crate::clock::parse_rfc3339(&t.at))
        .filter(|at| now.saturating_sub(*at) < window)
        .collect();
    let max = inv.monitor.flap_max_promotions as usize;
    if recent.len() + 1 < max {
        return None;
    }
    // The oldest that must age out for this one to fit.
    let free_at = recent.get(recent.len() + 1 - max)? + window;
    Some(format!(
        "the standby was promoted {} times in the last {}: one more would make the flap guard pin it (it would keep serving after the drill); drill again after {} (standby's clock), or pass --allow-pin",
        recent.len(),
        crate::inventory::units::format_duration(inv.monitor.flap_window),
        crate::clock::rfc3339(free_at)
    ))
}

fn preflight_problem(o: Observation) -> Option<String> {
    if !o.primary_up {
        Some("the primary's gateway is not healthy (as seen from the standby)".to_string())
    } else if o.role() != Some(StandbyRole::Watching) {
        Some(format!(
            "the standby's monitor is not watching (it is {})",
            o.state.as_ref().map_or("not running", |s| s.role.as_str())
        ))
    } else if o
        .state
        .as_ref()
        .is_some_and(|s| s.hold.is_some() || s.switchover)
    {
        Some("the standby's monitor is held by a deploy or a switchover".to_string())
    } else if o.warm() && !o.own_up {
        Some("the warm standby's own gateway is down (a degraded pair)".to_string())
    } else if o.warm() && o.state.as_ref().is_some_and(|s| s.armed != Some(true)) {
        // Right after a deploy or a monitor restart: arming takes seconds,
        // and a failover before it would measure the arming too.
        Some("the warm standby is not armed yet (its channel credentials are loading)".to_string())
    } else if o.standby_serving() {
        Some(if o.warm() {
            "the standby's channels are switched on".to_string()
        } else {
            "the standby's gateway is running".to_string()
        })
    } else {
        None
    }
}

async fn restore<H: Host>(
    inv: &Inventory,
    primary: &H,
    opts: &DrillOptions,
    report: &mut DrillReport,
) {
    if !report.restored {
        let script = restore_script(inv, opts.fault, opts.taker);
        report.restored = put_back(primary, &script, "primary", report).await;
    }
}

/// A chain's standby broken with the primary, put back.
async fn restore_standby<H: Host>(
    inv: &Inventory,
    standby: Option<&H>,
    opts: &DrillOptions,
    report: &mut DrillReport,
) {
    if let Some(standby) = standby {
        let script = standby_restore_script(inv, opts.fault, opts.taker);
        put_back(standby, &script, "standby", report).await;
    }
}

/// Runs a restore script; a failure joins the report's error with what to
/// run by hand on `node`.
async fn put_back<H: Host>(
    host: &H,
    script: &Script,
    node: &str,
    report: &mut DrillReport,
) -> bool {
    let Err(e) = check(host, script).await else {
        return true;
    };
    let msg = format!(
        "RESTORING THE {} FAILED: {e}; fix it by hand: `{}` on the {node}",
        node.to_uppercase(),
        script.render().replace('\n', "; ")
    );
    report.error = Some(match report.error.take() {
        Some(prev) => format!("{prev}; {msg}"),
        None => msg,
    });
    false
}

pub fn timeline(r: &DrillReport) -> String {
    let mut s = format!(
        "FAILOVER DRILL ({})\n",
        r.fault
            .map_or("?".into(), |f| format!("{f:?}").to_lowercase())
    );
    let mut phase = "";
    for m in &r.timeline {
        if m.phase != phase {
            phase = m.phase;
            s.push_str(&format!("  {phase}\n"));
        }
        s.push_str(&format!(
            "    +{:>6.1}s  {}\n",
            m.at_ms as f64 / 1000.0,
            m.event
        ));
    }
    // Sub-second steps (a git pull) in milliseconds, the rest in seconds.
    let secs = |v: Option<u64>| match v {
        None => "-".to_string(),
        Some(m) if m < 1000 => format!("{m}ms"),
        Some(m) => format!("{:.1}s", m as f64 / 1000.0),
    };
    s.push_str(&format!(
        "  failover {} (detection {}, git pull {}, {} {}); failback {} (primary healthy after {})\n",
        secs(r.failover_ms),
        secs(r.detection_ms),
        secs(r.pull_ms),
        if r.fallback_restart { "live switch FAILED, gateway restart + verify" } else { "switch/start + verify" },
        secs(r.gateway_start_ms),
        secs(r.failback_ms),
        secs(r.primary_recovery_ms)
    ));
    if let Some(u) = &r.user {
        s.push_str(&format!(
            "  the user: answered by the standby after {} ({} ping{}); takeover announced after {}; primary's bot answering again after {} of the restore\n",
            secs(u.answered_ms),
            u.pings,
            if u.pings == 1 { "" } else { "s" },
            secs(u.announced_ms),
            secs(u.primary_answered_ms),
        ));
        if u.word.is_some() {
            s.push_str(&format!(
                "  the conversation: the standby quoted the word told to the primary after {} (it said it had the conversation back after {})\n",
                secs(u.remembered_ms),
                secs(u.caught_up_announced_ms),
            ));
        }
        if u.outage_word.is_some() {
            s.push_str(&format!(
                "  the conversation back: the primary quoted the word told to the standby during the outage {} after its restore\n",
                secs(u.handed_back_ms),
            ));
        }
        if let Some(b) = &u.before_fault {
            let when = match b.answered_at_ms {
                Some(ms) if ms < 0 => format!(" ({:.1}s before the fault)", -ms as f64 / 1000.0),
                Some(ms) => format!(" ({:.1}s after the fault)", ms as f64 / 1000.0),
                None => String::new(),
            };
            s.push_str(&format!(
                "  the message the primary had fetched when the fault hit: {}{when}\n",
                b.outcome.replace('_', " ")
            ));
        }
        if let Some(both) = u.cut_both_answered {
            s.push_str(&format!(
                "  during the cut: {}\n",
                if both {
                    "both bots answered, each its own user"
                } else {
                    "a bot did NOT answer"
                }
            ));
        }
        s.push_str(&format!(
            "  answered twice: {}\n",
            if u.answered_twice.is_empty() {
                "none".to_string()
            } else {
                u.answered_twice.join("; ")
            }
        ));
    }
    s.push_str(&format!(
        "  primary restored: {}\n",
        if r.restored { "yes" } else { "NO" }
    ));
    match &r.error {
        None => s.push_str("  result: PASS\n"),
        Some(e) => s.push_str(&format!("  result: FAIL: {e}\n")),
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watching_warm(armed: Option<bool>) -> Observation {
        let mut state: MonitorState = serde_json::from_value(serde_json::json!({
            "version": "0", "name": "t", "pid": 1, "role": "watching", "since": "",
            "pinned": false, "consecutive_failures": 0, "consecutive_successes": 0,
            "updated": "", "standby": "warm", "recent_probes": [], "counters": {"probes": 0, "probe_failures": 0, "promotions": 0, "demotions": 0, "failed_actions": 0}, "transitions": []
        }))
        .unwrap();
        state.armed = armed;
        Observation {
            state: Some(state),
            own_up: true,
            primary_up: true,
            unit: "active".into(),
        }
    }

    #[test]
    fn a_warm_standby_must_be_armed_before_a_drill() {
        assert_eq!(preflight_problem(watching_warm(Some(true))), None);
        for armed in [None, Some(false)] {
            let p = preflight_problem(watching_warm(armed)).unwrap();
            assert!(p.contains("not armed"), "{p}");
        }
    }
}
