//! Reloading configuration files that change on disk.
//!
//! Files are polled once a second by size and modification time (robust against editors that
//! replace files and against missed inotify events on network filesystems). A new version is
//! parsed off the request path; if it does not load, the previous one stays in force and the
//! reason is logged, as DESIGN.md asks of every snapshot.

use std::path::PathBuf;
use std::time::Duration;

/// How often watched files are looked at.
const POLL: Duration = Duration::from_secs(1);

/// Calls `reload` whenever the file at `path` changes; `what` names it in the log lines.
/// `reload` builds and swaps in the new version, or returns why it could not.
pub fn watch(
    path: PathBuf,
    what: &'static str,
    reload: impl Fn() -> anyhow::Result<()> + Send + 'static,
) {
    tokio::spawn(async move {
        let stamp = |p: &PathBuf| {
            std::fs::metadata(p)
                .ok()
                .map(|m| (m.len(), m.modified().ok()))
        };
        let mut seen = stamp(&path);
        loop {
            tokio::time::sleep(POLL).await;
            let now = stamp(&path);
            if now == seen {
                continue;
            }
            seen = now;
            match reload() {
                Ok(()) => tracing::info!(path = %path.display(), "{what} reloaded"),
                Err(e) => tracing::error!(
                    path = %path.display(),
                    error = %format!("{e:#}"),
                    "{what} rejected; the previous one stays in force"
                ),
            }
        }
    });
}

/// Calls `reload` whenever a file under the directory `path` is added, removed or changed.
pub fn watch_dir(
    path: PathBuf,
    what: &'static str,
    reload: impl Fn() -> anyhow::Result<()> + Send + 'static,
) {
    tokio::spawn(async move {
        let mut seen = fingerprint(&path);
        loop {
            tokio::time::sleep(POLL).await;
            let now = fingerprint(&path);
            if now == seen {
                continue;
            }
            seen = now;
            match reload() {
                Ok(()) => tracing::info!(path = %path.display(), "{what} reloaded"),
                Err(e) => tracing::error!(
                    path = %path.display(),
                    error = %format!("{e:#}"),
                    "{what} rejected; the previous ones stay in force"
                ),
            }
        }
    });
}

/// Every file under `path` with its size and modification time, sorted.
pub fn fingerprint(path: &std::path::Path) -> Vec<(PathBuf, u64, Option<std::time::SystemTime>)> {
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&p) {
                stack.extend(entries.filter_map(|e| e.ok().map(|e| e.path())));
            }
        } else {
            out.push((p, meta.len(), meta.modified().ok()));
        }
    }
    out.sort();
    out
}
