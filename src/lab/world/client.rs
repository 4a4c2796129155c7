//! The lab user's side, over the world's control socket: write to a bot and
//! wait for its answer (`ocfo lab chat`), list every message (`ocfo lab
//! transcript`), and the [`UserSide`] that drills measure through.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use hyper::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::state::{BotStatus, Event, EventKind};
use crate::user_side::{ChatEvent, ChatEventKind, Sent, UserSide};

/// How long after an answer began more of it may follow (OpenClaw splits
/// long answers into several messages).
const QUIET: Duration = Duration::from_millis(1500);

#[derive(Debug, Clone)]
pub struct WorldClient {
    pub socket: PathBuf,
}

impl WorldClient {
    pub fn for_lab(lab: &super::super::LabState) -> WorldClient {
        WorldClient {
            socket: super::socket_path(lab),
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        limit: Duration,
    ) -> Result<Value, String> {
        let (status, value) =
            super::http::unix_request(&self.socket, method, path, body, limit).await?;
        if status.is_success() {
            Ok(value)
        } else {
            Err(value["error"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("the chat world answered {status}")))
        }
    }

    pub async fn status(&self) -> Result<Vec<BotStatus>, String> {
        let v = self
            .call(Method::GET, "/status", None, Duration::from_secs(5))
            .await?;
        serde_json::from_value(v["bots"].clone()).map_err(|e| e.to_string())
    }

    /// The user opens the node's bot and presses Start.
    pub async fn start(&self, node: &str) -> Result<(), String> {
        self.call(
            Method::POST,
            "/start",
            Some(json!({"bot": node})),
            Duration::from_secs(5),
        )
        .await
        .map(|_| ())
    }

    /// The world's own record after `seq` (waiting up to `wait`).
    pub async fn events(&self, after: u64, wait: Duration) -> Result<(Vec<Event>, u64), String> {
        let v = self
            .call(
                Method::GET,
                &format!(
                    "/events?after={after}&wait_ms={}&limit=5000",
                    wait.as_millis()
                ),
                None,
                wait + Duration::from_secs(10),
            )
            .await?;
        let events: Vec<Event> =
            serde_json::from_value(v["events"].clone()).map_err(|e| e.to_string())?;
        Ok((events, v["last_seq"].as_u64().unwrap_or(after)))
    }

    /// The whole record.
    pub async fn all_events(&self) -> Result<Vec<Event>, String> {
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let (events, _) = self.events(after, Duration::ZERO).await?;
            let Some(last) = events.last() else {
                return Ok(all);
            };
            after = last.seq;
            all.extend(events);
        }
    }

    /// Writes `text` to the node's bot and waits up to `wait` for the
    /// answer: the bot's messages in the chat from the first one on, until
    /// it has been quiet for a moment.
    pub async fn chat(&self, node: &str, text: &str, wait: Duration) -> Result<ChatReply, String> {
        let started = Instant::now();
        let sent = self.send(node, text).await?;
        let mut reply = ChatReply {
            to: node.to_string(),
            text: text.to_string(),
            sent_at_ms: sent.at_ms,
            message_id: sent.message_id,
            delivered_at_ms: None,
            answers: Vec::new(),
        };
        let mut cursor = sent.seq;
        let mut last_answer = None::<Instant>;
        loop {
            let left = match last_answer {
                Some(t) => QUIET.saturating_sub(t.elapsed()),
                None => wait.saturating_sub(started.elapsed()),
            };
            if left.is_zero() {
                break;
            }
            let (events, last) = self
                .events_after(cursor, left.min(Duration::from_secs(5)))
                .await?;
            cursor = last;
            for e in events.into_iter().filter(|e| e.node == node) {
                match e.kind {
                    ChatEventKind::Delivered { message_id } if message_id == sent.message_id => {
                        reply.delivered_at_ms = Some(e.at_ms)
                    }
                    // An answer to another message (one still queued) is
                    // not this one's.
                    ChatEventKind::Answered { answers, text, .. }
                        if answers.contains(&sent.message_id) =>
                    {
                        reply.answers.push(Answer {
                            at_ms: e.at_ms,
                            text,
                        });
                        last_answer = Some(Instant::now());
                    }
                    _ => {}
                }
            }
        }
        if reply.answers.is_empty() {
            return Err(self
                .no_answer(node, wait, reply.delivered_at_ms.is_some())
                .await);
        }
        Ok(reply)
    }

    /// Why nothing came back, from the bot's side of the world.
    async fn no_answer(&self, node: &str, wait: Duration, delivered: bool) -> String {
        let bot = self
            .status()
            .await
            .ok()
            .and_then(|s| s.into_iter().find(|b| b.node == node));
        let why = match bot {
            None => String::new(),
            Some(b) if delivered => format!(
                "; the {node}'s gateway fetched the message but its bot @{} did not answer (is its model reachable? the gateway's log says why)",
                b.username
            ),
            Some(b) if b.polling => format!("; @{} is polling but did not fetch it", b.username),
            Some(b) => format!(
                "; nothing polls @{} ({}): is the {node}'s channel running? `ocfo status INVENTORY` shows it",
                b.username,
                match b.last_poll_ms_ago {
                    Some(ms) => format!("last getUpdates {:.1}s ago", ms as f64 / 1000.0),
                    None => "never polled".to_string(),
                }
            ),
        };
        format!(
            "no answer from the {node}'s bot within {}s{why}",
            wait.as_secs()
        )
    }
}

impl UserSide for WorldClient {
    async fn send(&self, node: &str, text: &str) -> Result<Sent, String> {
        let v = self
            .call(
                Method::POST,
                "/send",
                Some(json!({"bot": node, "text": text})),
                Duration::from_secs(5),
            )
            .await?;
        Ok(Sent {
            seq: v["seq"].as_u64().unwrap_or(0),
            at_ms: v["at_ms"].as_u64().unwrap_or(0),
            message_id: v["message_id"].as_u64().unwrap_or(0),
        })
    }

    async fn events_after(
        &self,
        seq: u64,
        wait: Duration,
    ) -> Result<(Vec<ChatEvent>, u64), String> {
        let (events, last) = self.events(seq, wait).await?;
        Ok((events.into_iter().filter_map(chat_event).collect(), last))
    }
}

/// The world's record as the user sees it.
fn chat_event(e: Event) -> Option<ChatEvent> {
    let (node, kind) = match e.kind {
        EventKind::UserMessage {
            bot,
            message_id,
            text,
            ..
        } => (bot, ChatEventKind::Wrote { message_id, text }),
        EventKind::Delivered {
            bot, message_id, ..
        } => (bot, ChatEventKind::Delivered { message_id }),
        EventKind::BotMessage {
            bot,
            message_id,
            answers,
            text,
            ..
        } if !answers.is_empty() => (
            bot,
            ChatEventKind::Answered {
                message_id,
                answers,
                text,
            },
        ),
        EventKind::BotMessage {
            bot,
            message_id,
            text,
            ..
        } => (bot, ChatEventKind::Said { message_id, text }),
        _ => return None,
    };
    Some(ChatEvent {
        seq: e.seq,
        at_ms: e.at_ms,
        node,
        kind,
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    pub at_ms: u64,
    pub text: String,
}

/// `ocfo lab chat`'s result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatReply {
    pub to: String,
    pub text: String,
    pub message_id: u64,
    pub sent_at_ms: u64,
    /// When the node's gateway fetched the message.
    pub delivered_at_ms: Option<u64>,
    pub answers: Vec<Answer>,
}

impl ChatReply {
    pub fn latency_ms(&self) -> Option<u64> {
        self.answers
            .first()
            .map(|a| a.at_ms.saturating_sub(self.sent_at_ms))
    }
}

/// One message in `ocfo lab transcript`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscriptLine {
    pub at: String,
    pub at_ms: u64,
    /// The node whose bot the chat is with.
    pub node: String,
    pub bot: String,
    /// `to_bot` (the user wrote) or `from_bot` (the bot wrote).
    pub direction: String,
    pub message_id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<u64>,
    /// The user's messages a bot's message answers (the quoted one, else
    /// those the lab model's answer quotes last); none for an announcement.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub answers: Vec<u64>,
    /// The text as it finally reads (after the bot's edits).
    pub text: String,
    /// When the gateway fetched a user's message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered_at_ms: Option<u64>,
    #[serde(skip_serializing_if = "is_zero")]
    pub edits: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Every message each bot received and sent, in order, with the bots'
/// usernames from `bots`.
pub fn transcript(events: &[Event], bots: &[BotStatus]) -> Vec<TranscriptLine> {
    let username = |node: &str| {
        bots.iter()
            .find(|b| b.node == node)
            .map_or(node.to_string(), |b| format!("@{}", b.username))
    };
    let mut lines: Vec<TranscriptLine> = Vec::new();
    let find = |lines: &[TranscriptLine], node: &str, id: u64| {
        lines
            .iter()
            .rposition(|l| l.node == node && l.message_id == id)
    };
    for e in events {
        match &e.kind {
            EventKind::UserMessage {
                bot,
                message_id,
                text,
                ..
            }
            | EventKind::BotMessage {
                bot,
                message_id,
                text,
                ..
            } => {
                let from_bot = matches!(e.kind, EventKind::BotMessage { .. });
                let (reply_to, answers) = match &e.kind {
                    EventKind::BotMessage {
                        reply_to, answers, ..
                    } => (*reply_to, answers.clone()),
                    _ => (None, Vec::new()),
                };
                lines.push(TranscriptLine {
                    at: crate::clock::rfc3339_ms(e.at_ms),
                    at_ms: e.at_ms,
                    node: bot.clone(),
                    bot: username(bot),
                    direction: if from_bot { "from_bot" } else { "to_bot" }.into(),
                    message_id: *message_id,
                    reply_to,
                    answers,
                    text: text.clone(),
                    delivered_at_ms: None,
                    edits: 0,
                });
            }
            EventKind::Delivered {
                bot, message_id, ..
            } => {
                if let Some(i) = find(&lines, bot, *message_id) {
                    lines[i].delivered_at_ms.get_or_insert(e.at_ms);
                }
            }
            EventKind::Edited {
                bot,
                message_id,
                text,
                ..
            } => {
                if let Some(i) = find(&lines, bot, *message_id) {
                    lines[i].text = text.clone();
                    lines[i].edits += 1;
                }
            }
            _ => {}
        }
    }
    lines
}

/// The transcript as text, one message per line (continuation lines indented).
pub fn transcript_text(lines: &[TranscriptLine]) -> String {
    let mut s = String::new();
    for l in lines {
        let arrow = if l.direction == "to_bot" {
            format!("user -> {}", l.bot)
        } else {
            format!("{} -> user", l.bot)
        };
        let mut notes = Vec::new();
        if let Some(r) = l.reply_to {
            notes.push(format!("reply to #{r}"));
        }
        let answers: Vec<String> = l
            .answers
            .iter()
            .filter(|a| Some(**a) != l.reply_to)
            .map(|a| format!("#{a}"))
            .collect();
        if !answers.is_empty() {
            notes.push(format!("answers {}", answers.join(" ")));
        } else if l.direction == "from_bot" && l.answers.is_empty() {
            notes.push("its own message".into());
        }
        if let Some(d) = l.delivered_at_ms {
            notes.push(format!(
                "fetched +{:.1}s",
                d.saturating_sub(l.at_ms) as f64 / 1000.0
            ));
        } else if l.direction == "to_bot" {
            notes.push("not fetched yet".into());
        }
        if l.edits > 0 {
            notes.push(format!("edited {}x", l.edits));
        }
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!(" ({})", notes.join(", "))
        };
        let mut text = l.text.lines();
        s.push_str(&format!(
            "{}  {:<8} {arrow} #{}{notes}: {}\n",
            l.at,
            l.node,
            l.message_id,
            text.next().unwrap_or("")
        ));
        for more in text {
            s.push_str(&format!("{:>31}{more}\n", ""));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::super::state::{BotSpec, UserSpec, World};
    use super::*;

    #[test]
    fn the_transcript_shows_final_texts_and_fetch_times() {
        let mut w = World::new(
            vec![BotSpec {
                node: "primary".into(),
                id: 1,
                token: "1:x".into(),
                username: "lab_primary_bot".into(),
                first_name: "Lab".into(),
            }],
            UserSpec {
                id: 42,
                first_name: "Lab".into(),
                username: "lab_user".into(),
            },
        );
        w.user_writes(0, "hello", 1_000).unwrap();
        w.begin_poll(0, None, 1_400).unwrap();
        let _ = w.poll(0, 100, 1_400);
        let m = w.bot_sends(0, 42, "thinking", Some(1), 2_000).unwrap();
        w.bot_edits(
            0,
            42,
            m["message_id"].as_u64().unwrap(),
            "hi!\nsecond line",
            2_500,
        )
        .unwrap();
        let events = w.take_unsaved();
        let bots = w.status(3_000);
        let lines = transcript(&events, &bots);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].delivered_at_ms, Some(1_400));
        assert_eq!(lines[1].text, "hi!\nsecond line");
        assert_eq!(lines[1].edits, 1);
        let text = transcript_text(&lines);
        assert!(
            text.contains("user -> @lab_primary_bot #1 (fetched +0.4s): hello"),
            "{text}"
        );
        assert!(
            text.contains("@lab_primary_bot -> user #2 (reply to #1, edited 1x): hi!"),
            "{text}"
        );
        assert!(
            text.contains("\n                               second line\n"),
            "{text}"
        );
    }
}
