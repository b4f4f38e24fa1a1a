//! Wire formats at the HTTP edge: reading bounded bodies, decoding JSON and YAML, content
//! negotiation, and writing objects and `Status` errors.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use portcullis_api::Status;
use serde_json::Value;

/// kube-apiserver's request body limit: 3 MiB.
pub(super) const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// Media types a create or update body may have.
pub(super) const OBJECT_MEDIA_TYPES: &[&str] = &[
    "application/json",
    "application/yaml",
    super::protobuf::MEDIA_TYPE,
];

/// A `Status` failure as an error value handlers can return with `?`.
#[derive(Debug)]
pub(super) struct ApiError(pub(super) Status);

impl From<Status> for ApiError {
    fn from(s: Status) -> Self {
        ApiError(s)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        status_response(&self.0)
    }
}

/// The result type of handlers.
pub(super) type ApiResult<T = Response> = Result<T, ApiError>;

/// Writes a `Status` with its code.
pub(super) fn status_response(status: &Status) -> Response {
    let code = StatusCode::from_u16(status.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json_response(code, &serde_json::to_vec(status).unwrap_or_default());
    // The audit record's responseStatus carries the message and reason.
    response
        .extensions_mut()
        .insert(super::audit::StatusBody(serde_json::to_value(status).ok()));
    response
}

/// Writes a JSON value with `code`.
pub(super) fn object_response(code: StatusCode, value: &Value) -> Response {
    json_response(code, &serde_json::to_vec(value).unwrap_or_default())
}

fn json_response(code: StatusCode, body: &[u8]) -> Response {
    let mut r = Response::new(Body::from(body.to_vec()));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// Reads the whole body, at most [`MAX_BODY_BYTES`] (413 past it).
pub(super) async fn read_body(body: Body) -> ApiResult<Bytes> {
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(Status::too_large(MAX_BODY_BYTES).into())
        }
        Err(e) => Err(Status::bad_request(format!("reading request body: {e}")).into()),
    }
}

/// The media type of a request, without parameters, lower-cased; JSON when absent.
pub(super) fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "application/json".to_owned())
}

/// Decodes an object body in JSON or YAML into a JSON value. Nesting is bounded (serde_json's
/// recursion limit; serde-saphyr's budget for YAML, which also bounds aliases).
pub(super) fn decode_object(media: &str, bytes: &[u8]) -> ApiResult<Value> {
    let value: Value = match media {
        "application/json" => serde_json::from_slice(bytes)
            .map_err(|e| Status::bad_request(format!("the request body is not valid JSON: {e}")))?,
        "application/yaml" | "application/x-yaml" | "text/yaml" => serde_saphyr::from_slice(bytes)
            .map_err(|e| Status::bad_request(format!("the request body is not valid YAML: {e}")))?,
        super::protobuf::MEDIA_TYPE => {
            let decoded = super::protobuf::decode(bytes).map_err(|e| {
                Status::bad_request(format!("the request body is not valid protobuf: {e}"))
            })?;
            // Field numbers the schema does not know cannot be carried over to JSON; refusing
            // them keeps "nothing unknown is dropped silently" for protobuf bodies too.
            if !decoded.unknown_fields.is_empty() {
                return Err(Status::bad_request(format!(
                    "{} in version {:?} cannot be handled as a {}: strict decoding error: unknown fields {}",
                    decoded.kind,
                    decoded.api_version,
                    decoded.kind,
                    decoded.unknown_fields.join(", ")
                ))
                .into());
            }
            decoded.object
        }
        other => return Err(Status::unsupported_media_type(other, OBJECT_MEDIA_TYPES).into()),
    };
    if !value.is_object() {
        return Err(Status::bad_request("the request body must be a JSON or YAML object").into());
    }
    Ok(value)
}

/// How a client asked to see objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Rendering {
    /// Plain JSON objects.
    Json,
    /// `meta.k8s.io/v1` `Table`.
    Table,
}

/// Chooses the rendering from the `Accept` header: a Table when the client lists
/// `application/json;as=Table;g=meta.k8s.io;v=v1` first among what we can produce, JSON when it
/// accepts JSON in any form, and 406 otherwise.
pub(super) fn negotiate(headers: &HeaderMap) -> ApiResult<Rendering> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Ok(Rendering::Json);
    };
    for clause in accept.split(',') {
        let mut parts = clause.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let params: Vec<(String, String)> = parts
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let param = |k: &str| {
            params
                .iter()
                .find(|(pk, _)| pk == k)
                .map(|(_, v)| v.as_str())
        };
        match media.as_str() {
            "application/json" | "*/*" | "application/*" => match param("as") {
                None => return Ok(Rendering::Json),
                Some("Table") if param("g") == Some("meta.k8s.io") && param("v") == Some("v1") => {
                    return Ok(Rendering::Table);
                }
                // Other transformations (v1beta1 tables, partial metadata) are not offered; the
                // client lists a fallback after them.
                Some(_) => continue,
            },
            _ => continue,
        }
    }
    Err(
        Status::not_acceptable("application/json, application/json;as=Table;v=v1;g=meta.k8s.io")
            .into(),
    )
}
