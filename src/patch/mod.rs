//! PATCH bodies: JSON patch (RFC 6902), JSON merge patch (RFC 7386) and Kubernetes strategic
//! merge patch, applied to an object's JSON.
//!
//! Server-side apply (`application/apply-patch+yaml`) is not offered; such requests get 415 with
//! the list of patch types that are.

pub mod merge_keys;
pub mod strategic;

use portcullis_api::status::FieldError;
use portcullis_api::{Resource, Status};
use serde_json::Value;

/// The patch formats kube-apiserver accepts that portcullis implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json`.
    Json,
    /// `application/merge-patch+json`.
    Merge,
    /// `application/strategic-merge-patch+json`.
    Strategic,
}

impl PatchType {
    /// The patch type of a request's media type.
    pub fn from_media_type(media: &str) -> Option<Self> {
        match media {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            _ => None,
        }
    }
}

/// Why a patch could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The patch document has the wrong shape.
    #[error("{0}")]
    Malformed(String),
    /// A JSON patch operation failed (e.g. a `test` op or a missing path).
    #[error("{0}")]
    Failed(String),
}

impl ApplyError {
    /// The `Status` kube-apiserver answers with: 400 for a malformed document, 422 for a
    /// patch that does not apply.
    pub fn into_status(self, resource: &Resource, name: &str) -> Status {
        match self {
            ApplyError::Malformed(m) => Status::bad_request(m),
            ApplyError::Failed(m) => {
                Status::invalid(resource, name, &[FieldError::invalid("", "", m)])
            }
        }
    }
}

/// Applies `patch` of `patch_type` to `original` (an object of `api_version`/`kind`).
pub fn apply(
    patch_type: PatchType,
    original: &Value,
    patch: &Value,
    api_version: &str,
    kind: &str,
) -> Result<Value, ApplyError> {
    match patch_type {
        PatchType::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApplyError::Malformed(format!("the JSON patch is malformed: {e}")))?;
            let mut doc = original.clone();
            json_patch::patch(&mut doc, &ops).map_err(|e| ApplyError::Failed(e.to_string()))?;
            Ok(doc)
        }
        PatchType::Merge => {
            if !patch.is_object() {
                return Err(ApplyError::Malformed(
                    "a merge patch must be a JSON object".to_owned(),
                ));
            }
            let mut doc = original.clone();
            json_patch::merge(&mut doc, patch);
            Ok(doc)
        }
        PatchType::Strategic => {
            let schema = merge_keys::Schema::for_kind(api_version, kind).ok_or_else(|| {
                ApplyError::Malformed(format!("strategic merge patch is not supported for {kind}"))
            })?;
            strategic::apply(original, patch, schema)
                .map_err(|e| ApplyError::Malformed(e.to_string()))
        }
    }
}
