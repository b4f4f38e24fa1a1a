//! Rotated file names, and the background "mill" that compresses and prunes rotated files,
//! lumberjack-style: `audit.log` rotates to `audit-2006-01-02T15-04-05.000.log` (UTC), then
//! optionally to `audit-….log.gz`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

const TIME_FORMAT: &str = "%Y-%m-%dT%H-%M-%S%.3f";

/// How the current file's name splits around a rotation timestamp.
#[derive(Clone, Debug)]
pub(crate) struct Naming {
    dir: PathBuf,
    /// `audit-` for `audit.log`.
    prefix: String,
    /// `.log` for `audit.log`; empty when the name has no extension.
    ext: String,
}

/// A rotated file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Backup {
    pub(crate) path: PathBuf,
    pub(crate) time: Timestamp,
    pub(crate) compressed: bool,
}

impl Naming {
    pub(crate) fn new(current: &Path) -> Naming {
        let dir = match current.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = current
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (stem, ext) = match name.rfind('.') {
            Some(i) if i > 0 => (
                name.get(..i).unwrap_or_default(),
                name.get(i..).unwrap_or_default(),
            ),
            _ => (name.as_str(), ""),
        };
        Naming {
            dir,
            prefix: format!("{stem}-"),
            ext: ext.to_owned(),
        }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The name a rotation at `time` gets; a later millisecond if that name is taken.
    pub(crate) fn backup_path(&self, time: Timestamp) -> PathBuf {
        let mut t = time;
        loop {
            let path = self.dir.join(self.file_name(t));
            let gz = gz_path(&path);
            if !path.exists() && !gz.exists() {
                return path;
            }
            t = t.checked_add(SignedDuration::from_millis(1)).unwrap_or(t);
        }
    }

    fn file_name(&self, time: Timestamp) -> String {
        let stamp = time
            .to_zoned(TimeZone::UTC)
            .strftime(TIME_FORMAT)
            .to_string();
        format!("{}{stamp}{}", self.prefix, self.ext)
    }

    /// The rotated files in the directory, newest first.
    pub(crate) fn backups(&self) -> io::Result<Vec<Backup>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(b) = self.parse(name) {
                out.push(b);
            }
        }
        out.sort_by_key(|b| std::cmp::Reverse((b.time, b.compressed)));
        Ok(out)
    }

    fn parse(&self, name: &str) -> Option<Backup> {
        let rest = name.strip_prefix(&self.prefix)?;
        let (rest, compressed) = match rest.strip_suffix(".gz") {
            Some(r) => (r, true),
            None => (rest, false),
        };
        let stamp = rest.strip_suffix(&self.ext)?;
        let civil = DateTime::strptime(TIME_FORMAT, stamp).ok()?;
        let time = TimeZone::UTC.to_timestamp(civil).ok()?;
        Some(Backup {
            path: self.dir.join(name),
            time,
            compressed,
        })
    }
}

pub(crate) fn gz_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".gz");
    PathBuf::from(s)
}

/// What the mill keeps.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Retention {
    pub(crate) max_backups: u64,
    pub(crate) max_age_days: u64,
    pub(crate) compress: bool,
}

/// One pass of the mill: finish or redo interrupted compressions, compress, then prune.
pub(crate) fn mill(naming: &Naming, retention: Retention, now: Timestamp) -> io::Result<()> {
    // Leftovers of a compression cut short: the `.tmp` is never the only copy.
    for entry in fs::read_dir(naming.dir())? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with(&naming.prefix) && name.ends_with(".gz.tmp") {
            fs::remove_file(&path)?;
        }
    }
    if retention.compress {
        for backup in naming.backups()? {
            if backup.compressed {
                continue;
            }
            let gz = gz_path(&backup.path);
            if gz.exists() {
                // Renamed into place only once complete: the plain copy is redundant.
                fs::remove_file(&backup.path)?;
            } else {
                compress(&backup.path, &gz, naming.dir())?;
            }
        }
    }
    let mut backups = naming.backups()?;
    // One rotation may exist in both forms for a moment; count it once.
    backups.dedup_by(|later, earlier| later.time == earlier.time);
    let cutoff = if retention.max_age_days > 0 {
        let age = SignedDuration::from_hours(
            i64::try_from(retention.max_age_days.saturating_mul(24)).unwrap_or(i64::MAX / 3600),
        );
        now.checked_sub(age).ok()
    } else {
        None
    };
    for (i, backup) in backups.iter().enumerate() {
        let too_many = retention.max_backups > 0 && i as u64 >= retention.max_backups;
        let too_old = cutoff.is_some_and(|c| backup.time < c);
        if too_many || too_old {
            let plain = backup
                .path
                .to_str()
                .and_then(|p| p.strip_suffix(".gz"))
                .map(PathBuf::from)
                .unwrap_or_else(|| backup.path.clone());
            for p in [gz_path(&plain), plain] {
                match fs::remove_file(&p) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

/// Compresses `src` to `dst` through `dst.tmp`, made durable before it replaces anything.
fn compress(src: &Path, dst: &Path, dir: &Path) -> io::Result<()> {
    let mut tmp_name = dst.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let mut input = File::open(src)?;
    let out = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    let mut enc = GzEncoder::new(out, Compression::default());
    io::copy(&mut input, &mut enc)?;
    let mut out = enc.finish()?;
    out.flush()?;
    out.sync_all()?;
    fs::rename(&tmp, dst)?;
    sync_dir(dir)?;
    fs::remove_file(src)?;
    sync_dir(dir)
}

/// Makes a rename or create in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_like_lumberjack_in_utc() {
        let n = Naming::new(Path::new("/var/log/audit.log"));
        let t: Timestamp = "2024-05-01T12:34:56.789123Z".parse().unwrap();
        assert_eq!(n.file_name(t), "audit-2024-05-01T12-34-56.789.log");
        let parsed = n.parse("audit-2024-05-01T12-34-56.789.log.gz").unwrap();
        assert!(parsed.compressed);
        assert_eq!(parsed.time.to_string(), "2024-05-01T12:34:56.789Z");
        assert_eq!(n.parse("audit.log"), None);
        assert_eq!(n.parse("audit-garbage.log"), None);
        assert_eq!(n.parse("other-2024-05-01T12-34-56.789.log"), None);
        let bare = Naming::new(Path::new("trail"));
        assert_eq!(bare.dir(), Path::new("."));
        assert_eq!(bare.file_name(t), "trail-2024-05-01T12-34-56.789");
    }
}
