//! The user's side of a drill, where one is reachable (the lab's chat
//! world): a message that reached the primary just before the fault, a ping
//! to the standby's bot every second from the fault until it answers, a
//! message to each bot during a cut, the primary's bot answering again at
//! failback; and afterwards, what became of each message.
//!
//! A drill sends the user's bots, per drill: one question to the primary
//! before the fault (the preflight), one message that reaches it just
//! before the fault, one ping a second to the standby until it answers
//! (typically 3 to 6), one message to each bot during a cut, and one to the
//! primary at failback. The standby itself sends its takeover and failback
//! announcements, marked as a drill (docs/drills.md).

use std::time::Duration;

use serde::Serialize;

use crate::user_side::{ChatEvent, ChatEventKind, UserSide};

/// What the user saw, in milliseconds from the fault (failover) or from
/// the restore (failback).
#[derive(Debug, Clone, Default, Serialize)]
pub struct UserView {
    /// Fault → the standby's bot answered the user (its first answer to a ping).
    pub answered_ms: Option<u64>,
    /// Fault → the standby's gateway fetched a ping: its channel runs.
    pub standby_fetched_ms: Option<u64>,
    /// Fault → the standby's takeover announcement reached the user.
    pub announced_ms: Option<u64>,
    /// Pings sent to the standby's bot until it answered.
    pub pings: u32,
    /// The message that reached the primary just before the fault.
    pub before_fault: Option<BeforeFault>,
    /// Cut: both bots answered their own user during the partition.
    pub cut_both_answered: Option<bool>,
    /// Restore → the primary's bot answered again.
    pub primary_answered_ms: Option<u64>,
    /// Restore → the standby's failback announcement reached the user.
    pub failback_announced_ms: Option<u64>,
    /// Messages answered more than once (a correct pair has none).
    pub answered_twice: Vec<String>,
    /// The word the user told the primary before the fault (with
    /// conversations travelling), to be quoted by the standby.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub word: Option<String>,
    /// Fault → the standby's bot answered quoting that word: it continues
    /// the primary's conversation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remembered_ms: Option<u64>,
    /// Fault → the standby's message that it has the conversation back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caught_up_announced_ms: Option<u64>,
    /// The word the user told the standby during the outage, to be quoted
    /// by the primary after the failback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outage_word: Option<String>,
    /// Primary restored → its bot answered quoting that word: the outage's
    /// conversation came back with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handed_back_ms: Option<u64>,
}

/// What became of the message the primary had fetched when the fault hit.
#[derive(Debug, Clone, Serialize)]
pub struct BeforeFault {
    pub message_id: u64,
    /// Sent this long before the fault.
    pub sent_before_fault_ms: u64,
    /// `answered` (by the primary before the restore), `answered_late`
    /// (after the restore), `answered_by_standby`, or `lost`.
    pub outcome: String,
    /// When the answer came, from the fault (negative: before it).
    pub answered_at_ms: Option<i64>,
}

/// Waits for `node`'s bot to answer message `id` (an answer names the
/// message it answers: the lab sets OpenClaw's `replyToMode: first`).
pub(super) async fn wait_answer<U: UserSide>(
    user: &U,
    node: &str,
    id: u64,
    from_seq: u64,
    within: Duration,
) -> Result<ChatEvent, String> {
    let deadline = tokio::time::Instant::now() + within;
    let mut seq = from_seq;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return Err(format!(
                "the {node}'s bot did not answer within {}s",
                within.as_secs()
            ));
        }
        let (events, last) = user
            .events_after(seq, left.min(Duration::from_secs(5)))
            .await?;
        seq = last;
        if let Some(e) = events.into_iter().find(|e| answers(e, node, id)) {
            return Ok(e);
        }
    }
}

/// Whether `e` is `node`'s bot answering message `id` (alone, or merged
/// with others that arrived together).
fn answers(e: &ChatEvent, node: &str, id: u64) -> bool {
    e.node == node
        && matches!(&e.kind, ChatEventKind::Answered { answers, .. } if answers.contains(&id))
}

/// Asks `node`'s bot a question and waits for the answer: the latency.
pub(super) async fn ask<U: UserSide>(
    user: &U,
    node: &str,
    text: &str,
    within: Duration,
) -> Result<u64, String> {
    let sent = user.send(node, text).await?;
    let answer = wait_answer(user, node, sent.message_id, sent.seq, within).await?;
    Ok(answer.at_ms.saturating_sub(sent.at_ms))
}

/// Asks `node`'s bot which word the user told the other bot; `Ok(Some(ms))`:
/// `since_ms` → its answer, which quotes the word; `Ok(None)`: it answered
/// without it.
pub(super) async fn ask_word<U: UserSide>(
    user: &U,
    node: &str,
    word: &str,
    since_ms: u64,
    within: Duration,
) -> Result<Option<u64>, String> {
    let sent = user
        .send(node, "drill: which word did I ask you to remember last?")
        .await?;
    let answer = wait_answer(user, node, sent.message_id, sent.seq, within).await?;
    Ok(match &answer.kind {
        ChatEventKind::Answered { text, .. } if text.contains(word) => {
            Some(answer.at_ms.saturating_sub(since_ms))
        }
        _ => None,
    })
}

/// Sends a message to the primary and waits until its gateway fetched it,
/// so the fault hits a message in flight. Returns (message id, sent at).
pub(super) async fn in_flight<U: UserSide>(user: &U) -> Result<(u64, u64), String> {
    let sent = user
        .send("primary", "drill: my last message before the fault")
        .await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut seq = sent.seq;
    while tokio::time::Instant::now() < deadline {
        let (events, last) = user.events_after(seq, Duration::from_secs(2)).await?;
        seq = last;
        if events.iter().any(|e| {
            e.node == "primary"
                && matches!(e.kind, ChatEventKind::Delivered { message_id } if message_id == sent.message_id)
        }) {
            return Ok((sent.message_id, sent.at_ms));
        }
    }
    Err("the primary's gateway did not fetch a message within 15s: is its channel running?".into())
}

/// From the fault on: a ping to the standby's bot every second until its
/// gateway fetches one, then the wait for its answer; also notes when the standby first fetched one and when its
/// takeover announcement arrived. Gives up after `within`.
pub(super) async fn ping_until_answered<U: UserSide>(
    user: &U,
    taker: &str,
    fault_at_ms: u64,
    within: Duration,
    view: &mut UserView,
) -> Result<(), String> {
    let started = tokio::time::Instant::now();
    let mut pings: Vec<u64> = Vec::new();
    let mut seq = None::<u64>;
    let mut next_ping = started;
    loop {
        if started.elapsed() > within {
            return Err(format!(
                "the standby's bot did not answer any of {} pings within {}s",
                pings.len(),
                within.as_secs()
            ));
        }
        if tokio::time::Instant::now() >= next_ping {
            // Once the standby's gateway fetched a ping its agent is at work:
            // more pings would be steered into the running turn (OpenClaw's
            // default queue mode), which on a starved host keeps that turn
            // from ever ending. The user waits, as a person who wrote would.
            if view.standby_fetched_ms.is_none() {
                let sent = user
                    .send(taker, &format!("drill ping {}", pings.len() + 1))
                    .await?;
                seq.get_or_insert(sent.seq.saturating_sub(1));
                pings.push(sent.message_id);
                view.pings = pings.len() as u32;
            }
            next_ping += Duration::from_secs(1);
        }
        let wait = next_ping.saturating_duration_since(tokio::time::Instant::now());
        let (events, last) = user.events_after(seq.unwrap_or(0), wait).await?;
        seq = Some(last);
        for e in events.iter().filter(|e| e.node == taker) {
            let at = e.at_ms.saturating_sub(fault_at_ms);
            match &e.kind {
                ChatEventKind::Delivered { .. } => {
                    view.standby_fetched_ms.get_or_insert(at);
                }
                ChatEventKind::Said { .. } => {
                    view.announced_ms.get_or_insert(at);
                }
                ChatEventKind::Answered { answers, .. }
                    if answers.iter().any(|a| pings.contains(a)) =>
                {
                    view.answered_ms = Some(at);
                    return Ok(());
                }
                _ => {}
            }
        }
    }
}

/// Afterwards, from every event of the drill: what became of the message in
/// flight, the announcements, and any message answered twice.
pub(super) fn review(
    taker: &str,
    events: &[ChatEvent],
    in_flight: Option<(u64, u64)>,
    fault_at_ms: u64,
    restored_at_ms: Option<u64>,
    view: &mut UserView,
) {
    if let Some((id, sent_at)) = in_flight {
        let answer = events.iter().find(|e| answers(e, "primary", id));
        let by_standby = events.iter().any(|e| answers(e, taker, id));
        let (outcome, at) = match answer {
            Some(a) if restored_at_ms.is_none_or(|r| a.at_ms < r) => ("answered", Some(a.at_ms)),
            Some(a) => ("answered_late", Some(a.at_ms)),
            None if by_standby => ("answered_by_standby", None),
            None => ("lost", None),
        };
        view.before_fault = Some(BeforeFault {
            message_id: id,
            sent_before_fault_ms: fault_at_ms.saturating_sub(sent_at),
            outcome: outcome.into(),
            answered_at_ms: at.map(|t| t as i64 - fault_at_ms as i64),
        });
    }
    // The standby's own messages (no question to answer): its takeover
    // announcement, then its failback message, whenever each arrived.
    let mut announcements = events.iter().filter(|e| {
        e.node == taker && e.at_ms >= fault_at_ms && matches!(e.kind, ChatEventKind::Said { .. })
    });
    if let Some(takeover) = announcements.next() {
        view.announced_ms = Some(takeover.at_ms - fault_at_ms);
    }
    // Between the two, maybe, that it has the conversation back (and
    // OpenClaw's own word that it resumes an interrupted turn).
    let (between, after): (Vec<_>, Vec<_>) =
        announcements.partition(|e| restored_at_ms.is_none_or(|r| e.at_ms < r));
    if let Some(caught_up) = between.iter().find(|e| {
        matches!(&e.kind, ChatEventKind::Said { text, .. } if text.contains("conversation back"))
    }) {
        view.caught_up_announced_ms = Some(caught_up.at_ms - fault_at_ms);
    }
    if let (Some(failback), Some(restored)) = (after.first(), restored_at_ms) {
        view.failback_announced_ms = Some(failback.at_ms.saturating_sub(restored));
    }
    let mut counts: std::collections::BTreeMap<(String, u64), u32> = Default::default();
    for e in events {
        if let ChatEventKind::Answered { answers, .. } = &e.kind {
            for a in answers {
                *counts.entry((e.node.clone(), *a)).or_default() += 1;
            }
        }
    }
    view.answered_twice = counts
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|((node, id), n)| format!("message #{id} to the {node}'s bot was answered {n} times"))
        .collect();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(seq: u64, at_ms: u64, node: &str, kind: ChatEventKind) -> ChatEvent {
        ChatEvent {
            seq,
            at_ms,
            node: node.into(),
            kind,
        }
    }

    /// The bot answering `reply_to`, or speaking on its own.
    fn answer(message_id: u64, reply_to: Option<u64>) -> ChatEventKind {
        match reply_to {
            Some(r) => ChatEventKind::Answered {
                message_id,
                answers: vec![r],
                text: "x".into(),
            },
            None => ChatEventKind::Said {
                message_id,
                text: "announcement".into(),
            },
        }
    }

    #[test]
    fn the_message_in_flight_is_answered_late_lost_or_in_time() {
        let fault = 10_000;
        let events = vec![
            e(
                1,
                9_500,
                "primary",
                ChatEventKind::Wrote {
                    message_id: 7,
                    text: "last".into(),
                },
            ),
            e(
                2,
                9_900,
                "primary",
                ChatEventKind::Delivered { message_id: 7 },
            ),
            e(3, 14_000, "standby", answer(3, None)),
            e(4, 80_000, "primary", answer(8, Some(7))),
            e(5, 95_000, "standby", answer(9, None)),
        ];
        let mut v = UserView::default();
        review(
            "standby",
            &events,
            Some((7, 9_500)),
            fault,
            Some(60_000),
            &mut v,
        );
        let b = v.before_fault.clone().unwrap();
        assert_eq!(
            (b.outcome.as_str(), b.answered_at_ms),
            ("answered_late", Some(70_000))
        );
        assert_eq!(b.sent_before_fault_ms, 500);
        assert_eq!(v.announced_ms, Some(4_000));
        assert_eq!(v.failback_announced_ms, Some(35_000));
        assert!(v.answered_twice.is_empty());
        let mut v = UserView::default();
        review(
            "standby",
            &events[..3],
            Some((7, 9_500)),
            fault,
            Some(60_000),
            &mut v,
        );
        assert_eq!(v.before_fault.unwrap().outcome, "lost");
        let mut v = UserView::default();
        let early = vec![e(4, 10_400, "primary", answer(8, Some(7)))];
        review(
            "standby",
            &early,
            Some((7, 9_500)),
            fault,
            Some(60_000),
            &mut v,
        );
        assert_eq!(v.before_fault.unwrap().answered_at_ms, Some(400));
    }

    #[test]
    fn a_message_answered_twice_is_reported() {
        let events = vec![
            e(1, 1, "standby", answer(5, Some(2))),
            e(2, 2, "standby", answer(6, Some(2))),
            e(3, 3, "primary", answer(7, Some(2))),
        ];
        let mut v = UserView::default();
        review("standby", &events, None, 0, None, &mut v);
        assert_eq!(
            v.answered_twice,
            ["message #2 to the standby's bot was answered 2 times"]
        );
    }
}
