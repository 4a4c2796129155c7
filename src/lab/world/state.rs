//! The chat world's state, pure: bots, the lab user's private chats with
//! them, Telegram's update queue and poller rule, and the record of every
//! message. The HTTP stand-ins and the control socket only translate
//! requests into calls here; a journal of [`Event`]s makes it survive a
//! restart (update ids must keep growing: OpenClaw remembers its offset).

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

/// A bot the Bot API stand-in serves, one per token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BotSpec {
    /// The lab node whose channel uses this bot (`primary`, `standby`).
    pub node: String,
    pub id: u64,
    pub token: String,
    pub username: String,
    pub first_name: String,
}

/// The lab's one human: allowlisted on every bot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSpec {
    pub id: u64,
    pub first_name: String,
    pub username: String,
}

/// What happened, in order; `seq` is the world's own counter, `at_ms` Unix
/// milliseconds of this machine's clock (the same clock `ocfo drill` reads).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    pub at_ms: u64,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// The user wrote to a bot: a new update waits in that bot's queue.
    UserMessage {
        bot: String,
        chat_id: i64,
        message_id: u64,
        update_id: u64,
        text: String,
    },
    /// A poller received this update for the first time.
    Delivered {
        bot: String,
        update_id: u64,
        #[serde(default)]
        message_id: u64,
    },
    /// A poller confirmed every update below this id (Telegram's `offset`):
    /// they are gone from the queue for good.
    Confirmed { bot: String, below: u64 },
    /// The bot sent a message into a chat.
    BotMessage {
        bot: String,
        chat_id: i64,
        message_id: u64,
        /// The message it quotes (Telegram's reply), as the bot sent it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<u64>,
        /// The user's messages this answers, as the world judges it: the
        /// quoted one, and those the lab model's answer quotes last (a batch
        /// OpenClaw merged); none for the bot speaking on its own (an
        /// announcement).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        answers: Vec<u64>,
        text: String,
    },
    /// The bot edited one of its messages (streamed replies do this).
    Edited {
        bot: String,
        chat_id: i64,
        message_id: u64,
        text: String,
    },
    /// A second poller took over a pending `getUpdates`: the earlier one got
    /// Telegram's 409 Conflict.
    Conflict { bot: String },
    /// The bot tried to write to someone who never started it (403).
    Refused {
        bot: String,
        chat_id: i64,
        reason: String,
    },
    /// The user opened the bot and pressed Start (once per bot and user).
    Started { bot: String },
    /// The model stand-in answered a completion request.
    ModelReply {
        user_messages: usize,
        #[serde(default)]
        stream: bool,
    },
}

impl EventKind {
    pub fn bot(&self) -> Option<&str> {
        match self {
            EventKind::UserMessage { bot, .. }
            | EventKind::Delivered { bot, .. }
            | EventKind::Confirmed { bot, .. }
            | EventKind::BotMessage { bot, .. }
            | EventKind::Edited { bot, .. }
            | EventKind::Conflict { bot }
            | EventKind::Refused { bot, .. }
            | EventKind::Started { bot } => Some(bot),
            EventKind::ModelReply { .. } => None,
        }
    }
}

/// A Telegram error: the HTTP status doubles as `error_code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: u16,
    pub description: String,
}

impl ApiError {
    pub fn new(code: u16, description: impl Into<String>) -> Self {
        ApiError {
            code,
            description: description.into(),
        }
    }
}

/// Telegram's longest message text.
pub const MAX_TEXT: usize = 4096;
/// Events kept in memory for `events`/`transcript`; the journal keeps all.
const KEEP_EVENTS: usize = 200_000;

#[derive(Debug)]
struct BotState {
    spec: BotSpec,
    next_update_id: u64,
    /// Updates not yet confirmed by an offset: (update id, message id, text, at ms).
    pending: VecDeque<Pending>,
    delivered_up_to: u64,
    next_message_id: u64,
    /// Whether the user started this bot (Telegram: a bot cannot write first).
    started: bool,
    /// Bumped by every `getUpdates`: a waiting poll that sees it change was
    /// taken over by another poller (409).
    poll_generation: u64,
    /// A `getUpdates` is waiting right now.
    polling: u32,
    last_poll_ms: Option<u64>,
    webhook: Option<String>,
    commands: serde_json::Value,
    /// Message texts by id, for edits.
    texts: BTreeMap<u64, String>,
    /// What the user wrote, in order: (message id, text).
    user_texts: Vec<(u64, String)>,
}

#[derive(Debug, Clone)]
struct Pending {
    update_id: u64,
    message_id: u64,
    text: String,
    at_ms: u64,
}

pub struct World {
    bots: Vec<BotState>,
    pub user: UserSpec,
    events: VecDeque<Event>,
    next_seq: u64,
    /// New events not yet written to the journal.
    unsaved: Vec<Event>,
}

/// What a bot poll returns: the updates, or the ones it must wait for.
pub enum Poll {
    Updates(Vec<serde_json::Value>),
    Empty,
}

impl World {
    pub fn new(bots: Vec<BotSpec>, user: UserSpec) -> World {
        World {
            bots: bots
                .into_iter()
                .map(|spec| BotState {
                    spec,
                    next_update_id: 1,
                    pending: VecDeque::new(),
                    delivered_up_to: 0,
                    next_message_id: 1,
                    started: false,
                    poll_generation: 0,
                    polling: 0,
                    last_poll_ms: None,
                    webhook: None,
                    commands: serde_json::json!([]),
                    texts: BTreeMap::new(),
                    user_texts: Vec::new(),
                })
                .collect(),
            user,
            events: VecDeque::new(),
            next_seq: 1,
            unsaved: Vec::new(),
        }
    }

    /// Rebuilds counters, queues and the record from a journal.
    pub fn replay(&mut self, events: impl IntoIterator<Item = Event>) {
        for e in events {
            self.next_seq = self.next_seq.max(e.seq + 1);
            if let Some(b) = e.kind.bot().and_then(|n| self.index_of(n)) {
                let bot = &mut self.bots[b];
                match &e.kind {
                    EventKind::UserMessage {
                        message_id,
                        update_id,
                        text,
                        ..
                    } => {
                        bot.next_update_id = bot.next_update_id.max(update_id + 1);
                        bot.next_message_id = bot.next_message_id.max(message_id + 1);
                        bot.started = true;
                        bot.user_texts.push((*message_id, text.clone()));
                        bot.pending.push_back(Pending {
                            update_id: *update_id,
                            message_id: *message_id,
                            text: text.clone(),
                            at_ms: e.at_ms,
                        });
                    }
                    EventKind::Delivered { update_id, .. } => {
                        bot.delivered_up_to = bot.delivered_up_to.max(*update_id)
                    }
                    EventKind::Confirmed { below, .. } => {
                        bot.pending.retain(|p| p.update_id >= *below)
                    }
                    EventKind::BotMessage {
                        message_id, text, ..
                    }
                    | EventKind::Edited {
                        message_id, text, ..
                    } => {
                        bot.next_message_id = bot.next_message_id.max(message_id + 1);
                        bot.texts.insert(*message_id, text.clone());
                    }
                    EventKind::Started { .. } => bot.started = true,
                    _ => {}
                }
            }
            self.events.push_back(e);
        }
        while self.events.len() > KEEP_EVENTS {
            self.events.pop_front();
        }
    }

    fn index_of(&self, node: &str) -> Option<usize> {
        self.bots.iter().position(|b| b.spec.node == node)
    }

    pub fn bot_by_token(&self, token: &str) -> Option<usize> {
        self.bots.iter().position(|b| b.spec.token == token)
    }

    pub fn bot_by_node(&self, node: &str) -> Result<usize, String> {
        self.index_of(node).ok_or_else(|| {
            format!(
                "this lab has no Telegram bot for `{node}` (bots: {})",
                self.bots
                    .iter()
                    .map(|b| b.spec.node.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
    }

    pub fn spec(&self, bot: usize) -> &BotSpec {
        &self.bots[bot].spec
    }

    fn record(&mut self, at_ms: u64, kind: EventKind) -> u64 {
        let e = Event {
            seq: self.next_seq,
            at_ms,
            kind,
        };
        self.next_seq += 1;
        self.unsaved.push(e.clone());
        self.events.push_back(e);
        if self.events.len() > KEEP_EVENTS {
            self.events.pop_front();
        }
        self.next_seq - 1
    }

    /// Events recorded since the last call, for the journal.
    pub fn take_unsaved(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.unsaved)
    }

    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Up to `limit` events after `seq`.
    pub fn events_after(&self, seq: u64, limit: usize) -> Vec<Event> {
        self.events
            .iter()
            .filter(|e| e.seq > seq)
            .take(limit)
            .cloned()
            .collect()
    }

    fn bot_user(&self, bot: usize) -> serde_json::Value {
        let s = &self.bots[bot].spec;
        serde_json::json!({
            "id": s.id, "is_bot": true, "first_name": s.first_name, "username": s.username,
        })
    }

    fn private_chat(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.user.id, "first_name": self.user.first_name,
            "username": self.user.username, "type": "private",
        })
    }

    pub fn get_me(&self, bot: usize) -> serde_json::Value {
        let mut me = self.bot_user(bot);
        me["can_join_groups"] = false.into();
        me["can_read_all_group_messages"] = false.into();
        me["supports_inline_queries"] = false.into();
        me["can_connect_to_business"] = false.into();
        me["has_main_web_app"] = false.into();
        me
    }

    /// The user opens the bot and presses Start: from now on the bot may
    /// write to them (a bot cannot begin a conversation on Telegram).
    pub fn start(&mut self, bot: usize, now_ms: u64) {
        if !self.bots[bot].started {
            self.bots[bot].started = true;
            let node = self.bots[bot].spec.node.clone();
            self.record(now_ms, EventKind::Started { bot: node });
        }
    }

    /// The user writes `text` to a bot: a new message in their private chat
    /// and an update in the bot's queue. Returns (seq, message id, update id).
    pub fn user_writes(
        &mut self,
        bot: usize,
        text: &str,
        now_ms: u64,
    ) -> Result<(u64, u64, u64), String> {
        if text.is_empty() || text.chars().count() > MAX_TEXT {
            return Err(format!(
                "a message is 1 to {MAX_TEXT} characters (Telegram's limit)"
            ));
        }
        let user_id = self.user.id as i64;
        let b = &mut self.bots[bot];
        b.started = true;
        let (update_id, message_id) = (b.next_update_id, b.next_message_id);
        b.next_update_id += 1;
        b.next_message_id += 1;
        b.pending.push_back(Pending {
            update_id,
            message_id,
            text: text.to_string(),
            at_ms: now_ms,
        });
        b.texts.insert(message_id, text.to_string());
        b.user_texts.push((message_id, text.to_string()));
        let node = b.spec.node.clone();
        let seq = self.record(
            now_ms,
            EventKind::UserMessage {
                bot: node,
                chat_id: user_id,
                message_id,
                update_id,
                text: text.to_string(),
            },
        );
        Ok((seq, message_id, update_id))
    }

    /// A `getUpdates` begins: it takes over from any waiting one (which
    /// then answers 409) and confirms what lies below `offset`. Returns its
    /// generation, to check while it waits.
    pub fn begin_poll(
        &mut self,
        bot: usize,
        offset: Option<i64>,
        now_ms: u64,
    ) -> Result<u64, ApiError> {
        if self.bots[bot].webhook.is_some() {
            return Err(ApiError::new(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
            ));
        }
        let b = &mut self.bots[bot];
        b.poll_generation += 1;
        b.last_poll_ms = Some(now_ms);
        let generation = b.poll_generation;
        if let Some(offset) = offset.filter(|o| *o > 0) {
            let below = offset as u64;
            let before = b.pending.len();
            b.pending.retain(|p| p.update_id >= below);
            if b.pending.len() != before {
                let node = b.spec.node.clone();
                self.record(now_ms, EventKind::Confirmed { bot: node, below });
            }
        }
        Ok(generation)
    }

    /// Whether a poll begun at `generation` was taken over by a newer one;
    /// records the 409 the older one answers.
    pub fn taken_over(&mut self, bot: usize, generation: u64, now_ms: u64) -> bool {
        if self.bots[bot].poll_generation == generation {
            return false;
        }
        let node = self.bots[bot].spec.node.clone();
        self.record(now_ms, EventKind::Conflict { bot: node });
        true
    }

    pub fn set_polling(&mut self, bot: usize, waiting: bool) {
        let b = &mut self.bots[bot];
        if waiting {
            b.polling += 1;
        } else {
            b.polling = b.polling.saturating_sub(1);
        }
    }

    /// The waiting updates (at most `limit`), recording first deliveries.
    pub fn poll(&mut self, bot: usize, limit: usize, now_ms: u64) -> Poll {
        let items: Vec<Pending> = self.bots[bot]
            .pending
            .iter()
            .take(limit.clamp(1, 100))
            .cloned()
            .collect();
        if items.is_empty() {
            return Poll::Empty;
        }
        let (user, chat) = (self.user.clone(), self.private_chat());
        let node = self.bots[bot].spec.node.clone();
        let mut out = Vec::new();
        for p in items {
            if p.update_id > self.bots[bot].delivered_up_to {
                self.bots[bot].delivered_up_to = p.update_id;
                self.record(
                    now_ms,
                    EventKind::Delivered {
                        bot: node.clone(),
                        update_id: p.update_id,
                        message_id: p.message_id,
                    },
                );
            }
            let mut message = serde_json::json!({
                "message_id": p.message_id,
                "from": {"id": user.id, "is_bot": false, "first_name": user.first_name,
                         "username": user.username, "language_code": "en"},
                "chat": chat,
                "date": p.at_ms / 1000,
                "text": p.text,
            });
            if p.text.starts_with('/') {
                let len = p
                    .text
                    .split_whitespace()
                    .next()
                    .map_or(0, |w| w.encode_utf16().count());
                message["entities"] =
                    serde_json::json!([{"type": "bot_command", "offset": 0, "length": len}]);
            }
            out.push(serde_json::json!({"update_id": p.update_id, "message": message}));
        }
        Poll::Updates(out)
    }

    fn check_chat(&mut self, bot: usize, chat_id: i64, now_ms: u64) -> Result<(), ApiError> {
        if chat_id != self.user.id as i64 {
            return Err(ApiError::new(400, "Bad Request: chat not found"));
        }
        if !self.bots[bot].started {
            let node = self.bots[bot].spec.node.clone();
            let reason = "Forbidden: bot can't initiate conversation with a user".to_string();
            self.record(
                now_ms,
                EventKind::Refused {
                    bot: node,
                    chat_id,
                    reason: reason.clone(),
                },
            );
            return Err(ApiError::new(403, reason));
        }
        Ok(())
    }

    fn check_text(text: &str) -> Result<(), ApiError> {
        if text.trim().is_empty() {
            return Err(ApiError::new(400, "Bad Request: message text is empty"));
        }
        if text.chars().count() > MAX_TEXT {
            return Err(ApiError::new(400, "Bad Request: message is too long"));
        }
        Ok(())
    }

    /// `sendMessage`: the sent Message, or Telegram's refusal.
    pub fn bot_sends(
        &mut self,
        bot: usize,
        chat_id: i64,
        text: &str,
        reply_to: Option<u64>,
        now_ms: u64,
    ) -> Result<serde_json::Value, ApiError> {
        self.check_chat(bot, chat_id, now_ms)?;
        Self::check_text(text)?;
        let mut answers = self.answered_by_quote(bot, text);
        if let Some(r) = reply_to {
            // The quote names a text; the reply names the message. Where the
            // user wrote that text twice (a retry after a slow answer), the
            // reply says which of them this answers.
            let user = &self.bots[bot].user_texts;
            let text_of = |id: u64| {
                user.iter()
                    .find(|(i, _)| *i == id)
                    .map(|(_, t)| t.trim().to_string())
            };
            if let Some(replied) = text_of(r) {
                answers.retain(|a| *a == r || text_of(*a).as_deref() != Some(replied.as_str()));
            }
            if !answers.contains(&r) {
                answers.insert(0, r);
            }
        }
        let b = &mut self.bots[bot];
        let message_id = b.next_message_id;
        b.next_message_id += 1;
        b.texts.insert(message_id, text.to_string());
        let node = b.spec.node.clone();
        self.record(
            now_ms,
            EventKind::BotMessage {
                bot: node,
                chat_id,
                message_id,
                reply_to,
                answers,
                text: text.to_string(),
            },
        );
        let mut m = serde_json::json!({
            "message_id": message_id, "from": self.bot_user(bot), "chat": self.private_chat(),
            "date": now_ms / 1000, "text": text,
        });
        if let Some(r) = reply_to {
            m["reply_to_message"] = serde_json::json!({
                "message_id": r, "chat": self.private_chat(), "date": now_ms / 1000,
                "text": self.bots[bot].texts.get(&r).cloned().unwrap_or_default(),
            });
        }
        Ok(m)
    }

    /// The user's messages a lab-model answer answers (OpenClaw quotes the
    /// question only on some turns): the latest ones matching what the
    /// answer quotes last, a message or a merged batch of them.
    fn answered_by_quote(&self, bot: usize, text: &str) -> Vec<u64> {
        let Some(quoted) = super::model::last_quoted(text) else {
            return Vec::new();
        };
        let user = &self.bots[bot].user_texts;
        let find = |q: &String| {
            user.iter()
                .rev()
                .find(|(_, t)| t.trim() == q.trim())
                .map(|(id, _)| *id)
        };
        // The whole item first (one message with several lines), else each
        // line (a batch).
        if let Some(id) = quoted.first().and_then(find) {
            return vec![id];
        }
        let mut ids: Vec<u64> = quoted.iter().skip(1).filter_map(find).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// `editMessageText` of one of the bot's own messages.
    pub fn bot_edits(
        &mut self,
        bot: usize,
        chat_id: i64,
        message_id: u64,
        text: &str,
        now_ms: u64,
    ) -> Result<serde_json::Value, ApiError> {
        self.check_chat(bot, chat_id, now_ms)?;
        Self::check_text(text)?;
        match self.bots[bot].texts.get(&message_id) {
            None => return Err(ApiError::new(400, "Bad Request: message to edit not found")),
            Some(old) if old == text => {
                return Err(ApiError::new(
                    400,
                    "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
                ))
            }
            Some(_) => {}
        }
        self.bots[bot].texts.insert(message_id, text.to_string());
        let node = self.bots[bot].spec.node.clone();
        self.record(
            now_ms,
            EventKind::Edited {
                bot: node,
                chat_id,
                message_id,
                text: text.to_string(),
            },
        );
        Ok(serde_json::json!({
            "message_id": message_id, "from": self.bot_user(bot), "chat": self.private_chat(),
            "date": now_ms / 1000, "edit_date": now_ms / 1000, "text": text,
        }))
    }

    /// `deleteWebhook` with `drop_pending_updates`: every waiting update is gone.
    pub fn drop_pending(&mut self, bot: usize, now_ms: u64) {
        let b = &mut self.bots[bot];
        let Some(last) = b.pending.back().map(|p| p.update_id) else {
            return;
        };
        b.pending.clear();
        let node = b.spec.node.clone();
        self.record(
            now_ms,
            EventKind::Confirmed {
                bot: node,
                below: last + 1,
            },
        );
    }

    pub fn set_webhook(&mut self, bot: usize, url: Option<String>) {
        self.bots[bot].webhook = url.filter(|u| !u.is_empty());
    }

    pub fn webhook_info(&self, bot: usize) -> serde_json::Value {
        let b = &self.bots[bot];
        serde_json::json!({
            "url": b.webhook.clone().unwrap_or_default(),
            "has_custom_certificate": false,
            "pending_update_count": b.pending.len(),
        })
    }

    pub fn set_commands(&mut self, bot: usize, commands: serde_json::Value) {
        self.bots[bot].commands = commands;
    }

    pub fn commands(&self, bot: usize) -> serde_json::Value {
        self.bots[bot].commands.clone()
    }

    pub fn record_model_reply(&mut self, user_messages: usize, stream: bool, now_ms: u64) {
        self.record(
            now_ms,
            EventKind::ModelReply {
                user_messages,
                stream,
            },
        );
    }

    /// Per bot: polling now, last poll, waiting updates.
    pub fn status(&self, now_ms: u64) -> Vec<BotStatus> {
        self.bots
            .iter()
            .map(|b| BotStatus {
                node: b.spec.node.clone(),
                username: b.spec.username.clone(),
                polling: b.polling > 0,
                last_poll_ms_ago: b.last_poll_ms.map(|t| now_ms.saturating_sub(t)),
                pending_updates: b.pending.len(),
                oldest_pending_ms: b.pending.front().map(|p| now_ms.saturating_sub(p.at_ms)),
                started: b.started,
                webhook: b.webhook.is_some(),
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BotStatus {
    pub node: String,
    pub username: String,
    pub polling: bool,
    pub last_poll_ms_ago: Option<u64>,
    pub pending_updates: usize,
    pub oldest_pending_ms: Option<u64>,
    pub started: bool,
    pub webhook: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world() -> World {
        let bot = |node: &str, id: u64| BotSpec {
            node: node.into(),
            id,
            token: format!("{id}:token-{node}"),
            username: format!("lab_{node}_bot"),
            first_name: format!("Lab {node}"),
        };
        World::new(
            vec![bot("primary", 7100000001), bot("standby", 7100000002)],
            UserSpec {
                id: 123456789,
                first_name: "Lab".into(),
                username: "lab_user".into(),
            },
        )
    }

    fn updates(p: Poll) -> Vec<serde_json::Value> {
        match p {
            Poll::Updates(u) => u,
            Poll::Empty => Vec::new(),
        }
    }

    #[test]
    fn updates_wait_until_an_offset_confirms_them() {
        let mut w = world();
        let b = w.bot_by_node("standby").unwrap();
        w.user_writes(b, "hello", 1000).unwrap();
        w.user_writes(b, "again", 1001).unwrap();
        let g = w.begin_poll(b, None, 2000).unwrap();
        let u = updates(w.poll(b, 100, 2000));
        assert_eq!(u.len(), 2);
        assert_eq!(u[0]["update_id"], 1);
        assert_eq!(u[0]["message"]["text"], "hello");
        assert_eq!(u[0]["message"]["chat"]["type"], "private");
        assert!(!w.taken_over(b, g, 2000));
        // Not confirmed: the same updates again (a crash before the offset).
        w.begin_poll(b, Some(1), 3000).unwrap();
        assert_eq!(updates(w.poll(b, 100, 3000)).len(), 2);
        w.begin_poll(b, Some(3), 4000).unwrap();
        assert!(matches!(w.poll(b, 100, 4000), Poll::Empty));
        // Each update is delivered once in the record, confirmed once.
        let kinds: Vec<&str> = w
            .events_after(0, 100)
            .iter()
            .map(|e| match e.kind {
                EventKind::UserMessage { .. } => "user",
                EventKind::Delivered { .. } => "delivered",
                EventKind::Confirmed { .. } => "confirmed",
                _ => "other",
            })
            .collect();
        assert_eq!(
            kinds,
            ["user", "user", "delivered", "delivered", "confirmed"]
        );
    }

    #[test]
    fn a_second_poller_takes_over_and_the_first_gets_409() {
        let mut w = world();
        let b = w.bot_by_node("primary").unwrap();
        let first = w.begin_poll(b, None, 0).unwrap();
        let second = w.begin_poll(b, None, 1).unwrap();
        assert!(w.taken_over(b, first, 2));
        assert!(!w.taken_over(b, second, 2));
        assert!(matches!(
            w.events_after(0, 10)[0].kind,
            EventKind::Conflict { .. }
        ));
        w.set_webhook(b, Some("https://x.invalid/hook".into()));
        assert_eq!(w.begin_poll(b, None, 3).unwrap_err().code, 409);
    }

    #[test]
    fn a_bot_may_not_write_first_nor_too_much() {
        let mut w = world();
        let b = w.bot_by_node("standby").unwrap();
        let user = 123456789;
        assert_eq!(w.bot_sends(b, user, "hi", None, 0).unwrap_err().code, 403);
        assert_eq!(w.bot_sends(b, 42, "hi", None, 0).unwrap_err().code, 400);
        w.start(b, 1);
        let m = w.bot_sends(b, user, "hi", None, 2).unwrap();
        assert_eq!(m["chat"]["id"], user);
        let long = "x".repeat(MAX_TEXT + 1);
        assert!(w
            .bot_sends(b, user, &long, None, 3)
            .unwrap_err()
            .description
            .contains("too long"));
        let id = m["message_id"].as_u64().unwrap();
        w.bot_edits(b, user, id, "hi there", 4).unwrap();
        assert!(w
            .bot_edits(b, user, id, "hi there", 5)
            .unwrap_err()
            .description
            .contains("not modified"));
        assert_eq!(w.bot_edits(b, user, 999, "x", 5).unwrap_err().code, 400);
    }

    #[test]
    fn a_replayed_journal_keeps_ids_growing_and_queues_waiting() {
        let mut w = world();
        let b = w.bot_by_node("primary").unwrap();
        w.user_writes(b, "one", 10).unwrap();
        w.user_writes(b, "two", 11).unwrap();
        w.begin_poll(b, None, 12).unwrap();
        let _ = w.poll(b, 100, 12);
        w.begin_poll(b, Some(2), 13).unwrap();
        let journal = w.take_unsaved();
        let mut again = world();
        again.replay(journal);
        let b = again.bot_by_node("primary").unwrap();
        let (_, message_id, update_id) = again.user_writes(b, "three", 20).unwrap();
        assert_eq!((message_id, update_id), (3, 3));
        again.begin_poll(b, None, 21).unwrap();
        let texts: Vec<String> = updates(again.poll(b, 100, 21))
            .iter()
            .map(|u| u["message"]["text"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(texts, ["two", "three"]);
        assert!(again.last_seq() > 4);
    }

    /// What an answer answers when the bot does not quote the question:
    /// the message (or merged batch) the lab model's answer quotes last; an
    /// announcement answers nothing.
    #[test]
    fn answers_are_told_from_announcements() {
        let mut w = world();
        let b = w.bot_by_node("standby").unwrap();
        let user = 123456789;
        for t in ["hello", "drill ping 1", "drill ping 2", "what now?"] {
            w.user_writes(b, t, 0).unwrap();
        }
        let answers = |w: &mut World| match &w.take_unsaved().last().unwrap().kind {
            EventKind::BotMessage { answers, .. } => answers.clone(),
            _ => panic!(),
        };
        w.bot_sends(b, user, "⚠️ the standby took over", None, 1)
            .unwrap();
        assert!(answers(&mut w).is_empty());
        let batch = "lab model: you wrote 3 messages in this conversation:\n\n1. hello\n2. drill ping 1\ndrill ping 2";
        w.bot_sends(b, user, batch, None, 2).unwrap();
        assert_eq!(answers(&mut w), [2, 3]);
        let one = "lab model: you wrote 4 messages in this conversation:\n\n1. hello\n2. drill ping 1\ndrill ping 2\n3. what now?";
        w.bot_sends(b, user, one, None, 3).unwrap();
        assert_eq!(answers(&mut w), [4]);
        // Quoted by the bot: that one too.
        w.bot_sends(b, user, one, Some(1), 4).unwrap();
        assert_eq!(answers(&mut w), [1, 4]);
    }

    /// A question written twice (a retry after a slow answer): the answer
    /// that replies to the first answers the first, not also the second,
    /// although its quote matches the second's text too.
    #[test]
    fn a_retried_question_is_answered_once_each() {
        let mut w = world();
        let b = w.bot_by_node("primary").unwrap();
        let user = 123456789;
        w.user_writes(b, "are you there?", 0).unwrap();
        w.user_writes(b, "are you there?", 1).unwrap();
        let answers = |w: &mut World| match &w.take_unsaved().last().unwrap().kind {
            EventKind::BotMessage { answers, .. } => answers.clone(),
            _ => panic!(),
        };
        let first = "lab model: you wrote 1 message in this conversation:\n\n1. are you there?";
        w.bot_sends(b, user, first, Some(1), 2).unwrap();
        assert_eq!(answers(&mut w), [1]);
        let second = "lab model: you wrote 2 messages in this conversation:\n\n1. are you there?\n2. are you there?";
        w.bot_sends(b, user, second, Some(2), 3).unwrap();
        assert_eq!(answers(&mut w), [2]);
    }

    #[test]
    fn commands_are_marked_as_entities() {
        let mut w = world();
        let b = w.bot_by_node("primary").unwrap();
        w.user_writes(b, "/new please", 0).unwrap();
        w.begin_poll(b, None, 0).unwrap();
        let u = updates(w.poll(b, 1, 0));
        assert_eq!(u[0]["message"]["entities"][0]["length"], 4);
    }
}
