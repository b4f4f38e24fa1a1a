//! `portcullis audit verify` and `portcullis audit query`: reading an audit trail.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use portcullis_audit::query::{Filter, query, render_table};
use portcullis_audit::{Stage, VerifyOptions, verify};

/// `portcullis audit`.
#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain of an audit trail: the log file and its rotated files (plain or
    /// gzip), in any order.
    ///
    /// Reports the first modified, deleted, inserted or reordered event, or a missing rotated
    /// file, with its file and line. Exit 0 when the chain is intact, 1 when it is not.
    /// Example: `portcullis audit verify /var/log/portcullis/audit*.log*`.
    Verify(VerifyArgs),
    /// Filter audit events over a trail (plain or gzip files), oldest first.
    ///
    /// Example: `portcullis audit query /var/log/portcullis/audit*.log* --user alice
    /// --decision forbid --since 2026-11-22T00:00:00Z`.
    Query(Box<QueryArgs>),
}

/// `portcullis audit verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The trail's files.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Fail when the trail does not start with the first event ever written (sequence 0),
    /// i.e. when older rotated files were removed.
    #[arg(long)]
    pub require_start: bool,
}

/// `portcullis audit query`.
#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// The trail's files.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The user (authenticated or impersonated).
    #[arg(long)]
    pub user: Option<String>,
    /// The verb (get, list, create, ...).
    #[arg(long)]
    pub verb: Option<String>,
    /// The resource (`pods`, or `pods/exec` for one subresource).
    #[arg(long)]
    pub resource: Option<String>,
    /// The namespace.
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// The authorization decision: `allow` or `forbid`.
    #[arg(long, value_parser = ["allow", "forbid"])]
    pub decision: Option<String>,
    /// Events at or after this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Events before this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// The stage (RequestReceived, ResponseStarted, ResponseComplete, Panic).
    #[arg(long)]
    pub stage: Option<String>,
    /// `table` or `json` (the events as they are in the log, one a line).
    #[arg(short = 'o', long, default_value = "table", value_parser = ["table", "json"])]
    pub output: String,
}

/// Runs `portcullis audit ...`; returns the exit code.
pub fn run(command: &AuditCommand) -> Result<i32> {
    match command {
        AuditCommand::Verify(args) => run_verify(args),
        AuditCommand::Query(args) => run_query(args),
    }
}

fn run_verify(args: &VerifyArgs) -> Result<i32> {
    let report = verify(
        &args.files,
        VerifyOptions {
            require_start: args.require_start,
        },
    );
    let mut out = std::io::stdout().lock();
    if let Some(problem) = &report.problem {
        writeln!(out, "audit trail NOT intact: {problem}")?;
        writeln!(out, "{} events verified before it", report.events)?;
        return Ok(1);
    }
    writeln!(
        out,
        "audit trail intact: {} events in {} files",
        report.events,
        report.files.len()
    )?;
    if let Some(start) = report.start_seq.filter(|s| *s > 0) {
        writeln!(
            out,
            "the trail starts at event {start}: older rotated files are not present"
        )?;
    }
    if let Some(head) = &report.head {
        writeln!(out, "head: event {} {}", head.seq, head.hash_hex())?;
    }
    if let Some(torn) = &report.torn_tail {
        writeln!(
            out,
            "note: the last line ({torn}) is incomplete (a crash while writing); the chain is intact up to it"
        )?;
    }
    Ok(0)
}

fn run_query(args: &QueryArgs) -> Result<i32> {
    let time = |s: &Option<String>, flag: &str| -> Result<Option<jiff::Timestamp>> {
        s.as_deref()
            .map(|t| t.parse().with_context(|| format!("--{flag} `{t}`")))
            .transpose()
    };
    let stage = match args.stage.as_deref() {
        Some(s) => match Stage::from_name(s) {
            Some(stage) => Some(stage),
            None => bail!(
                "--stage `{s}`: want RequestReceived, ResponseStarted, ResponseComplete or Panic"
            ),
        },
        None => None,
    };
    let filter = Filter {
        user: args.user.clone(),
        verb: args.verb.clone(),
        resource: args.resource.clone(),
        namespace: args.namespace.clone(),
        decision: args.decision.clone(),
        since: time(&args.since, "since")?,
        until: time(&args.until, "until")?,
        stage,
    };
    let mut out = std::io::stdout().lock();
    let mut events = Vec::new();
    let mut bad = 0;
    for record in query(&args.files, filter) {
        match record {
            Ok(r) if args.output == "json" => writeln!(out, "{}", r.raw)?,
            Ok(r) => events.push(r.event),
            Err(e) => {
                bad += 1;
                eprintln!("warning: {e}");
            }
        }
    }
    if args.output == "table" {
        write!(out, "{}", render_table(&events))?;
    }
    Ok(if bad > 0 { 1 } else { 0 })
}
