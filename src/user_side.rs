//! The user's side of a failover: what a person chatting with the assistant
//! writes and sees. `ocfo drill` measures failover to the first answered
//! message through [`UserSide`]; the lab's chat world implements it (a real
//! deployment has no such view, so its drills stop at the machine side).

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One thing that happened in a chat, by the user's clock (Unix ms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatEvent {
    pub seq: u64,
    pub at_ms: u64,
    /// The node whose bot this chat is with.
    pub node: String,
    #[serde(flatten)]
    pub kind: ChatEventKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChatEventKind {
    /// The user wrote to the node's bot.
    Wrote { message_id: u64, text: String },
    /// The node's gateway fetched that message from the chat service.
    Delivered { message_id: u64 },
    /// The node's bot answered messages of the user's (several, when the
    /// gateway took them in as one).
    Answered {
        message_id: u64,
        answers: Vec<u64>,
        text: String,
    },
    /// The node's bot wrote on its own: an announcement.
    Said { message_id: u64, text: String },
}

/// A message the user sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    pub seq: u64,
    pub at_ms: u64,
    pub message_id: u64,
}

pub trait UserSide: Send + Sync {
    /// Writes `text` to the bot of `node`, as the user.
    fn send(&self, node: &str, text: &str) -> impl Future<Output = Result<Sent, String>> + Send;
    /// What happened after `seq`, waiting up to `wait` for something new;
    /// returns the events and the latest seq.
    fn events_after(
        &self,
        seq: u64,
        wait: Duration,
    ) -> impl Future<Output = Result<(Vec<ChatEvent>, u64), String>> + Send;
}

/// No user's side (a real deployment): drills measure the machine's side only.
pub struct Nobody;

impl UserSide for Nobody {
    async fn send(&self, _: &str, _: &str) -> Result<Sent, String> {
        Err("no user's side here".into())
    }

    async fn events_after(&self, seq: u64, _: Duration) -> Result<(Vec<ChatEvent>, u64), String> {
        Ok((Vec::new(), seq))
    }
}
