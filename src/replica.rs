//! Keeping one gateway's snapshots in step with the store, so that several replicas sharing one
//! etcd cluster behave as one system.
//!
//! A replica answers from in-memory snapshots: the RBAC authorizer and the cache of verified
//! service-account tokens. Writes through this replica refresh them before they are answered;
//! writes through another replica reach this one through watches on the store:
//! - RBAC objects (Roles, ClusterRoles and their bindings): the authorizer is rebuilt unless it
//!   already includes that revision. A ClusterRole change also runs the aggregation controller,
//!   which is level-triggered and guarded by revisions, so every replica may run it at once and
//!   at most one write lands per change.
//! - ServiceAccounts, Secrets, Pods and Namespaces: cached token verdicts are dropped, so a
//!   deleted service account stops authenticating at once everywhere.
//!
//! Namespace labels (Pod Security levels) are read from the store on each admission, so they
//! need no snapshot. When a watch ends (the store was unreachable, or compacted past it) the
//! loop starts over: it rebuilds everything from a fresh read and watches from there, so a
//! change made while this replica was cut off is not missed.

use std::sync::Arc;
use std::time::Duration;

use portcullis_api::registry;
use tokio::sync::mpsc;

use crate::rbac::Rbac;
use crate::server::tokens::Tokens;
use crate::storage::Store;

/// What a change under a watched prefix means for this replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Topic {
    /// Roles and bindings: rebuild the authorizer.
    Rbac,
    /// ClusterRoles: aggregate, then rebuild.
    ClusterRoles,
    /// What service-account tokens are bound to: drop cached verdicts.
    Tokens,
}

/// The prefixes watched, with what a change under each means.
fn topics() -> Vec<(String, Topic)> {
    let mut out = Vec::new();
    for (group, plural, topic) in [
        (
            "rbac.authorization.k8s.io",
            "clusterroles",
            Topic::ClusterRoles,
        ),
        (
            "rbac.authorization.k8s.io",
            "clusterrolebindings",
            Topic::Rbac,
        ),
        ("rbac.authorization.k8s.io", "roles", Topic::Rbac),
        ("rbac.authorization.k8s.io", "rolebindings", Topic::Rbac),
        ("", "serviceaccounts", Topic::Tokens),
        ("", "secrets", Topic::Tokens),
        ("", "pods", Topic::Tokens),
        ("", "namespaces", Topic::Tokens),
    ] {
        if let Some(r) = registry::lookup(group, "v1", plural) {
            out.push((r.key_prefix(None), topic));
        }
    }
    out
}

/// One change seen: its topic and revision, or the end of a watch.
type Seen = Option<(Topic, u64)>;

/// Starts the loop that follows the store's changes until `shutdown` turns true.
pub fn spawn(
    store: Arc<dyn Store>,
    rbac: Arc<Rbac>,
    tokens: Arc<Tokens>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            tokio::select! {
                () = follow(&store, &rbac, &tokens) => {},
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {},
                _ = shutdown.changed() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    });
}

/// Refreshes everything, then applies changes from the watches until one of them ends.
async fn follow(store: &Arc<dyn Store>, rbac: &Arc<Rbac>, tokens: &Arc<Tokens>) {
    let from = match store.revision().await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(error = %e, "replica sync: store unreachable; retrying");
            return;
        }
    };
    // Open every watch before rebuilding, so nothing written after `from` is missed.
    let (tx, mut rx) = mpsc::channel::<Seen>(1024);
    let mut tasks = Vec::new();
    for (prefix, topic) in topics() {
        let mut stream = match store.watch(&prefix, from).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, %prefix, "replica sync: cannot watch; retrying");
                abort(tasks);
                return;
            }
        };
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                match stream.next().await {
                    Some(Ok(event)) => {
                        if tx.send(Some((topic, event.revision))).await.is_err() {
                            return;
                        }
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, %prefix, "replica sync: watch ended; starting over");
                        let _ = tx.send(None).await;
                        return;
                    }
                    None => {
                        let _ = tx.send(None).await;
                        return;
                    }
                }
            }
        }));
    }
    drop(tx);
    // Anything that changed while this replica was not watching.
    tokens.invalidate();
    if !rbac.from_manifests()
        && rbac.built_at() < from
        && let Err(e) = rbac.refresh(store.as_ref()).await
    {
        tracing::warn!(error = %format!("{e:#}"), "replica sync: RBAC rebuild failed; retrying");
        abort(tasks);
        return;
    }
    loop {
        let Some(first) = rx.recv().await else { break };
        // Take every change already queued, so a burst costs one rebuild.
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        if batch.iter().any(Option::is_none) {
            break;
        }
        let changes: Vec<(Topic, u64)> = batch.into_iter().flatten().collect();
        if changes.iter().any(|(t, _)| *t == Topic::Tokens) {
            tokens.invalidate();
        }
        if changes.iter().any(|(t, _)| *t == Topic::ClusterRoles)
            && !rbac.from_manifests()
            && let Err(e) = crate::rbac::aggregate(store.as_ref()).await
        {
            tracing::warn!(error = %format!("{e:#}"), "replica sync: ClusterRole aggregation failed");
        }
        let newest = changes
            .iter()
            .filter(|(t, _)| *t != Topic::Tokens)
            .map(|(_, r)| *r)
            .max();
        if let Some(revision) = newest
            && let Err(e) = rbac.refresh_for(store.as_ref(), revision).await
        {
            tracing::warn!(error = %format!("{e:#}"), "replica sync: RBAC rebuild failed; starting over");
            break;
        }
    }
    abort(tasks);
}

fn abort(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for t in tasks {
        t.abort();
    }
}
