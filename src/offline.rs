//! Offline RBAC questions from manifests: `portcullis can-i` and `portcullis who-can`.
//!
//! The manifests are read from files and directories (YAML, multi-document YAML, `kind: List`,
//! JSON), the built-in bootstrap policy is added (so bindings to `view`, `edit` or `admin` mean
//! what they mean in a cluster), ClusterRoles are aggregated, and the same engine the gateway
//! uses answers.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use portcullis_api::registry::RESOURCES;
use portcullis_api::user::SYSTEM_MASTERS;
use portcullis_api::{RequestInfo, ResourceRequest, UserInfo};
use portcullis_authz::Authorizer;
use portcullis_authz::rbac::{Policy, Snapshot, reference};
use serde_json::Value;

use crate::rbac::{aggregate_in_place, bootstrap};

/// Largest manifest file read.
const MAX_FILE: u64 = 16 * 1024 * 1024;

/// Where the RBAC objects come from.
#[derive(Debug, Args)]
pub struct Manifests {
    /// Manifest files or directories (recursive; .yaml, .yml, .json); repeatable.
    #[arg(short = 'f', long = "filename", required = true, value_name = "PATH")]
    pub files: Vec<PathBuf>,

    /// Leave out the bootstrap ClusterRoles and ClusterRoleBindings kube-apiserver creates.
    #[arg(long)]
    pub no_bootstrap: bool,
}

/// `portcullis can-i`: whether a user may do something, by the manifests' RBAC.
#[derive(Debug, Args)]
pub struct CanIArgs {
    /// The verb, e.g. get, list, create, impersonate (not with --list).
    #[arg(required_unless_present = "list")]
    pub verb: Option<String>,

    /// RESOURCE, RESOURCE/NAME, RESOURCE.GROUP, or a non-resource path starting with `/`.
    /// Omit with --list.
    pub target: Option<String>,

    /// The object name.
    pub name: Option<String>,

    /// The user asking (required unless --as-group is given).
    #[arg(long = "as", value_name = "USER")]
    pub as_user: Option<String>,

    /// A group of the user; repeatable.
    #[arg(long = "as-group", value_name = "GROUP")]
    pub as_groups: Vec<String>,

    /// Namespace of the request.
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,

    /// Ask across all namespaces (cluster scope).
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,

    /// Subresource, e.g. log or scale.
    #[arg(long)]
    pub subresource: Option<String>,

    /// List every rule the user holds in the namespace instead of answering one question.
    #[arg(long)]
    pub list: bool,

    /// The RBAC objects.
    #[command(flatten)]
    pub manifests: Manifests,
}

/// `portcullis who-can`: which subjects may do something, by the manifests' RBAC.
#[derive(Debug, Args)]
pub struct WhoCanArgs {
    /// The verb.
    pub verb: String,

    /// RESOURCE, RESOURCE/NAME, RESOURCE.GROUP, or a non-resource path.
    pub target: String,

    /// The object name.
    pub name: Option<String>,

    /// Namespace of the request.
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,

    /// Ask at the cluster scope.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,

    /// Subresource.
    #[arg(long)]
    pub subresource: Option<String>,

    /// The RBAC objects.
    #[command(flatten)]
    pub manifests: Manifests,
}

/// Appends a line to an output buffer.
macro_rules! line {
    ($out:expr, $($arg:tt)*) => {{
        $out.push_str(&format!($($arg)*));
        $out.push('\n');
    }};
}

/// Writes the output; a closed pipe (`| head`) is not an error.
fn emit(out: &str) -> Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(out.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("writing the output")
        }
        _ => Ok(()),
    }
}

/// Runs `can-i`; returns the exit code (0 yes, 1 no).
pub fn can_i(args: &CanIArgs) -> Result<i32> {
    let mut out = String::new();
    let code = can_i_into(args, &mut out)?;
    emit(&out)?;
    Ok(code)
}

fn can_i_into(args: &CanIArgs, out: &mut String) -> Result<i32> {
    let policy = load(&args.manifests)?;
    let mut user = UserInfo {
        username: args.as_user.clone().unwrap_or_default(),
        groups: args.as_groups.clone(),
        ..UserInfo::default()
    };
    if user.username.is_empty() && user.groups.is_empty() {
        bail!("offline, say who is asking: --as USER and/or --as-group GROUP");
    }
    user = user.with_authenticated_group();
    let snapshot = std::sync::Arc::new(Snapshot::build(&policy));
    if args.list {
        let namespace = if args.all_namespaces {
            ""
        } else {
            args.namespace.as_str()
        };
        let (rules, errors) = snapshot.rules_for(&user, namespace);
        line!(
            out,
            "{:<40} {:<25} {:<20} Verbs",
            "Resources",
            "Non-Resource URLs",
            "Resource Names"
        );
        for r in rules {
            let list = |v: &[String]| format!("[{}]", v.join(" "));
            if !r.resources.is_empty() {
                for res in &r.resources {
                    for g in &r.api_groups {
                        let name = if g.is_empty() {
                            res.clone()
                        } else {
                            format!("{res}.{g}")
                        };
                        line!(
                            out,
                            "{name:<40} {:<25} {:<20} {}",
                            "[]",
                            list(&r.resource_names),
                            list(&r.verbs)
                        );
                    }
                }
            }
            for url in &r.non_resource_urls {
                line!(
                    out,
                    "{:<40} {:<25} {:<20} {}",
                    "",
                    format!("[{url}]"),
                    "[]",
                    list(&r.verbs)
                );
            }
        }
        for e in errors {
            eprintln!("warning: the list may be incomplete: {e}");
        }
        return Ok(0);
    }
    let verb = args.verb.as_deref().context("give a VERB, or use --list")?;
    let target = args
        .target
        .as_deref()
        .context("give a RESOURCE or a /path, or use --list")?;
    let request = request(
        verb,
        target,
        args.name.as_deref(),
        args.subresource.as_deref(),
        if args.all_namespaces {
            ""
        } else {
            &args.namespace
        },
    )?;
    let decision = Authorizer::with_rbac(snapshot).authorize(&user, &request);
    if decision.is_allowed() {
        let reason = if decision.reason().is_empty() {
            "superuser group system:masters"
        } else {
            decision.reason()
        };
        line!(out, "yes - {reason}");
        Ok(0)
    } else if decision.reason().is_empty() {
        line!(out, "no");
        Ok(1)
    } else {
        line!(out, "no - {}", decision.reason());
        Ok(1)
    }
}

/// Runs `who-can`; always exit 0.
pub fn who_can(args: &WhoCanArgs) -> Result<i32> {
    let mut out = String::new();
    who_can_into(args, &mut out)?;
    emit(&out)?;
    Ok(0)
}

fn who_can_into(args: &WhoCanArgs, out: &mut String) -> Result<()> {
    let policy = load(&args.manifests)?;
    let request = request(
        &args.verb,
        &args.target,
        args.name.as_deref(),
        args.subresource.as_deref(),
        if args.all_namespaces {
            ""
        } else {
            &args.namespace
        },
    )?;
    line!(
        out,
        "{:<16} {:<48} {:<52} ROLE",
        "KIND",
        "SUBJECT",
        "BINDING"
    );
    line!(
        out,
        "{:<16} {:<48} {:<52} (superuser)",
        "Group",
        SYSTEM_MASTERS,
        "(built in)"
    );
    for g in reference::who_can(&policy, &request) {
        let subject = if g.subject.kind == "ServiceAccount" {
            format!("{}/{}", g.subject.namespace, g.subject.name)
        } else {
            g.subject.name.clone()
        };
        line!(
            out,
            "{:<16} {:<48} {:<52} {}",
            g.subject.kind,
            subject,
            g.binding,
            g.role
        );
    }
    Ok(())
}

/// Builds request attributes the way kubectl resolves `VERB TYPE[/NAME]` or `VERB /path`.
fn request(
    verb: &str,
    target: &str,
    name: Option<&str>,
    subresource: Option<&str>,
    namespace: &str,
) -> Result<RequestInfo> {
    if target.starts_with('/') {
        return Ok(RequestInfo::NonResource {
            verb: verb.to_owned(),
            path: target.to_owned(),
        });
    }
    let (resource, inline_name) = match target.split_once('/') {
        Some((r, n)) => (r, Some(n)),
        None => (target, None),
    };
    let name = inline_name.or(name).unwrap_or("");
    let (plural, group, namespaced) = resolve(resource);
    Ok(RequestInfo::Resource(ResourceRequest {
        verb: verb.to_owned(),
        group,
        version: "*".to_owned(),
        resource: plural,
        subresource: subresource.unwrap_or("").to_owned(),
        namespace: if namespaced {
            namespace.to_owned()
        } else {
            String::new()
        },
        name: name.to_owned(),
        ..ResourceRequest::default()
    }))
}

/// Resolves a resource word (plural, singular, short name, kind, or `plural.group`) against the
/// served resources; an unknown word is taken as a core-group plural, as kubectl does when
/// discovery does not know it.
fn resolve(word: &str) -> (String, String, bool) {
    let lower = word.to_ascii_lowercase();
    let (base, group) = match lower.split_once('.') {
        Some((b, g)) => (b.to_owned(), Some(g.to_owned())),
        None => (lower.clone(), None),
    };
    for r in RESOURCES {
        let names = r.plural == base
            || r.singular == base
            || r.short_names.contains(&base.as_str())
            || r.kind.to_ascii_lowercase() == base;
        if names && group.as_deref().is_none_or(|g| g == r.gv.group) {
            return (r.plural.to_owned(), r.gv.group.to_owned(), r.namespaced);
        }
    }
    if group.is_none() {
        eprintln!("Warning: the server doesn't have a resource type '{word}'");
    }
    (base, group.unwrap_or_default(), true)
}

/// Reads the manifests into a policy (plus the bootstrap policy unless told not to), with
/// ClusterRoles aggregated.
pub fn load(manifests: &Manifests) -> Result<Policy> {
    let mut objects = Vec::new();
    for path in &manifests.files {
        read_path(path, &mut objects)?;
    }
    if !manifests.no_bootstrap {
        let b = bootstrap::policy().context("reading the built-in bootstrap policy")?;
        for obj in b.cluster_roles.into_iter().chain(b.cluster_role_bindings) {
            let name = obj["metadata"]["name"].clone();
            let kind = obj["kind"].clone();
            // The manifests win over the built-in objects of the same name.
            if !objects
                .iter()
                .any(|o: &Value| o["kind"] == kind && o["metadata"]["name"] == name)
            {
                objects.push(obj);
            }
        }
    }
    let (mut cluster_roles, rest): (Vec<Value>, Vec<Value>) = objects
        .into_iter()
        .partition(|o| o["kind"] == "ClusterRole");
    aggregate_in_place(&mut cluster_roles);
    let mut policy = Policy::default();
    for o in &cluster_roles {
        policy.cluster_roles.push(parse(o)?);
    }
    for o in &rest {
        match o["kind"].as_str() {
            Some("Role") => policy.roles.push(parse(o)?),
            Some("RoleBinding") => policy.role_bindings.push(parse(o)?),
            Some("ClusterRoleBinding") => policy.cluster_role_bindings.push(parse(o)?),
            _ => {}
        }
    }
    for r in policy.roles.iter_mut() {
        if r.metadata.namespace.is_empty() {
            r.metadata.namespace = "default".to_owned();
        }
    }
    for b in policy.role_bindings.iter_mut() {
        if b.metadata.namespace.is_empty() {
            b.metadata.namespace = "default".to_owned();
        }
    }
    Ok(policy)
}

fn parse<T: serde::de::DeserializeOwned>(o: &Value) -> Result<T> {
    serde_json::from_value(o.clone()).with_context(|| {
        format!(
            "{} `{}` is malformed",
            o["kind"].as_str().unwrap_or("object"),
            o["metadata"]["name"].as_str().unwrap_or("")
        )
    })
}

fn read_path(path: &Path, out: &mut Vec<Value>) -> Result<()> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading `{}`", path.display()))?;
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("reading `{}`", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for p in entries {
            let is_manifest = p
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"));
            if p.is_dir() || is_manifest {
                read_path(&p, out)?;
            }
        }
        return Ok(());
    }
    if meta.len() > MAX_FILE {
        bail!("`{}` is larger than {} MiB", path.display(), MAX_FILE >> 20);
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading `{}`", path.display()))?;
    let docs: Vec<Value> = serde_saphyr::from_str_multiple(&text)
        .map_err(|e| anyhow::anyhow!("`{}`: {e}", path.display()))?;
    for doc in docs {
        flatten(doc, out);
    }
    Ok(())
}

fn flatten(doc: Value, out: &mut Vec<Value>) {
    if doc
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k == "List" || k.ends_with("List"))
        && let Some(items) = doc.get("items").and_then(Value::as_array)
    {
        for item in items {
            flatten(item.clone(), out);
        }
        return;
    }
    if doc.is_object() {
        out.push(doc);
    }
}
