//! Kubernetes strategic merge patch (`application/strategic-merge-patch+json`).
//!
//! [`apply`] merges a patch into an object the way kube-apiserver's
//! `strategicpatch.StrategicMergeMapPatch` does, so that `kubectl apply`
//! (client-side three-way patches) and `kubectl patch` give the same result as
//! against kube-apiserver:
//!
//! - objects merge recursively and a `null` member deletes the key;
//! - lists merge as [`merge_keys::Schema`] says: atomic lists are replaced,
//!   keyed lists merge element by element on their merge key, scalar lists
//!   merge as ordered sets;
//! - the directives `$patch` (`replace`/`delete` on objects, `delete`/`replace`
//!   elements in keyed lists), `$retainKeys`, `$setElementOrder/<field>` and
//!   `$deleteFromPrimitiveList/<field>` are honoured and never left in the
//!   result; any other key starting with `$` is rejected;
//! - merged lists are ordered like upstream: `$setElementOrder` first, then the
//!   order of the patch list, then the order of the live list, with the exact
//!   tie-breaking of upstream (including Go's `sort.SliceStable`).
//!
//! It does not: look up schemas itself (callers pick one with
//! [`merge_keys::Schema::for_kind`] and answer 415 without one), validate or
//! default the result, check `resourceVersion` preconditions, or compute
//! patches (no two- or three-way diff).
//!
//! Deliberate differences from upstream, all on inputs kubectl never sends:
//! values the patch inserts wholesale (new fields, new list elements, atomic
//! lists, `$patch: replace` objects) lose their `null` members and nested
//! directives, as a typed round trip would drop them anyway; a literal `null`
//! patch is rejected (upstream treats it as empty); unknown `$` keys are
//! errors anywhere in the patch; and unknown keys are not checked against the
//! kind's fields (upstream errors on an unknown field only when both sides
//! hold an object or list there).
//!
//! Checked against the 260 application cases of upstream's `patch_test.go`
//! (run with an equivalent of its test struct's schema), all of which agree.

use serde_json::{Map, Value};

use super::merge_keys::{self, ListStrategy};

mod lists;
#[cfg(test)]
mod tests;

/// Deepest nesting of objects and lists accepted in the original or the patch.
const MAX_DEPTH: usize = 100;

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";

/// Why a strategic merge patch could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// The patch is not a JSON object.
    #[error("patch must be a JSON object")]
    PatchNotAnObject,
    /// The original document is neither a JSON object nor `null`.
    #[error("original document must be a JSON object")]
    OriginalNotAnObject,
    /// The original or the patch nests objects and lists too deeply.
    #[error("document nests objects and lists deeper than {limit} levels")]
    TooDeep {
        /// The nesting limit.
        limit: usize,
    },
    /// A key starting with `$` that is not a known directive.
    #[error("unknown patch directive {directive:?} at {path}")]
    UnknownDirective {
        /// The offending key.
        directive: String,
        /// Where it was found.
        path: String,
    },
    /// `$patch` has a value this position does not accept.
    #[error("invalid $patch value {value} at {path}")]
    InvalidPatchValue {
        /// The rejected value, as JSON.
        value: String,
        /// Where it was found.
        path: String,
    },
    /// A known directive with an unusable value.
    #[error("malformed {directive} directive at {path}: {reason}")]
    MalformedDirective {
        /// The directive.
        directive: &'static str,
        /// Where it was found.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An element of a keyed list has no merge key.
    #[error("element of list {path} has no merge key {key:?}")]
    MissingMergeKey {
        /// The list.
        path: String,
        /// The merge key.
        key: &'static str,
    },
    /// A list whose contents cannot be merged as its strategy requires.
    #[error("cannot merge list {path}: {reason}")]
    BadList {
        /// The list.
        path: String,
        /// Why.
        reason: &'static str,
    },
    /// The patch list's order contradicts its `$setElementOrder` directive.
    #[error("order of list {path} in the patch does not match its $setElementOrder directive")]
    OrderMismatch {
        /// The list.
        path: String,
    },
}

/// Applies a strategic merge `patch` to `original` and returns the merged
/// document; `schema` tells how each list of the kind merges.
///
/// `original` may be `null` (treated as `{}`); `patch` must be an object.
pub fn apply(
    original: &Value,
    patch: &Value,
    schema: &merge_keys::Schema,
) -> Result<Value, PatchError> {
    let Value::Object(patch) = patch else {
        return Err(PatchError::PatchNotAnObject);
    };
    if too_deep(std::iter::once(original), 1) || too_deep(patch.values(), 2) {
        return Err(PatchError::TooDeep { limit: MAX_DEPTH });
    }
    let original = match original {
        Value::Object(map) => map.clone(),
        Value::Null => Map::new(),
        _ => return Err(PatchError::OriginalNotAnObject),
    };
    let mut merger = Merger {
        schema,
        path: Vec::new(),
    };
    merger.merge_map(original, patch.clone()).map(Value::Object)
}

/// Whether any of `roots`, found at nesting level `depth`, nests objects and
/// lists beyond [`MAX_DEPTH`] levels; measured without recursion.
fn too_deep<'v>(roots: impl Iterator<Item = &'v Value>, depth: usize) -> bool {
    let mut stack: Vec<(&Value, usize)> = roots.map(|root| (root, depth)).collect();
    while let Some((value, depth)) = stack.pop() {
        let container = value.is_array() || value.is_object();
        if container && depth > MAX_DEPTH {
            return true;
        }
        match value {
            Value::Array(items) => stack.extend(items.iter().map(|item| (item, depth + 1))),
            Value::Object(map) => stack.extend(map.values().map(|item| (item, depth + 1))),
            _ => {}
        }
    }
    false
}

/// Whether list elements are objects (merged by key) or scalars (merged as a set).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Object,
    Scalar,
}

/// The state of one [`apply`] call: the schema and the object path being merged.
struct Merger<'s> {
    schema: &'s merge_keys::Schema,
    /// Object field names from the root to the current map; list indexes skipped.
    path: Vec<String>,
}

impl Merger<'_> {
    /// The current path, for error messages.
    fn here(&self) -> String {
        if self.path.is_empty() {
            "<root>".to_owned()
        } else {
            self.path.join(".")
        }
    }

    /// The current path extended by `field`, for error messages.
    fn at(&self, field: &str) -> String {
        if self.path.is_empty() {
            field.to_owned()
        } else {
            format!("{}.{field}", self.path.join("."))
        }
    }

    /// How the list `field` of the current map merges.
    fn strategy(&self, field: &str) -> ListStrategy {
        let mut path: Vec<&str> = self.path.iter().map(String::as_str).collect();
        path.push(field);
        self.schema.list_strategy(&path)
    }

    /// Merges `patch` into `original` (upstream `mergeMap`).
    fn merge_map(
        &mut self,
        mut original: Map<String, Value>,
        mut patch: Map<String, Value>,
    ) -> Result<Map<String, Value>, PatchError> {
        if let Some(directive) = patch.remove(PATCH) {
            return match directive.as_str() {
                Some("replace") => self.sanitize_map(patch),
                Some("delete") => Ok(Map::new()),
                _ => Err(PatchError::InvalidPatchValue {
                    value: directive.to_string(),
                    path: self.here(),
                }),
            };
        }
        for key in patch.keys() {
            self.check_key(key)?;
        }
        if let Some(retain) = patch.remove(RETAIN_KEYS) {
            self.retain_keys(&mut original, &patch, &retain)?;
        }
        let ordered: Vec<String> = patch
            .keys()
            .filter(|key| directive_target(key, SET_ELEMENT_ORDER).is_some())
            .cloned()
            .collect();
        for key in ordered {
            if let (Some(order), Some(field)) = (
                patch.remove(&key),
                directive_target(&key, SET_ELEMENT_ORDER),
            ) {
                self.set_element_order(&mut original, &mut patch, field, order)?;
            }
        }
        // Deletions from primitive lists run after the merges, as they do
        // upstream when the list also has a `$setElementOrder`.
        let mut deletions = Vec::new();
        for (key, value) in patch {
            match directive_target(&key, DELETE_FROM_PRIMITIVE_LIST) {
                Some(field) => deletions.push((field.to_owned(), value)),
                None => self.merge_field(&mut original, key, value, false)?,
            }
        }
        for (field, value) in deletions {
            self.merge_field(&mut original, field, value, true)?;
        }
        Ok(original)
    }

    /// Rejects keys that look like directives but are not known ones.
    fn check_key(&self, key: &str) -> Result<(), PatchError> {
        let known = !key.starts_with('$')
            || key == RETAIN_KEYS
            || directive_target(key, SET_ELEMENT_ORDER).is_some()
            || directive_target(key, DELETE_FROM_PRIMITIVE_LIST).is_some();
        if known {
            Ok(())
        } else {
            Err(PatchError::UnknownDirective {
                directive: key.to_owned(),
                path: self.here(),
            })
        }
    }

    /// Applies `$retainKeys`: every field the patch sets must be listed, and
    /// fields of `original` that are not listed are cleared.
    fn retain_keys(
        &self,
        original: &mut Map<String, Value>,
        patch: &Map<String, Value>,
        retain: &Value,
    ) -> Result<(), PatchError> {
        let malformed = |reason| PatchError::MalformedDirective {
            directive: RETAIN_KEYS,
            path: self.here(),
            reason,
        };
        let Value::Array(retain) = retain else {
            return Err(malformed("value must be a list"));
        };
        let listed = |key: &str| retain.iter().any(|item| item.as_str() == Some(key));
        for (key, value) in patch {
            let exempt = value.is_null()
                || key.starts_with(SET_ELEMENT_ORDER)
                || key.starts_with(DELETE_FROM_PRIMITIVE_LIST);
            if !exempt && !listed(key) {
                return Err(malformed("the patch sets a field the list does not name"));
            }
        }
        original.retain(|key, _| listed(key));
        Ok(())
    }

    /// Merges one patch member into `original` (the loop body of upstream
    /// `mergeMap`); `deletion` marks a `$deleteFromPrimitiveList` list.
    fn merge_field(
        &mut self,
        original: &mut Map<String, Value>,
        key: String,
        value: Value,
        deletion: bool,
    ) -> Result<(), PatchError> {
        if value.is_null() {
            original.remove(&key);
            return Ok(());
        }
        let same_kind = original
            .get(&key)
            .map(|current| std::mem::discriminant(current) == std::mem::discriminant(&value));
        match same_kind {
            Some(true) => {}
            // Absent or of another JSON type: the patch value wins.
            None | Some(false) => {
                if !deletion {
                    match self.sanitize(value)? {
                        Some(value) => original.insert(key, value),
                        None => original.remove(&key),
                    };
                }
                return Ok(());
            }
        }
        let Some(slot) = original.get_mut(&key) else {
            return Ok(());
        };
        let current = std::mem::take(slot);
        let merged = match (current, value) {
            (Value::Object(current), Value::Object(value)) => {
                self.path.push(key.clone());
                let merged = self.merge_map(current, value);
                self.path.pop();
                Value::Object(merged?)
            }
            (Value::Array(current), Value::Array(value)) => {
                let strategy = self.strategy(&key);
                self.path.push(key.clone());
                let merged = self.merge_list(current, value, strategy, deletion);
                self.path.pop();
                Value::Array(merged?)
            }
            (_, value) => value,
        };
        original.insert(key, merged);
        Ok(())
    }

    /// Makes a patch value fit to insert as is: `null` members are dropped,
    /// objects carrying `$patch` are dropped (like upstream
    /// `removeDirectives`), and other directives are removed. `None` when the
    /// value itself is dropped.
    fn sanitize(&self, value: Value) -> Result<Option<Value>, PatchError> {
        match value {
            Value::Object(map) if is_directive(&map) => Ok(None),
            Value::Object(map) => self.sanitize_map(map).map(|map| Some(Value::Object(map))),
            Value::Array(items) => self
                .sanitize_list(items)
                .map(|items| Some(Value::Array(items))),
            scalar => Ok(Some(scalar)),
        }
    }

    /// [`Self::sanitize`] for the members of an object.
    fn sanitize_map(&self, map: Map<String, Value>) -> Result<Map<String, Value>, PatchError> {
        let mut clean = Map::new();
        for (key, value) in map {
            self.check_key(&key)?;
            if value.is_null() || key.starts_with('$') {
                continue;
            }
            if let Some(value) = self.sanitize(value)? {
                clean.insert(key, value);
            }
        }
        Ok(clean)
    }

    /// [`Self::sanitize`] for the elements of a list.
    fn sanitize_list(&self, items: Vec<Value>) -> Result<Vec<Value>, PatchError> {
        let mut clean = Vec::with_capacity(items.len());
        for item in items {
            if let Some(item) = self.sanitize(item)? {
                clean.push(item);
            }
        }
        Ok(clean)
    }

    fn missing_key(&self, key: &'static str) -> PatchError {
        PatchError::MissingMergeKey {
            path: self.here(),
            key,
        }
    }

    fn bad_list(&self, reason: &'static str) -> PatchError {
        PatchError::BadList {
            path: self.here(),
            reason,
        }
    }
}

/// The field a `<prefix>/<field>` directive key names.
fn directive_target<'k>(key: &'k str, prefix: &str) -> Option<&'k str> {
    key.split_once('/')
        .filter(|(head, _)| *head == prefix)
        .map(|(_, field)| field)
}

/// Whether an object carries a `$patch` directive.
fn is_directive(map: &Map<String, Value>) -> bool {
    map.contains_key(PATCH)
}
