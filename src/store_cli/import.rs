//! `portcullis store import`: validate the whole file, check the target, then write in
//! bounded transactions.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

use super::format::{ExportReader, ROOT, resource_of};
use super::{ImportArgs, PAGE, counts, describe, open};
use crate::storage::{KeyValue, Store, TxnOp};

/// Runs the import; returns the exit code.
pub(super) async fn run(args: &ImportArgs) -> Result<i32> {
    let name = if args.file == Path::new("-") {
        "standard input".to_owned()
    } else {
        format!("`{}`", args.file.display())
    };
    // Pass 1: every line is checked before the store is even opened.
    let mut input = Input::open(&args.file)?;
    let checked = {
        let mut reader = ExportReader::new(input.first_pass()?, args.max_objects)
            .with_context(|| name.clone())?;
        reader.check_all().with_context(|| name.clone())?;
        Checked {
            revision: reader.header().revision,
            exported: reader.header().exported.clone(),
            by_resource: reader.by_resource().clone(),
            keys: reader.keys().keys().cloned().collect(),
        }
    };
    let objects: usize = checked.by_resource.values().sum();

    let store = open(&args.storage, &args.data_dir).await?;
    let target = describe(&args.storage, &args.data_dir);
    let (existing, existing_by_resource) = existing_keys(store.as_ref())
        .await
        .with_context(|| format!("reading {target}"))?;
    let replaced = checked.keys.intersection(&existing).count();
    if !existing.is_empty() && !args.overwrite {
        bail!(
            "{target} is not empty: it holds {} objects ({}); {replaced} of them have keys {name} \
             also has. Pass --overwrite to replace those (the other stored objects stay), or \
             import into an empty store",
            existing.len(),
            counts(&existing_by_resource),
        );
    }
    let mut out = std::io::stdout().lock();
    if args.dry_run {
        writeln!(
            out,
            "{name} is a valid export of {objects} objects taken at revision {} on {}; \
             importing it into {target} would create {} objects and replace {replaced}",
            checked.revision,
            checked.exported,
            objects - replaced,
        )?;
        print_counts(&mut out, &checked.by_resource)?;
        return Ok(0);
    }

    // Pass 2: the same checks again (the file must not have changed), and the writes.
    let mut reader =
        ExportReader::new(input.second_pass()?, args.max_objects).with_context(|| name.clone())?;
    let mut writer = BatchWriter {
        store: store.as_ref(),
        ops: Vec::new(),
        lines: (0, 0),
        bytes: 0,
        written: 0,
        revision: 0,
    };
    let result = async {
        while let Some(record) = reader
            .next_record()
            .with_context(|| format!("{name} changed while it was being imported"))?
        {
            let size = record.key.len() + record.value.len();
            if !writer.ops.is_empty()
                && (writer.ops.len() >= MAX_TXN_OPS || writer.bytes + size > MAX_TXN_BYTES)
            {
                writer.flush().await?;
            }
            if writer.ops.is_empty() {
                writer.lines.0 = record.line;
            }
            writer.lines.1 = record.line;
            writer.bytes += size;
            writer.ops.push(if existing.contains(&record.key) {
                TxnOp::Update {
                    key: record.key,
                    value: record.value,
                    expect: None,
                }
            } else {
                TxnOp::Create {
                    key: record.key,
                    value: record.value,
                }
            });
        }
        writer.flush().await
    }
    .await;
    if let Err(e) = result {
        return Err(e.context(format!(
            "importing into {target} stopped after {} of {objects} objects were written",
            writer.written
        )));
    }
    store.close().await.ok();
    let replaced_note = if replaced > 0 {
        format!("; {replaced} replaced existing keys")
    } else {
        String::new()
    };
    writeln!(
        out,
        "imported {} objects from {name} into {target} (now at revision {}{replaced_note}); \
         their resourceVersions are the new store's revisions",
        writer.written, writer.revision
    )?;
    print_counts(&mut out, &checked.by_resource)?;
    Ok(0)
}

/// What the validation pass learnt.
struct Checked {
    revision: u64,
    exported: String,
    by_resource: BTreeMap<String, usize>,
    keys: HashSet<String>,
}

/// Transactions of at most [`MAX_TXN_OPS`] ops and about [`MAX_TXN_BYTES`].
struct BatchWriter<'a> {
    store: &'a dyn Store,
    ops: Vec<TxnOp>,
    /// The first and last line of the batch.
    lines: (usize, usize),
    bytes: usize,
    written: usize,
    revision: u64,
}

impl BatchWriter<'_> {
    async fn flush(&mut self) -> Result<()> {
        if self.ops.is_empty() {
            return Ok(());
        }
        let ops = std::mem::take(&mut self.ops);
        let n = ops.len();
        let result = self.store.txn(ops).await.with_context(|| {
            format!(
                "writing the objects of lines {} to {}",
                self.lines.0, self.lines.1
            )
        })?;
        self.written += n;
        self.revision = result.revision;
        self.bytes = 0;
        Ok(())
    }
}

/// Every object key in the store, with counts by resource.
async fn existing_keys(store: &dyn Store) -> Result<(HashSet<String>, BTreeMap<String, usize>)> {
    let only_objects = |kv: &KeyValue| resource_of(&kv.key).is_some();
    let mut keys = HashSet::new();
    let mut by_resource = BTreeMap::new();
    let mut start_after: Option<String> = None;
    let mut at = 0;
    loop {
        let page = store
            .list(ROOT, start_after.as_deref(), PAGE, at, &only_objects)
            .await?;
        at = page.revision;
        for kv in &page.items {
            if let Some(resource) = resource_of(&kv.key) {
                *by_resource.entry(resource).or_insert(0) += 1;
            }
        }
        let last = page.items.last().map(|kv| kv.key.clone());
        keys.extend(page.items.into_iter().map(|kv| kv.key));
        match last {
            Some(last) if page.more => start_after = Some(last),
            _ => return Ok((keys, by_resource)),
        }
    }
}

fn print_counts(out: &mut dyn Write, by_resource: &BTreeMap<String, usize>) -> Result<()> {
    let width = by_resource.keys().map(String::len).max().unwrap_or(0);
    for (resource, n) in by_resource {
        writeln!(out, "  {resource:<width$}  {n}")?;
    }
    Ok(())
}

// === impl Input ===

/// The file to import, readable twice. Standard input is copied to a private temporary file
/// while the first pass reads it, so the second pass reads the same bytes.
enum Input {
    File(File),
    Stdin(Option<Spool>),
}

/// A temporary copy of standard input, removed when dropped.
struct Spool {
    file: File,
    path: PathBuf,
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Input {
    fn open(path: &Path) -> Result<Input> {
        if path == Path::new("-") {
            return Ok(Input::Stdin(None));
        }
        let file = File::open(path).with_context(|| format!("opening `{}`", path.display()))?;
        Ok(Input::File(file))
    }

    fn first_pass(&mut self) -> Result<Box<dyn BufRead + '_>> {
        match self {
            Input::File(file) => decoded(file),
            Input::Stdin(spool) => {
                let path = std::env::temp_dir()
                    .join(format!("portcullis-import-{}", uuid::Uuid::new_v4()));
                let mut options = std::fs::OpenOptions::new();
                options.read(true).write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let file = options
                    .open(&path)
                    .with_context(|| format!("creating `{}`", path.display()))?;
                let spool = spool.insert(Spool { file, path });
                decoded(Tee {
                    input: std::io::stdin().lock(),
                    copy: &spool.file,
                })
            }
        }
    }

    fn second_pass(&mut self) -> Result<Box<dyn BufRead + '_>> {
        let file = match self {
            Input::File(file) => file,
            Input::Stdin(Some(spool)) => &mut spool.file,
            Input::Stdin(None) => bail!("standard input was not read"),
        };
        file.seek(SeekFrom::Start(0))
            .context("rewinding the input")?;
        decoded(file)
    }
}

/// Reads `raw`, gunzipping it when it starts with gzip's magic bytes.
fn decoded<'a>(raw: impl Read + 'a) -> Result<Box<dyn BufRead + 'a>> {
    let mut reader = BufReader::with_capacity(1 << 20, raw);
    let head = reader.fill_buf().context("reading the input")?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(BufReader::with_capacity(
            1 << 20,
            flate2::read::MultiGzDecoder::new(reader),
        )))
    } else {
        Ok(Box::new(reader))
    }
}

/// Copies what it reads from `input` to `copy`.
struct Tee<R, W> {
    input: R,
    copy: W,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.input.read(buf)?;
        self.copy
            .write_all(buf.get(..n).unwrap_or_default())
            .map_err(|e| std::io::Error::new(e.kind(), anyhow!("copying standard input: {e}")))?;
        Ok(n)
    }
}

/// The most ops in one transaction (etcd's default `--max-txn-ops` is 128).
const MAX_TXN_OPS: usize = 100;
/// About the most bytes of keys and values in one transaction (etcd's default
/// `--max-request-bytes` is 1.5 MiB); a single larger object goes alone.
const MAX_TXN_BYTES: usize = 1024 * 1024;
