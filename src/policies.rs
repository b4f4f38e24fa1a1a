//! Loading admission policies from a directory (`--admission-policy-dir`): conftest `.rego` files
//! and Gatekeeper ConstraintTemplates with their Constraints (YAML or JSON), compiled into one
//! `portcullis_admission::rego::PolicySet`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use portcullis_admission::rego::{Document, GatekeeperPolicy, PolicySet, PolicySource, RegoFile};
use serde_json::Value;

/// Largest policy file read.
const MAX_FILE: u64 = 4 * 1024 * 1024;

/// Reads and compiles every policy under `dir`.
pub fn load(dir: &Path) -> Result<PolicySet> {
    Ok(PolicySet::compile(&sources(dir)?)?)
}

/// The policy library shipped in `policies/`, embedded in the binary (`portcullis lint` uses it
/// by default). Its Rego files, with their paths under `policies/`.
pub const LIBRARY: &[(&str, &str)] = &[
    (
        "policies/automount_token.rego",
        include_str!("../policies/automount_token.rego"),
    ),
    (
        "policies/host_path.rego",
        include_str!("../policies/host_path.rego"),
    ),
    (
        "policies/lib/pods.rego",
        include_str!("../policies/lib/pods.rego"),
    ),
    (
        "policies/privileged_ports.rego",
        include_str!("../policies/privileged_ports.rego"),
    ),
    (
        "policies/readonly_root_fs.rego",
        include_str!("../policies/readonly_root_fs.rego"),
    ),
    (
        "policies/required_labels.rego",
        include_str!("../policies/required_labels.rego"),
    ),
    (
        "policies/resources.rego",
        include_str!("../policies/resources.rego"),
    ),
    (
        "policies/seccomp.rego",
        include_str!("../policies/seccomp.rego"),
    ),
];

/// The embedded library as policy sources.
pub fn library() -> Vec<PolicySource> {
    LIBRARY
        .iter()
        .map(|(path, text)| PolicySource::Rego(RegoFile::new(*path, *text)))
        .collect()
}

/// Reads a policy file (Rego, a template, a constraint, a test suite) as text, refusing one
/// larger than 4 MiB; the bound holds even if the file grows while it is read.
pub fn read_file(path: &Path) -> Result<String> {
    use std::io::Read;
    let file =
        std::fs::File::open(path).with_context(|| format!("reading `{}`", path.display()))?;
    let mut text = String::new();
    file.take(MAX_FILE + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("reading `{}`", path.display()))?;
    if text.len() as u64 > MAX_FILE {
        bail!("`{}` is larger than {} MiB", path.display(), MAX_FILE >> 20);
    }
    Ok(text)
}

/// Reads every policy under `dir` (not compiled): `.rego` files, then Gatekeeper templates with
/// their constraints.
pub fn sources(dir: &Path) -> Result<Vec<PolicySource>> {
    let mut files = Vec::new();
    collect(dir, &mut files)?;
    files.sort();
    let mut sources = Vec::new();
    let mut templates: BTreeMap<String, Document> = BTreeMap::new();
    let mut constraints: BTreeMap<String, Vec<Document>> = BTreeMap::new();
    for path in &files {
        let text = read_file(path)?;
        let name = path.display().to_string();
        if path.extension().and_then(|e| e.to_str()) == Some("rego") {
            sources.push(PolicySource::Rego(RegoFile::new(name, text)));
            continue;
        }
        let docs: Vec<Value> =
            serde_saphyr::from_str_multiple(&text).map_err(|e| anyhow::anyhow!("`{name}`: {e}"))?;
        for (i, doc) in docs.into_iter().enumerate() {
            let at = format!("{name}#{i}");
            match doc["kind"].as_str() {
                Some("ConstraintTemplate") => {
                    let kind = doc
                        .pointer("/spec/crd/spec/names/kind")
                        .and_then(Value::as_str)
                        .with_context(|| format!("`{at}`: spec.crd.spec.names.kind is required"))?
                        .to_owned();
                    templates.insert(kind, Document::new(at, doc));
                }
                Some(kind)
                    if doc["apiVersion"]
                        .as_str()
                        .is_some_and(|a| a.starts_with("constraints.gatekeeper.sh/")) =>
                {
                    constraints
                        .entry(kind.to_owned())
                        .or_default()
                        .push(Document::new(at, doc));
                }
                _ => {}
            }
        }
    }
    for (kind, list) in &constraints {
        if !templates.contains_key(kind) {
            bail!(
                "constraint kind `{kind}` has no ConstraintTemplate (first: `{}`)",
                list.first().map(|d| d.path.as_str()).unwrap_or("")
            );
        }
    }
    for (kind, template) in templates {
        sources.push(PolicySource::Gatekeeper(GatekeeperPolicy {
            template,
            constraints: constraints.remove(&kind).unwrap_or_default(),
        }));
    }
    Ok(sources)
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading `{}`", path.display()))?;
    if meta.is_dir() {
        for entry in
            std::fs::read_dir(path).with_context(|| format!("reading `{}`", path.display()))?
        {
            collect(&entry?.path(), out)?;
        }
    } else if path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e, "rego" | "yaml" | "yml" | "json"))
    {
        out.push(path.to_path_buf());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Every `.rego` file of `policies/` is embedded, and nothing else.
    #[test]
    fn the_embedded_library_is_the_policies_directory() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        super::collect(&root.join("policies"), &mut files).unwrap();
        let mut on_disk: Vec<String> = files
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "rego"))
            .map(|p| {
                p.strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/")
            })
            .collect();
        on_disk.sort();
        let embedded: Vec<String> = super::LIBRARY
            .iter()
            .map(|(p, _)| (*p).to_owned())
            .collect();
        assert_eq!(embedded, on_disk, "update LIBRARY in src/policies.rs");
        for (path, text) in super::LIBRARY {
            assert_eq!(*text, std::fs::read_to_string(root.join(path)).unwrap());
        }
        portcullis_admission::rego::PolicySet::compile(&super::library()).unwrap();
    }
}
