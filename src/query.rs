//! The query API's bridge to the coordinator: the HTTP handlers ask, the coordinator answers
//! between batches from its committed state (it owns the RocksDB store, so nothing else reads
//! it). An answer waits at most one batch (about `kafka.commit_interval`).
//!
//! The HTTP side, its listener and who may ask what, is [`crate::http`]'s `query_router`:
//!
//! - `GET /api/v1/picture?scope=alliance` (or `nation:EST`, `sector:energy`,
//!   `rsit:malicious_code`, `priority:Severe`): the running total and the open windows (cell)
//! - `GET /api/v1/campaigns`: campaigns that span two or more nations (cell)
//! - `GET /api/v1/requests[?nation=EST]`: requests whose incident is open, with coverage,
//!   redacted for the role that asks (the cell: every nation's; a nation: its own, in full)

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::time::Duration;

use rallypoint_core::query;
use rallypoint_core::store::{Store, StoreError};
use rallypoint_core::tlp::Role;

/// What the API can ask.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    Picture {
        scope: String,
    },
    Campaigns,
    /// `viewer`: whose redaction applies (TLP 2.0, [`rallypoint_core::tlp::visibility`]).
    Requests {
        nation: Option<String>,
        viewer: Role,
    },
}

/// A question and where its answer goes.
pub struct Asked {
    pub query: Query,
    pub reply: tokio::sync::oneshot::Sender<Result<serde_json::Value, String>>,
}

/// The HTTP side: cheap to clone.
#[derive(Clone)]
pub struct Client {
    tx: SyncSender<Asked>,
}

/// Why there is no answer.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("the coordinator is not running here, or is busy: try again")]
    Unavailable,
    #[error("the coordinator did not answer within {0:?}")]
    TimedOut(Duration),
    #[error("{0}")]
    Failed(String),
}

/// A bounded channel: a flood of queries waits at the HTTP side, never in the coordinator.
pub fn channel() -> (Client, Receiver<Asked>) {
    let (tx, rx) = sync_channel(32);
    (Client { tx }, rx)
}

impl Client {
    pub async fn ask(
        &self,
        query: Query,
        patience: Duration,
    ) -> Result<serde_json::Value, QueryError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        match self.tx.try_send(Asked { query, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                return Err(QueryError::Unavailable)
            }
        }
        match tokio::time::timeout(patience, answer).await {
            Ok(Ok(Ok(v))) => Ok(v),
            Ok(Ok(Err(e))) => Err(QueryError::Failed(e)),
            Ok(Err(_)) => Err(QueryError::Unavailable),
            Err(_) => Err(QueryError::TimedOut(patience)),
        }
    }
}

/// Answers every waiting question from `store`; called by the coordinator between batches.
pub fn answer_waiting<S: Store + ?Sized>(rx: &Receiver<Asked>, store: &S, top: usize) {
    while let Ok(asked) = rx.try_recv() {
        let answer = answer(store, &asked.query, top).map_err(|e| e.to_string());
        // The asker may have given up; that is its business.
        let _ = asked.reply.send(answer);
    }
}

fn answer<S: Store + ?Sized>(
    store: &S,
    q: &Query,
    top: usize,
) -> Result<serde_json::Value, StoreError> {
    let json = |v: serde_json::Result<serde_json::Value>| v.unwrap_or_default();
    Ok(match q {
        Query::Picture { scope } => json(serde_json::to_value(query::scope_picture(
            store, scope, top,
        )?)),
        Query::Campaigns => json(serde_json::to_value(query::active_campaigns(store)?)),
        Query::Requests { nation, viewer } => json(serde_json::to_value(query::open_requests(
            store,
            nation.as_deref(),
            *viewer,
        )?)),
    })
}
