//! `portcullis store export`: pages through `/registry/` at one revision and streams lines out.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use flate2::write::GzEncoder;

use super::format::{self, ROOT};
use super::{EMBEDDED_FILE, ExportArgs, PAGE, counts, describe, open};
use crate::storage::flags::Backend;
use crate::storage::{KeyValue, Store, StoreError};

/// Runs the export; returns the exit code.
pub(super) async fn run(args: &ExportArgs) -> Result<i32> {
    if args.storage.storage_backend == Backend::Embedded
        && !args.data_dir.join(EMBEDDED_FILE).exists()
    {
        bail!(
            "there is no embedded store at `{}`: is --data-dir right?",
            args.data_dir.join(EMBEDDED_FILE).display()
        );
    }
    let store = open(&args.storage, &args.data_dir).await?;
    let gzip = args.gzip || args.output.extension().is_some_and(|e| e == "gz");
    let source = describe(&args.storage, &args.data_dir);
    let summary = if args.output == Path::new("-") {
        let mut out = std::io::stdout().lock();
        let summary = write_to(store.as_ref(), &mut out, gzip).await?;
        out.flush().context("writing to standard output")?;
        summary
    } else {
        write_file(store.as_ref(), &args.output, gzip).await?
    };
    store.close().await.ok();
    let target = if args.output == Path::new("-") {
        "standard output".to_owned()
    } else {
        format!("`{}`", args.output.display())
    };
    // The summary goes to standard error, which standard output may be the export on; a
    // closed standard error is not worth failing a finished export for.
    let _ = writeln!(
        std::io::stderr(),
        "exported {} objects from {source} at revision {} to {target}{}",
        summary.objects,
        summary.revision,
        if summary.by_resource.is_empty() {
            String::new()
        } else {
            format!(" ({})", counts(&summary.by_resource))
        }
    );
    Ok(0)
}

/// What an export wrote.
struct Summary {
    revision: u64,
    objects: u64,
    by_resource: BTreeMap<String, usize>,
}

/// Writes beside `path` and renames into place once complete and synced, so a failed export
/// never leaves a file under the final name.
async fn write_file(store: &dyn Store, path: &Path, gzip: bool) -> Result<Summary> {
    // Listening before the partial file exists: a signal that arrived between its creation
    // and the first poll of a listener made later would end the process with the file left.
    let mut interrupts = Interrupts::listen();
    let partial = partial_path(path);
    // The export holds Secrets: readable by its owner only, as the data directory's keys are.
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&partial)
        .with_context(|| format!("creating `{}`", partial.display()))?;
    let export = async {
        let summary = write_to(store, &mut file, gzip).await?;
        file.sync_all()
            .with_context(|| format!("writing `{}`", partial.display()))?;
        std::fs::rename(&partial, path)
            .with_context(|| format!("renaming `{}` to `{}`", partial.display(), path.display()))?;
        Ok(summary)
    };
    // Interrupted (Ctrl-C, or SIGTERM from a job runner): the partial file goes too, and the
    // final name is never written.
    let result = tokio::select! {
        result = export => result,
        signal = interrupts.recv() => Err(anyhow!(
            "interrupted by {signal}: nothing was written to `{}`",
            path.display()
        )),
    };
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// SIGINT and SIGTERM, listened for from [`Interrupts::listen`] on: from then, either signal
/// is caught (and waits for [`Interrupts::recv`]) instead of ending the process.
struct Interrupts {
    #[cfg(unix)]
    signals: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Interrupts {
    /// Starts listening (listens for nothing if the signals cannot be listened for).
    fn listen() -> Interrupts {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Interrupts {
                signals: signal(SignalKind::interrupt())
                    .and_then(|int| Ok((int, signal(SignalKind::terminate())?)))
                    .ok(),
            }
        }
        #[cfg(not(unix))]
        Interrupts {}
    }

    /// Waits for SIGINT or SIGTERM and names it (never returns if neither is listened for).
    async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            match &mut self.signals {
                Some((int, term)) => tokio::select! {
                    _ = int.recv() => "SIGINT",
                    _ = term.recv() => "SIGTERM",
                },
                None => std::future::pending().await,
            }
        }
        #[cfg(not(unix))]
        {
            match tokio::signal::ctrl_c().await {
                Ok(()) => "Ctrl-C",
                Err(_) => std::future::pending().await,
            }
        }
    }
}

async fn write_to(store: &dyn Store, out: &mut dyn Write, gzip: bool) -> Result<Summary> {
    let out = BufWriter::with_capacity(1 << 20, out);
    if gzip {
        let mut encoder = GzEncoder::new(out, flate2::Compression::default());
        let summary = write_lines(store, &mut encoder).await?;
        let mut out = encoder.finish().context("writing the export")?;
        out.flush().context("writing the export")?;
        Ok(summary)
    } else {
        let mut out = out;
        let summary = write_lines(store, &mut out).await?;
        out.flush().context("writing the export")?;
        Ok(summary)
    }
}

/// Pages through the store in key order, every page at the first page's revision.
async fn write_lines(store: &dyn Store, out: &mut dyn Write) -> Result<Summary> {
    let only_objects = |kv: &KeyValue| format::resource_of(&kv.key).is_some();
    let mut summary = Summary {
        revision: 0,
        objects: 0,
        by_resource: BTreeMap::new(),
    };
    let mut start_after: Option<String> = None;
    let mut first = true;
    loop {
        // A page of the embedded store is read without suspending: yield once per page, so
        // that an interrupt is seen mid-export.
        tokio::task::yield_now().await;
        let page = store
            .list(
                ROOT,
                start_after.as_deref(),
                PAGE,
                summary.revision,
                &only_objects,
            )
            .await
            .map_err(|e| match e {
                StoreError::Gone { .. } => anyhow!(
                    "the store compacted revision {} while the export was reading it; run the export again",
                    summary.revision
                ),
                e => anyhow::Error::new(e).context("reading the store"),
            })?;
        if first {
            first = false;
            summary.revision = page.revision;
            let now = jiff::Timestamp::now()
                .strftime("%Y-%m-%dT%H:%M:%SZ")
                .to_string();
            write_line(out, &format::header_line(page.revision, &now)?)?;
        }
        for kv in &page.items {
            let line = format::object_line(&kv.key, &kv.value).map_err(|e| anyhow!(e))?;
            write_line(out, &line)?;
            summary.objects += 1;
            if let Some(resource) = format::resource_of(&kv.key) {
                *summary.by_resource.entry(resource).or_default() += 1;
            }
        }
        match page.items.last() {
            Some(last) if page.more => start_after = Some(last.key.clone()),
            _ => break,
        }
    }
    write_line(out, &format::end_line(summary.objects)?)?;
    Ok(summary)
}

fn write_line(out: &mut dyn Write, line: &[u8]) -> Result<()> {
    out.write_all(line)
        .and_then(|()| out.write_all(b"\n"))
        .context("writing the export")
}

/// `dir/.name.partial-<pid>` for `dir/name`.
fn partial_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "export".to_owned());
    path.with_file_name(format!(".{name}.partial-{}", std::process::id()))
}
