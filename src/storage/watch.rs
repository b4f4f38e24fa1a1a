//! The in-memory change feed behind watches: a bounded history for resuming and a broadcast
//! channel for live events.
//!
//! Writers publish under the same lock that orders their revisions, and a new watcher takes its
//! backlog and subscribes under that lock too, so a watcher sees every revision after the one it
//! asked for exactly once, in order, or is told the history is gone (410) and re-lists.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use super::{StoreError, WatchEvent};

/// Events kept for watchers that resume from an older revision.
const HISTORY: usize = 10_000;
/// Events a live watcher may fall behind before it is dropped.
const CHANNEL: usize = 4_096;

/// The change feed of one store.
#[derive(Debug)]
pub(crate) struct Feed {
    inner: Mutex<FeedState>,
    tx: broadcast::Sender<Arc<WatchEvent>>,
}

#[derive(Debug)]
struct FeedState {
    history: VecDeque<Arc<WatchEvent>>,
    /// Every revision above this one is in `history` (or has not happened yet).
    complete_after: u64,
    current: u64,
}

impl Feed {
    /// A feed for a store that is at `revision` and has no history yet.
    pub(crate) fn new(revision: u64) -> Self {
        let (tx, _) = broadcast::channel(CHANNEL);
        Feed {
            inner: Mutex::new(FeedState {
                history: VecDeque::new(),
                complete_after: revision,
                current: revision,
            }),
            tx,
        }
    }

    /// Runs `commit` (which writes to the backend and returns the events it made, all of one new
    /// revision) and publishes its events, in revision order with every other writer.
    pub(crate) fn publish_with<T>(
        &self,
        commit: impl FnOnce() -> Result<(T, Vec<WatchEvent>, u64), StoreError>,
    ) -> Result<T, StoreError> {
        let mut state = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (out, events, revision) = commit()?;
        state.current = state.current.max(revision);
        for event in events {
            let event = Arc::new(event);
            if state.history.len() == HISTORY
                && let Some(old) = state.history.pop_front()
            {
                state.complete_after = old.revision;
            }
            state.history.push_back(event.clone());
            // No receivers is fine.
            let _ = self.tx.send(event);
        }
        Ok(out)
    }

    /// Opens a watch on keys under `prefix` for revisions above `after`.
    pub(crate) fn subscribe(&self, prefix: &str, after: u64) -> Result<WatchStream, StoreError> {
        let state = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if after > state.current {
            return Err(StoreError::Future {
                requested: after,
                current: state.current,
            });
        }
        if after < state.complete_after {
            return Err(StoreError::Gone {
                requested: after,
                oldest: state.complete_after + 1,
            });
        }
        let backlog = state
            .history
            .iter()
            .filter(|e| e.revision > after && e.key.starts_with(prefix))
            .cloned()
            .collect();
        Ok(WatchStream {
            inner: Inner::Feed {
                backlog,
                rx: self.tx.subscribe(),
                prefix: prefix.to_owned(),
            },
        })
    }
}

/// A stream of changes under one prefix.
#[derive(Debug)]
pub struct WatchStream {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    /// From the in-process feed of the embedded store.
    Feed {
        backlog: VecDeque<Arc<WatchEvent>>,
        rx: broadcast::Receiver<Arc<WatchEvent>>,
        prefix: String,
    },
    /// From a task that reads a remote watch (etcd) and forwards its events; the task ends when
    /// this stream is dropped.
    Channel(tokio::sync::mpsc::Receiver<Result<Arc<WatchEvent>, StoreError>>),
}

impl WatchStream {
    /// A stream fed by a task through `rx`; the task sends an error as its last item to end the
    /// stream with it, or closes the channel when the store closed.
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    pub(crate) fn from_channel(
        rx: tokio::sync::mpsc::Receiver<Result<Arc<WatchEvent>, StoreError>>,
    ) -> Self {
        WatchStream {
            inner: Inner::Channel(rx),
        }
    }

    /// The next change, `None` when the store closed, or [`StoreError::Lagged`] when this
    /// watcher fell behind (the client must re-list).
    pub async fn next(&mut self) -> Option<Result<Arc<WatchEvent>, StoreError>> {
        let (backlog, rx, prefix) = match &mut self.inner {
            Inner::Channel(rx) => return rx.recv().await,
            Inner::Feed {
                backlog,
                rx,
                prefix,
            } => (backlog, rx, prefix),
        };
        if let Some(e) = backlog.pop_front() {
            return Some(Ok(e));
        }
        loop {
            match rx.recv().await {
                // The channel was subscribed under the feed's lock together with taking the
                // backlog, so it carries only events the backlog does not.
                Ok(e) if e.key.starts_with(prefix.as_str()) => return Some(Ok(e)),
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    return Some(Err(StoreError::Lagged));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}
