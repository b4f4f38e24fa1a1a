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
        // JSON is YAML: the items' lines come from the same light pass (or, if the YAML
        // reader declines the text, the document's line is used).
        let items = if is_list(&value) {
            item_lines(text).and_then(|mut l| (l.len() == 1).then(|| l.swap_remove(0).0))
        } else {
            None
        };
        flatten(
            value,
            0,
            line_of_json(text),
            items.as_deref().unwrap_or_default(),
            &mut objects,
        );
        return Ok(objects);
    }
    let docs: Vec<serde_saphyr::Spanned<Value>> =
        serde_saphyr::from_str_multiple_with_options(text, yaml_options()).map_err(|e| {
            InputError {
                line: e.location().map(|l| l.line()).unwrap_or(0),
                message: format!("invalid YAML: {}", first_line(&e.to_string())),
            }
        })?;
    // The items of a `List` are reported at their own lines: a second, light pass over a file
    // that holds one reads where each item starts (or nothing, and the List's line is used).
    let item_lines = if docs.iter().any(|d| is_list(&d.value)) {
        item_lines(text).filter(|lines| lines.len() == docs.len())
    } else {
        None
    };
    for (document, doc) in docs.into_iter().enumerate() {
        let line = doc.referenced.line().max(1);
        let items = item_lines
            .as_ref()
            .and_then(|l| l.get(document))
            .map(|l| l.0.as_slice())
            .unwrap_or_default();
        flatten(doc.value, document, line, items, &mut objects);
    }
    Ok(objects)
}

/// For each document of `text`, the lines where the items of its `items` sequence start;
/// `None` if the text cannot be read as YAML under the budget.
fn item_lines(text: &str) -> Option<Vec<ItemLines>> {
    serde_saphyr::from_str_multiple_with_options::<ItemLines, Vec<ItemLines>>(text, yaml_options())
        .ok()
}

/// The line where each item of a document's `items` sequence starts; empty for a document that
/// has none. Reads any document without failing, and keeps nothing but the lines.
struct ItemLines(Vec<u64>);

/// The lines where the elements of a sequence start; empty when the value is not a sequence.
struct SeqLines(Vec<u64>);

/// Whether a mapping key is `items` (a key of any other value or type is not).
struct IsItems(bool);

/// Visitor methods for the scalars, which hold no lines.
macro_rules! no_lines {
    ($ty:ident) => {
        fn visit_bool<E>(self, _: bool) -> Result<$ty, E> {
            Ok($ty(Vec::new()))
        }
        fn visit_i64<E>(self, _: i64) -> Result<$ty, E> {
            Ok($ty(Vec::new()))
        }
        fn visit_u64<E>(self, _: u64) -> Result<$ty, E> {
            Ok($ty(Vec::new()))
        }
        fn visit_f64<E>(self, _: f64) -> Result<$ty, E> {
            Ok($ty(Vec::new()))
        }
        fn visit_str<E>(self, _: &str) -> Result<$ty, E> {
            Ok($ty(Vec::new()))
        }
        fn visit_bytes<E>(self, _: &[u8]) -> Result<$ty, E> {
            Ok($ty(Vec::new()))
        }
        fn visit_unit<E>(self) -> Result<$ty, E> {
            Ok($ty(Vec::new()))
        }
        fn visit_none<E>(self) -> Result<$ty, E> {
            Ok($ty(Vec::new()))
        }
    };
}

impl<'de> serde::Deserialize<'de> for ItemLines {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ItemLines;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a YAML document")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<ItemLines, A::Error> {
                let mut lines = Vec::new();
                while let Some(IsItems(items)) = map.next_key()? {
                    if items {
                        lines = map.next_value::<SeqLines>()?.0;
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                Ok(ItemLines(lines))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<ItemLines, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(ItemLines(Vec::new()))
            }
            no_lines!(ItemLines);
        }
        d.deserialize_any(V)
    }
}

impl<'de> serde::Deserialize<'de> for SeqLines {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = SeqLines;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a YAML value")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<SeqLines, A::Error> {
                let mut lines = Vec::new();
                while let Some(item) =
                    seq.next_element::<serde_saphyr::Spanned<serde::de::IgnoredAny>>()?
                {
                    lines.push(item.referenced.line().max(1));
                }
                Ok(SeqLines(lines))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<SeqLines, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(SeqLines(Vec::new()))
            }
            no_lines!(SeqLines);
        }
        d.deserialize_any(V)
    }
}

impl<'de> serde::Deserialize<'de> for IsItems {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let key = Value::deserialize(d)?;
        Ok(IsItems(key.as_str() == Some("items")))
    }
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

/// Whether a document is a `List` (its `kind` is `List` or ends with it, and it has `items`).
fn is_list(doc: &Value) -> bool {
    doc.get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k == "List" || k.ends_with("List"))
        && doc.get("items").is_some_and(Value::is_array)
}

/// Adds a document's objects: the document itself, or the items of a `List`, each at its line in
/// `item_lines` when known (the document's `line` otherwise).
fn flatten(doc: Value, document: usize, line: u64, item_lines: &[u64], out: &mut Vec<Object>) {
    if is_list(&doc) {
        if let Value::Object(mut map) = doc
            && let Some(Value::Array(items)) = map.remove("items")
        {
            for (i, item) in items.into_iter().enumerate() {
                let at = item_lines.get(i).copied().unwrap_or(line);
                flatten(item, document, at, &[], out);
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
        // The items of a List, each at its own line.
        // (The empty document between them is not counted.)
        assert_eq!((got[1].0, got[1].1, got[1].2), (1, 11, "b"));
        assert_eq!((got[2].0, got[2].1, got[2].2), (1, 12, "c"));
        assert_eq!(got[3].1, 15);
        assert_eq!(got[3].2, "ConfigMap");
        assert_eq!(got.len(), 4);
    }

    #[test]
    fn list_items_keep_their_line_in_any_surrounding() {
        // Block-style items, a scalar document and an empty one (not counted) before the List,
        // keys of other types, an `items` that is not a list in another document, an item that
        // is not an object, and an alias (reported where it is used). An anchored item starts
        // at its first key, the line after the anchor.
        let text = "just a scalar\n---\n---\nkind: Thing\nitems: {a: 1}\n1: x\n---\n\
                    kind: PodList\nmetadata: {}\nitems:\n  - &p\n    kind: Pod\n    metadata:\n\
                    \x20     name: d\n  - 7\n  - kind: Pod\n    metadata: {name: e}\n  - *p\n";
        let objects = parse(text.as_bytes(), false).unwrap();
        let got: Vec<(usize, u64, String)> = objects
            .iter()
            .map(|o| {
                let name = o.value["metadata"]["name"].as_str().unwrap_or("-");
                (o.document, o.line, name.to_owned())
            })
            .collect();
        assert_eq!(
            got,
            [
                (1, 4, "-".to_owned()),
                (2, 12, "d".to_owned()),
                (2, 16, "e".to_owned()),
                (2, 18, "d".to_owned()),
            ]
        );
    }

    #[test]
    fn json_list_items_keep_their_line() {
        let text =
            "\n{\"kind\": \"List\", \"items\": [\n{\"kind\": \"Pod\"},\n{\"kind\": \"Pod\"}]}";
        let objects = parse(text.as_bytes(), false).unwrap();
        assert_eq!(objects.iter().map(|o| o.line).collect::<Vec<_>>(), [3, 4]);
        // Tabs between JSON tokens are read by the YAML pass too.
        let text = "{\"kind\":\t\"List\",\n\"items\": [{\"kind\": \"Pod\"},\n{\"kind\": \"Pod\"}]}";
        let objects = parse(text.as_bytes(), true).unwrap();
        let lines: Vec<u64> = objects.iter().map(|o| o.line).collect();
        assert_eq!(lines, [2, 3]);
        // Text the YAML reader declines (a duplicate key; JSON takes the last) falls back to
        // the document's line.
        let text = "{\"kind\": \"List\", \"kind\": \"List\",\n\"items\": [{\"kind\": \"Pod\"},\n{\"kind\": \"Pod\"}]}";
        let objects = parse(text.as_bytes(), true).unwrap();
        assert_eq!(objects.iter().map(|o| o.line).collect::<Vec<_>>(), [1, 1]);
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
