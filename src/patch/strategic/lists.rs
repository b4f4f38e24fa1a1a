//! List merging and ordering for [`super::apply`] (upstream `mergeSlice`,
//! `mergePatchIntoOriginal` and `normalizeElementOrder`).

use serde_json::{Map, Value};

use super::{Kind, ListStrategy, Merger, PATCH, PatchError, SET_ELEMENT_ORDER, is_directive};

impl Merger<'_> {
    /// Merges a list field by its strategy (upstream `mergeSliceHandler`);
    /// `self.path` ends with the field.
    pub(super) fn merge_list(
        &mut self,
        original: Vec<Value>,
        patch: Vec<Value>,
        strategy: ListStrategy,
        deletion: bool,
    ) -> Result<Vec<Value>, PatchError> {
        self.merge_list_field(original, patch, strategy, deletion)
            .map(|(items, _)| items)
    }

    /// [`Self::merge_list`], also returning the live list's identities as
    /// upstream's in-place edits leave them, see [`Window`].
    fn merge_list_field(
        &mut self,
        original: Vec<Value>,
        patch: Vec<Value>,
        strategy: ListStrategy,
        deletion: bool,
    ) -> Result<(Vec<Value>, Option<Window>), PatchError> {
        let key = match strategy {
            ListStrategy::MergeByKey(key) => Some(key),
            ListStrategy::MergePrimitives => None,
            ListStrategy::Replace if deletion => None,
            ListStrategy::Replace => return Ok((self.sanitize_list(patch)?, None)),
        };
        self.merge_slice(original, patch, key, deletion)
    }

    /// Merges two lists with merge semantics (upstream `mergeSlice`).
    fn merge_slice(
        &mut self,
        original: Vec<Value>,
        patch: Vec<Value>,
        key: Option<&'static str>,
        deletion: bool,
    ) -> Result<(Vec<Value>, Option<Window>), PatchError> {
        if original.is_empty() && patch.is_empty() {
            return Ok((original, None));
        }
        let kind = self.element_kind(&original, &patch)?;
        if kind == Kind::Scalar {
            if deletion {
                let kept = original
                    .into_iter()
                    .filter(|item| !patch.iter().any(|gone| json_eq(item, gone)))
                    .collect();
                return Ok((kept, None));
            }
            let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
            for item in original.iter().chain(&patch) {
                if !merged.iter().any(|seen| json_eq(seen, item)) {
                    merged.push(item.clone());
                }
            }
            let merged = self.enforce_order(merged, &patch, &original, key, kind)?;
            return Ok((merged, None));
        }
        let Some(key) = key else {
            return Err(self.bad_list("a list of objects needs a merge key"));
        };
        let mut window = Window::new(&original, key);
        let mut original = original;
        let mut plain = Vec::with_capacity(patch.len());
        let mut replace = false;
        for item in patch {
            let Value::Object(item) = item else {
                return Err(self.bad_list("list elements are not all objects"));
            };
            let Some(directive) = item.get(PATCH) else {
                plain.push(item);
                continue;
            };
            match directive.as_str() {
                Some("delete") => {
                    let Some(gone) = item.get(key) else {
                        return Err(self.missing_key(key));
                    };
                    original.retain(|current| !has_key_value(current, key, gone));
                    window.delete(gone);
                }
                Some("replace") => replace = true,
                Some("merge") => {
                    return Err(self.bad_list("$patch: merge is not supported in lists"));
                }
                _ => {
                    return Err(PatchError::InvalidPatchValue {
                        value: directive.to_string(),
                        path: self.here(),
                    });
                }
            }
        }
        if replace {
            let replacement = plain.into_iter().map(Value::Object).collect();
            original = self.sanitize_list(replacement)?;
            plain = Vec::new();
        }
        let patch_ids = plain
            .iter()
            .map(|item| item.get(key).cloned().ok_or_else(|| self.missing_key(key)))
            .collect::<Result<Vec<_>, _>>()?;
        let server_ids = self.ids(&original, Some(key), kind)?;
        let mut merged = original;
        for item in plain {
            let Some(id) = item.get(key) else {
                return Err(self.missing_key(key));
            };
            let slot = merged
                .iter_mut()
                .find(|current| has_key_value(current, key, id));
            match slot {
                Some(slot) => {
                    let current = match std::mem::take(slot) {
                        Value::Object(current) => current,
                        _ => Map::new(),
                    };
                    *slot = Value::Object(self.merge_map(current, item)?);
                }
                None => {
                    window.append(id);
                    if let Some(item) = self.sanitize(Value::Object(item))? {
                        merged.push(item);
                    }
                }
            }
        }
        let merged = self.enforce_order_by_ids(merged, &patch_ids, &server_ids, Some(key), kind)?;
        Ok((merged, Some(window)))
    }

    /// Handles `$setElementOrder/<field>` together with the patch's `field`
    /// (upstream `mergePatchIntoOriginal`).
    pub(super) fn set_element_order(
        &mut self,
        original: &mut Map<String, Value>,
        patch: &mut Map<String, Value>,
        field: &str,
        order: Value,
    ) -> Result<(), PatchError> {
        let malformed = |this: &Self, reason| PatchError::MalformedDirective {
            directive: SET_ELEMENT_ORDER,
            path: this.at(field),
            reason,
        };
        let Value::Array(order) = order else {
            return Err(malformed(self, "value must be a list"));
        };
        let current = match original.remove(field) {
            None => None,
            Some(Value::Array(items)) => Some(items),
            Some(_) => return Err(malformed(self, "the original field is not a list")),
        };
        let patched = match patch.remove(field) {
            None => None,
            Some(Value::Array(items)) => Some(items),
            Some(_) => return Err(malformed(self, "the patch field is not a list")),
        };
        let strategy = self.strategy(field);
        let key = match strategy {
            ListStrategy::MergeByKey(key) => Some(key),
            _ => None,
        };
        self.path.push(field.to_owned());
        let result = self.order_field(current, patched, &order, strategy, key);
        self.path.pop();
        if let Some(list) = result? {
            original.insert(field.to_owned(), Value::Array(list));
        }
        Ok(())
    }

    /// The body of [`Self::set_element_order`], with `self.path` at the list.
    fn order_field(
        &mut self,
        current: Option<Vec<Value>>,
        patched: Option<Vec<Value>>,
        order: &[Value],
        strategy: ListStrategy,
        key: Option<&'static str>,
    ) -> Result<Option<Vec<Value>>, PatchError> {
        self.check_patch_order(patched.as_deref().unwrap_or_default(), order, key)?;
        if current.is_none() && patched.is_none() {
            return Ok(None);
        }
        let kind = self.element_kind(
            current.as_deref().unwrap_or_default(),
            patched.as_deref().unwrap_or_default(),
        )?;
        let server_ids = match &current {
            Some(current) => self.ids(current, key, kind)?,
            None => Vec::new(),
        };
        let order_ids = self.ids(order, key, kind)?;
        let (merged, window) = match (current, patched) {
            (Some(current), Some(patched)) => {
                self.merge_list_field(current, patched, strategy, false)?
            }
            (Some(current), None) => (current, None),
            (None, Some(patched)) => (self.sanitize_list(patched)?, None),
            (None, None) => return Ok(None),
        };
        let server_ids = match (window, key) {
            (Some(window), Some(key)) => window.into_ids().ok_or_else(|| self.missing_key(key))?,
            _ => server_ids,
        };
        self.enforce_order_by_ids(merged, &order_ids, &server_ids, key, kind)
            .map(Some)
    }

    /// Checks that the patch list follows `$setElementOrder` (upstream
    /// `validatePatchWithSetOrderList`): its elements, less deletions and
    /// directives, must appear in the order list in the same order.
    fn check_patch_order(
        &self,
        patched: &[Value],
        order: &[Value],
        key: Option<&'static str>,
    ) -> Result<(), PatchError> {
        if patched.is_empty() || order.is_empty() {
            return Ok(());
        }
        let mut wanted = Vec::with_capacity(patched.len());
        for item in patched {
            match (key, item) {
                (_, Value::Object(map)) if is_directive(map) => {}
                (Some(_), Value::Object(_)) | (None, _) => wanted.push(item),
                (Some(_), _) => return Err(self.bad_list("list elements are not all objects")),
            }
        }
        let mut wanted = wanted.into_iter().peekable();
        for candidate in order {
            let Some(next) = wanted.peek() else {
                return Ok(());
            };
            let same = match key {
                None => json_eq(next, candidate),
                Some(key) => {
                    let left = next.get(key).ok_or_else(|| self.missing_key(key))?;
                    let right = candidate.get(key).ok_or_else(|| self.missing_key(key))?;
                    json_eq(left, right)
                }
            };
            if same {
                wanted.next();
            }
        }
        match wanted.peek() {
            None => Ok(()),
            Some(_) => Err(PatchError::OrderMismatch { path: self.here() }),
        }
    }

    /// The common element kind of two lists (upstream `sliceElementType`).
    fn element_kind(&self, first: &[Value], second: &[Value]) -> Result<Kind, PatchError> {
        let mut items = first.iter().chain(second);
        let Some(head) = items.next() else {
            return Err(self.bad_list("no elements in any of the lists"));
        };
        if head.is_array() {
            return Err(self.bad_list("lists of lists are not supported"));
        }
        let tag = std::mem::discriminant(head);
        if head.is_null() || items.any(|item| std::mem::discriminant(item) != tag) {
            return Err(self.bad_list("list element types are not identical"));
        }
        Ok(if head.is_object() {
            Kind::Object
        } else {
            Kind::Scalar
        })
    }

    /// The identities used for ordering: the merge-key values of objects, or
    /// the scalars themselves.
    fn ids(
        &self,
        items: &[Value],
        key: Option<&'static str>,
        kind: Kind,
    ) -> Result<Vec<Value>, PatchError> {
        items
            .iter()
            .map(|item| self.id(item, key, kind).cloned())
            .collect()
    }

    /// The identity of one element, see [`Self::ids`].
    fn id<'v>(
        &self,
        item: &'v Value,
        key: Option<&'static str>,
        kind: Kind,
    ) -> Result<&'v Value, PatchError> {
        match (kind, key) {
            (Kind::Scalar, None) => Ok(item),
            (Kind::Scalar, Some(_)) => Err(self.bad_list("list elements are not all objects")),
            (Kind::Object, None) => Err(self.bad_list("a list of objects needs a merge key")),
            (Kind::Object, Some(key)) => match item {
                Value::Object(map) => map.get(key).ok_or_else(|| self.missing_key(key)),
                _ => Err(self.bad_list("list elements are not all objects")),
            },
        }
    }

    /// [`Self::enforce_order_by_ids`] with the identities taken from lists.
    fn enforce_order(
        &self,
        merged: Vec<Value>,
        patch: &[Value],
        server: &[Value],
        key: Option<&'static str>,
        kind: Kind,
    ) -> Result<Vec<Value>, PatchError> {
        let patch_ids = self.ids(patch, key, kind)?;
        let server_ids = self.ids(server, key, kind)?;
        self.enforce_order_by_ids(merged, &patch_ids, &server_ids, key, kind)
    }

    /// Orders a merged list (upstream `normalizeElementOrder`): elements named
    /// in `patch_order` follow it, the others follow `server_order`, and the
    /// two runs are interleaved by their places in `server_order`.
    fn enforce_order_by_ids(
        &self,
        merged: Vec<Value>,
        patch_order: &[Value],
        server_order: &[Value],
        key: Option<&'static str>,
        kind: Kind,
    ) -> Result<Vec<Value>, PatchError> {
        let mut patch_items = Vec::new();
        let mut server_items = Vec::new();
        for item in merged {
            let id = self.id(&item, key, kind)?;
            let rank_in_patch = rank(patch_order, id);
            let rank_in_server = rank(server_order, id);
            match rank_in_patch {
                Some(rank) => patch_items.push((Some(rank), rank_in_server, item)),
                None => server_items.push((rank_in_server, rank_in_server, item)),
            }
        }
        let before = |left: &(Option<usize>, Option<usize>, Value),
                      right: &(Option<usize>, Option<usize>, Value)| {
            match (left.0, right.0) {
                (Some(left), Some(right)) => left < right,
                _ => true,
            }
        };
        go_stable_sort(&mut patch_items, &before);
        go_stable_sort(&mut server_items, &before);
        let mut result = Vec::with_capacity(patch_items.len() + server_items.len());
        let mut left = server_items.into_iter().peekable();
        let mut right = patch_items.into_iter().peekable();
        loop {
            let take_left = match (left.peek(), right.peek()) {
                (Some((_, Some(l), _)), Some((_, Some(r), _))) => l < r,
                (Some(_), Some(_)) => false,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let next = if take_left { left.next() } else { right.next() };
            if let Some((_, _, item)) = next {
                result.push(item);
            }
        }
        Ok(result)
    }
}

/// The merge-key values of a live keyed list as upstream's in-place slice
/// edits leave them. Upstream orders a `$setElementOrder` list against the
/// live list's backing array after `mergeSlice` has edited it in place:
/// deletions shift later elements left (leaving the last slot as it was) and
/// appended elements overwrite the freed slots, while the slice keeps its
/// original length. Those writes always fit within the original length, so
/// the outcome does not depend on Go's slice capacities.
struct Window {
    /// Merge-key values, `None` for elements without one.
    ids: Vec<Option<Value>>,
    /// Length of the edited slice.
    len: usize,
}

impl Window {
    fn new(items: &[Value], key: &str) -> Self {
        let ids: Vec<Option<Value>> = items.iter().map(|item| item.get(key).cloned()).collect();
        let len = ids.len();
        Self { ids, len }
    }

    /// Removes every element whose key equals `gone`, one at a time.
    fn delete(&mut self, gone: &Value) {
        loop {
            let live = self.ids.get(..self.len).unwrap_or_default();
            let Some(at) = live
                .iter()
                .position(|id| id.as_ref().is_some_and(|id| json_eq(id, gone)))
            else {
                return;
            };
            for slot in at..self.len.saturating_sub(1) {
                if let Some(next) = self.ids.get(slot + 1).cloned()
                    && let Some(target) = self.ids.get_mut(slot)
                {
                    *target = next;
                }
            }
            self.len = self.len.saturating_sub(1);
        }
    }

    /// Appends an element with key value `id`.
    fn append(&mut self, id: &Value) {
        if let Some(slot) = self.ids.get_mut(self.len) {
            *slot = Some(id.clone());
        }
        self.len += 1;
    }

    /// The identities over the original length; `None` if one lacks a key.
    fn into_ids(self) -> Option<Vec<Value>> {
        self.ids.into_iter().collect()
    }
}

/// Whether `item` is an object whose `key` equals `value`.
fn has_key_value(item: &Value, key: &str, value: &Value) -> bool {
    item.get(key).is_some_and(|found| json_eq(found, value))
}

/// The first position of `id` in `order`.
fn rank(order: &[Value], id: &Value) -> Option<usize> {
    order.iter().position(|candidate| json_eq(candidate, id))
}

/// JSON equality where numbers compare by value, as Go's `float64` do.
fn json_eq(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Number(l), Value::Number(r)) => match (l.as_f64(), r.as_f64()) {
            (Some(l), Some(r)) => l == r,
            _ => l == r,
        },
        (Value::Array(l), Value::Array(r)) => {
            l.len() == r.len() && l.iter().zip(r).all(|(l, r)| json_eq(l, r))
        }
        (Value::Object(l), Value::Object(r)) => {
            l.len() == r.len()
                && l.iter()
                    .all(|(k, l)| r.get(k).is_some_and(|r| json_eq(l, r)))
        }
        _ => left == right,
    }
}

/// Go's `sort.SliceStable` (insertion-sorted blocks of 20 merged with
/// SymMerge), reproduced because upstream orders with a comparison that is
/// not a strict weak order, so only the same algorithm gives the same order.
pub(super) fn go_stable_sort<T>(items: &mut [T], less: &impl Fn(&T, &T) -> bool) {
    let n = items.len();
    let mut block = 20;
    let mut start = 0;
    while start + block <= n {
        insertion_sort(items, start, start + block, less);
        start += block;
    }
    insertion_sort(items, start, n, less);
    while block < n {
        let mut a = 0;
        while a + 2 * block <= n {
            sym_merge(items, a, a + block, a + 2 * block, less);
            a += 2 * block;
        }
        if a + block < n {
            sym_merge(items, a, a + block, n, less);
        }
        block *= 2;
    }
}

/// `less` applied to the elements at `i` and `j`.
fn less_at<T>(items: &[T], i: usize, j: usize, less: &impl Fn(&T, &T) -> bool) -> bool {
    match (items.get(i), items.get(j)) {
        (Some(x), Some(y)) => less(x, y),
        _ => false,
    }
}

/// Swaps two elements, ignoring out-of-range positions.
fn swap_at<T>(items: &mut [T], i: usize, j: usize) {
    if i < items.len() && j < items.len() {
        items.swap(i, j);
    }
}

fn insertion_sort<T>(items: &mut [T], a: usize, b: usize, less: &impl Fn(&T, &T) -> bool) {
    for i in a + 1..b {
        let mut j = i;
        while j > a && less_at(items, j, j - 1, less) {
            swap_at(items, j, j - 1);
            j -= 1;
        }
    }
}

/// Merges the sorted runs `a..m` and `m..b` in place (Kim & Kutzner's SymMerge).
fn sym_merge<T>(items: &mut [T], a: usize, m: usize, b: usize, less: &impl Fn(&T, &T) -> bool) {
    if m - a == 1 {
        // Insert items[a] before the first element of m..b not less than it.
        let (mut lo, mut hi) = (m, b);
        while lo < hi {
            let h = lo + (hi - lo) / 2;
            if less_at(items, h, a, less) {
                lo = h + 1;
            } else {
                hi = h;
            }
        }
        for k in a..lo.saturating_sub(1) {
            swap_at(items, k, k + 1);
        }
        return;
    }
    if b - m == 1 {
        // Insert items[m] before the first element of a..m greater than it.
        let (mut lo, mut hi) = (a, m);
        while lo < hi {
            let h = lo + (hi - lo) / 2;
            if less_at(items, m, h, less) {
                hi = h;
            } else {
                lo = h + 1;
            }
        }
        for k in (lo + 1..=m).rev() {
            swap_at(items, k, k - 1);
        }
        return;
    }
    let mid = a + (b - a) / 2;
    let n = mid + m;
    let (mut start, mut r) = if m > mid { (n - b, mid) } else { (a, m) };
    let p = n - 1;
    while start < r {
        let c = start + (r - start) / 2;
        if less_at(items, p - c, c, less) {
            r = c;
        } else {
            start = c + 1;
        }
    }
    let end = n - start;
    if start < m
        && m < end
        && let Some(run) = items.get_mut(start..end)
    {
        run.rotate_left(m - start);
    }
    if a < start && start < mid {
        sym_merge(items, a, start, mid, less);
    }
    if mid < end && end < b {
        sym_merge(items, mid, end, b, less);
    }
}
