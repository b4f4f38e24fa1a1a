//! Admission webhooks for a kube-apiserver: `admission.k8s.io/v1` (and `v1beta1`)
//! AdmissionReview at `/admission/validate` and `/admission/mutate`.
//!
//! The same engines as the gateway's admission decide. The namespace's Pod Security labels come
//! from portcullis' store when it holds the namespace, else the configured defaults apply. The
//! answer echoes the request's uid, says allowed or not with a 403 status and message, and carries
//! warnings and audit annotations. Malformed reviews get 400.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use portcullis_api::{Status, UserInfo};
use serde_json::{Value, json};

use super::AppState;
use super::admission::{self, Request as AdmissionRequest};
use super::body::{decode_object, media_type, object_response, read_body, status_response};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admission/validate", post(validate))
        .route("/admission/mutate", post(mutate))
}

async fn validate(State(state): State<AppState>, req: Request) -> Response {
    review(&state, req, false)
        .await
        .unwrap_or_else(|s| status_response(&s))
}

async fn mutate(State(state): State<AppState>, req: Request) -> Response {
    review(&state, req, true)
        .await
        .unwrap_or_else(|s| status_response(&s))
}

async fn review(state: &AppState, req: Request, mutating: bool) -> Result<Response, Status> {
    let record = req
        .extensions()
        .get::<std::sync::Arc<super::audit::Record>>()
        .cloned();
    let media = media_type(req.headers());
    let bytes = read_body(req.into_body()).await.map_err(|e| e.0)?;
    let body = decode_object(&media, &bytes).map_err(|e| e.0)?;
    let api_version = body["apiVersion"].as_str().unwrap_or("");
    if !matches!(
        api_version,
        "admission.k8s.io/v1" | "admission.k8s.io/v1beta1"
    ) || body["kind"] != "AdmissionReview"
    {
        return Err(Status::bad_request(
            "expected an admission.k8s.io/v1 or v1beta1 AdmissionReview",
        ));
    }
    let request = body
        .get("request")
        .filter(|r| r.is_object())
        .ok_or_else(|| Status::bad_request("the AdmissionReview has no request"))?;
    let uid = request["uid"]
        .as_str()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| Status::bad_request("request.uid is required"))?;
    let s = |p: &str| request.pointer(p).and_then(Value::as_str).unwrap_or("");
    let operation = s("/operation");
    let mut response = json!({"uid": uid, "allowed": true});
    if mutating {
        // The MutatingWebhookConfiguration's selectors decide who opted in.
        if matches!(operation, "CREATE" | "UPDATE") {
            let null = Value::Null;
            let ops =
                admission::mutation_ops(s("/kind/kind"), request.get("object").unwrap_or(&null));
            if !ops.is_empty() {
                use base64::Engine;
                let patch =
                    serde_json::to_vec(&ops).map_err(|e| Status::internal(e.to_string()))?;
                response["patchType"] = "JSONPatch".into();
                response["patch"] = base64::engine::general_purpose::STANDARD
                    .encode(patch)
                    .into();
            }
        }
        return Ok(object_response(
            StatusCode::OK,
            &json!({"apiVersion": api_version, "kind": "AdmissionReview", "response": response}),
        ));
    }
    if matches!(operation, "CREATE" | "UPDATE") {
        let user: UserInfo =
            serde_json::from_value(request["userInfo"].clone()).unwrap_or_default();
        let namespace = s("/namespace");
        let labels = admission::namespace_labels(state.store.as_ref(), namespace).await?;
        let null = Value::Null;
        let new = request.get("object").unwrap_or(&null);
        let old = request.get("oldObject").filter(|o| !o.is_null());
        let outcome = admission::validate(
            state,
            &AdmissionRequest {
                kind: s("/kind/kind"),
                is_pod: s("/resource/resource") == "pods" && s("/resource/group").is_empty(),
                subresource: s("/subResource"),
                namespace,
                namespace_labels: labels.as_ref(),
                user: &user,
                new,
                old,
            },
            request,
            record.as_deref(),
        );
        let warnings = outcome.warnings();
        let denied = outcome.denial().map(|d| d.message().to_owned());
        let verdict = outcome.pod_security;
        if let Some(message) = denied {
            let name = s("/name");
            let resource = s("/resource/resource");
            let target = if name.is_empty() {
                resource.to_owned()
            } else {
                format!("{resource} {name:?}")
            };
            response["allowed"] = false.into();
            response["status"] = json!({
                "metadata": {},
                "status": "Failure",
                "message": format!("{target} is forbidden: {message}"),
                "reason": "Forbidden",
                "code": 403,
            });
        }
        if !warnings.is_empty() {
            response["warnings"] = json!(warnings);
        }
        if !verdict.annotations.is_empty() {
            let map: serde_json::Map<String, Value> = verdict
                .annotations
                .into_iter()
                .map(|(k, v)| {
                    (
                        k.trim_start_matches("pod-security.kubernetes.io/")
                            .to_owned(),
                        Value::String(v),
                    )
                })
                .collect();
            response["auditAnnotations"] = Value::Object(map);
        }
    }
    // Audited with what was reviewed and the verdict (the admission annotations were recorded
    // by `validate`).
    if let Some(record) = &record {
        let object = format!("{} {}/{}", s("/kind/kind"), s("/namespace"), s("/name"));
        record.annotate(
            "review.portcullis.dev/user",
            s("/userInfo/username").to_owned(),
        );
        record.annotate("review.portcullis.dev/object", object);
        record.annotate("review.portcullis.dev/operation", operation.to_owned());
        record.annotate(
            "review.portcullis.dev/allowed",
            response["allowed"].to_string(),
        );
    }
    Ok(object_response(
        StatusCode::OK,
        &json!({"apiVersion": api_version, "kind": "AdmissionReview", "response": response}),
    ))
}
