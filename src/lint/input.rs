//! Reading manifests: files and directories (recursive; `.yaml`, `.yml`, `.json`), stdin,
//! multi-document YAML, `kind: List`, JSON; every object keeps its file, document index and line.
//!
//! Every input is bounded: files larger than [`MAX_FILE`] are refused, binary and non-UTF-8
//! files are refused by name, YAML runs under a budget (aliases, nesting, nodes, documents) and
//! JSON under serde_json's nesting limit. A file that fails is reported with its line and the
//! other files are still read.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Largest manifest file (or stdin) read.
pub const MAX_FILE: u64 = 8 * 1024 * 1024;

/// Deepest YAML nesting accepted.
const MAX_YAML_DEPTH: usize = 128;

/// Stack for the threads that parse: deep (but allowed) nesting recurses through serde.
pub const STACK_SIZE: usize = 64 * 1024 * 1024;

/// One input to lint, before parsing.
#[derive(Debug)]
pub struct Source {
    /// The name findings use: the path as given (or found under a directory), `<stdin>` for `-`.
    pub name: String,
    /// The path on disk, `None` for stdin.
    pub path: Option<PathBuf>,
}

/// The name stdin is reported under.
pub const STDIN: &str = "<stdin>";

/// One object read from a source.
#[derive(Debug)]
pub struct Object {
    /// Index of the YAML document in its file (0-based); items of a `List` share it.
    pub document: usize,
    /// Line (1-based) where the object's document starts.
    pub line: u64,
    /// The object.
    pub value: Value,
}

/// Why a source could not be read, with the line when known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputError {
    /// Line (1-based), 0 when unknown.
    pub line: u64,
    /// What is wrong.
    pub message: String,
}

impl InputError {
    fn new(message: impl Into<String>) -> InputError {
        InputError {
            line: 0,
            message: message.into(),
        }
    }
}

/// Finds the sources under `paths`: files as given, directories walked recursively (sorted; hidden
/// entries and symlinked directories skipped), `-` for stdin. A path that does not exist is an
/// error (a usage error for the caller).
pub fn discover(paths: &[PathBuf]) -> Result<Vec<Source>, String> {
    let mut out = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            out.push(Source {
                name: STDIN.to_owned(),
                path: None,
            });
            continue;
        }
        let meta = std::fs::metadata(path)
            .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
        if meta.is_dir() {
            walk(path, &mut out).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
        } else {
            out.push(Source {
                name: display(path),
                path: Some(path.clone()),
            });
        }
    }
    Ok(out)
}

fn display(path: &Path) -> String {
    let s = path.to_string_lossy();
    s.strip_prefix("./").unwrap_or(&s).to_owned()
}

fn walk(dir: &Path, out: &mut Vec<Source>) -> std::io::Result<()> {
    let mut entries: Vec<std::fs::DirEntry> =
        std::fs::read_dir(dir)?.collect::<Result<Vec<_>, _>>()?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            walk(&path, out)?;
        } else if is_manifest(&path) && (file_type.is_file() || path.is_file()) {
            out.push(Source {
                name: display(&path),
                path: Some(path),
            });
        }
    }
    Ok(())
}

fn is_manifest(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
}

/// Reads and parses one source into its objects.
pub fn read(source: &Source) -> Result<Vec<Object>, InputError> {
    let bytes = match &source.path {
        Some(path) => {
            let meta = std::fs::metadata(path).map_err(|e| InputError::new(e.to_string()))?;
            if meta.len() > MAX_FILE {
                return Err(too_large());
            }
            let file = std::fs::File::open(path).map_err(|e| InputError::new(e.to_string()))?;
            read_bounded(file)?
        }
        None => read_bounded(std::io::stdin().lock())?,
    };
    let json = source
        .path
        .as_deref()
        .and_then(Path::extension)
        .is_some_and(|e| e == "json");
    parse(&bytes, json)
}

fn too_large() -> InputError {
    InputError::new(format!(
        "the file is larger than {} MiB and was not read",
        MAX_FILE >> 20
    ))
}

fn read_bounded(reader: impl Read) -> Result<Vec<u8>, InputError> {
    let mut bytes = Vec::new();
    reader
        .take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| InputError::new(e.to_string()))?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(too_large());
    }
    Ok(bytes)
}

/// Parses the text of one source: JSON when `json` is set or the text starts with `{` or `[`,
/// multi-document YAML otherwise.
pub fn parse(bytes: &[u8], json: bool) -> Result<Vec<Object>, InputError> {
    if bytes.contains(&0) {
        return Err(InputError::new("binary file (it holds NUL bytes); skipped"));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| InputError {
        line: line_of_offset(bytes, e.valid_up_to()),
        message: "not UTF-8 text; skipped".to_owned(),
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let trimmed = text.trim_start();
    let mut objects = Vec::new();
    if json || trimmed.starts_with('{') || trimmed.starts_with('[') {
        let value: Value = serde_json::from_str(text).map_err(|e| InputError {
            line: e.line() as u64,
            message: format!("invalid JSON: {e}"),
        })?;
        flatten(value, 0, line_of_json(text), &mut objects);
        return Ok(objects);
    }
    let docs: Vec<serde_saphyr::Spanned<Value>> =
        serde_saphyr::from_str_multiple_with_options(text, yaml_options()).map_err(|e| {
            InputError {
                line: e.location().map(|l| l.line()).unwrap_or(0),
                message: format!("invalid YAML: {}", first_line(&e.to_string())),
            }
        })?;
    for (document, doc) in docs.into_iter().enumerate() {
        let line = doc.referenced.line().max(1);
        flatten(doc.value, document, line, &mut objects);
    }
    Ok(objects)
}

fn line_of_json(text: &str) -> u64 {
    let skipped = text.len() - text.trim_start().len();
    line_of_offset(text.as_bytes(), skipped)
}

/// The 1-based line of a byte offset.
fn line_of_offset(bytes: &[u8], offset: usize) -> u64 {
    let end = offset.min(bytes.len());
    1 + bytes
        .get(..end)
        .unwrap_or_default()
        .iter()
        .filter(|b| **b == b'\n')
        .count() as u64
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// The YAML budget: a manifest needs no more than this, and an alias bomb or a nesting bomb
/// stops here instead of eating memory.
fn yaml_options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    let mut budget = options.budget.clone().unwrap_or_default();
    budget.max_depth = MAX_YAML_DEPTH;
    budget.max_aliases = 10_000;
    budget.max_anchors = 10_000;
    budget.max_documents = 100_000;
    budget.max_nodes = 4_000_000;
    budget.max_events = 10_000_000;
    options.budget = Some(budget);
    options.alias_limits.max_total_replayed_events = 200_000;
    options.alias_limits.max_replay_stack_depth = 32;
    options.with_snippet = false;
    options
}

/// Adds a document's objects: the document itself, or the items of a `List`.
fn flatten(doc: Value, document: usize, line: u64, out: &mut Vec<Object>) {
    let is_list = doc
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k == "List" || k.ends_with("List"))
        && doc.get("items").is_some_and(Value::is_array);
    if is_list {
        if let Value::Object(mut map) = doc
            && let Some(Value::Array(items)) = map.remove("items")
        {
            for item in items {
                flatten(item, document, line, out);
            }
        }
        return;
    }
    if doc.is_object() {
        out.push(Object {
            document,
            line,
            value: doc,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_keep_their_line() {
        let text = "# comment\napiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\n\n---\napiVersion: v1\nkind: List\nitems:\n- {kind: Pod, metadata: {name: b}}\n- {kind: Pod, metadata: {name: c}}\n---\n# c\nkind: ConfigMap\ndata:\n  x: |\n    ---\n    not a separator\n";
        let objects = parse(text.as_bytes(), false).unwrap();
        let got: Vec<(usize, u64, &str)> = objects
            .iter()
            .map(|o| {
                (
                    o.document,
                    o.line,
                    o.value["metadata"]["name"]
                        .as_str()
                        .unwrap_or(o.value["kind"].as_str().unwrap()),
                )
            })
            .collect();
        assert_eq!(got[0], (0, 2, "a"));
        assert_eq!(got[1].1, 8);
        assert_eq!(got[2].1, 8);
        assert_eq!(got[3].1, 15);
        assert_eq!(got[3].2, "ConfigMap");
        assert_eq!(got.len(), 4);
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let err = parse(b"kind: Pod\nmetadata:\n  name: [a\n", false).unwrap_err();
        assert!(err.line >= 3, "{err:?}");
    }

    #[test]
    fn bombs_and_binary_are_refused() {
        std::thread::Builder::new()
            .stack_size(STACK_SIZE)
            .spawn(bombs)
            .unwrap()
            .join()
            .unwrap();
    }

    fn bombs() {
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 0..9 {
            let prev = if i == 0 {
                "a".to_owned()
            } else {
                format!("b{}", i - 1)
            };
            bomb.push_str(&format!(
                "b{i}: &b{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
        }
        assert!(parse(bomb.as_bytes(), false).is_err());
        assert!(parse(b"kind: Pod\0\0", false).is_err());
        assert!(parse(&[0xff, 0xfe, b'a'], false).is_err());
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert!(parse(deep.as_bytes(), true).is_err());
        let deep_yaml = "- ".repeat(1_000) + "x\n";
        assert!(parse(deep_yaml.as_bytes(), false).is_err());
        let ok_yaml = "- ".repeat(120) + "x\n";
        assert!(parse(ok_yaml.as_bytes(), false).is_ok());
    }
}
