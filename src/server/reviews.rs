//! The review APIs: SelfSubjectAccessReview, SubjectAccessReview, LocalSubjectAccessReview,
//! SelfSubjectRulesReview (`kubectl auth can-i`) and SelfSubjectReview (`kubectl auth whoami`).
//!
//! They are answered from the same authorizer snapshot the request itself was authorized with,
//! never stored, and validated as upstream validates them.

use std::collections::BTreeMap;

use axum::extract::Request;
use axum::http::StatusCode;
use portcullis_api::status::FieldError;
use portcullis_api::{RequestInfo, ResourceRequest, Status, UserInfo};
use portcullis_authz::Decision;
use serde_json::{Value, json};

use super::body::{ApiResult, decode_object, media_type, object_response, read_body};
use super::objects::{self, FieldValidation};
use super::resources::Ctx;

/// Answers a create of a review resource.
pub(super) async fn create(ctx: &Ctx, req: Request) -> ApiResult {
    let media = media_type(req.headers());
    let bytes = read_body(req.into_body()).await?;
    let mut body = decode_object(&media, &bytes)?;
    let (api_version, kind) = (ctx.resource.api_version(), ctx.resource.kind);
    // The authorization webhook of a kube-apiserver configured with version v1beta1 sends the
    // older shape, where the groups field is called `group`; it is answered in kind.
    let v1beta1 = (kind == "SubjectAccessReview"
        && body.get("apiVersion").and_then(Value::as_str) == Some(V1BETA1))
        || (kind == "TokenReview"
            && body.get("apiVersion").and_then(Value::as_str) == Some(AUTHN_V1BETA1));
    if v1beta1 {
        body["apiVersion"] = api_version.clone().into();
        if let Some(spec) = body.get_mut("spec").and_then(Value::as_object_mut)
            && let Some(groups) = spec.remove("group")
        {
            spec.insert("groups".into(), groups);
        }
    }
    if body.get("apiVersion").and_then(Value::as_str) != Some(api_version.as_str())
        || body.get("kind").and_then(Value::as_str) != Some(kind)
    {
        return Err(Status::bad_request(format!("the body must be a {api_version} {kind}")).into());
    }
    let (mut review, _) = objects::decode_strict(
        ctx.resource,
        &body,
        ctx.field_validation_or(FieldValidation::Strict)?,
    )?;
    let spec = review.get("spec").cloned().unwrap_or_else(|| json!({}));
    if kind == "TokenReview"
        && review
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty())
    {
        return Err(Status::bad_request("namespace is not allowed on this type").into());
    }
    let status = match kind {
        "SelfSubjectReview" => json!({"userInfo": user_info_json(&ctx.user)}),
        "TokenReview" => token_review(ctx, &spec).await?,
        "SelfSubjectRulesReview" => rules_review(ctx, &spec),
        _ => access_review(ctx, kind, &spec, &mut review)?,
    };
    // Webhook-mode decisions are audited with what was reviewed and the verdict.
    if let Some(record) = &ctx.audit
        && matches!(
            kind,
            "TokenReview" | "SubjectAccessReview" | "LocalSubjectAccessReview"
        )
    {
        let text = |v: Option<&Value>| match v {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => String::new(),
        };
        if kind == "TokenReview" {
            record.annotate(
                "review.portcullis.dev/authenticated",
                text(status.get("authenticated")),
            );
            record.annotate(
                "review.portcullis.dev/user",
                text(status.pointer("/user/username")),
            );
        } else {
            record.annotate("review.portcullis.dev/user", text(spec.get("user")));
            let attributes = spec
                .get("resourceAttributes")
                .or_else(|| spec.get("nonResourceAttributes"));
            record.annotate("review.portcullis.dev/attributes", text(attributes));
            record.annotate("review.portcullis.dev/allowed", text(status.get("allowed")));
        }
    }
    review["status"] = status;
    if let Some(meta) = review.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("creationTimestamp".into(), Value::Null);
    }
    if v1beta1 && kind == "TokenReview" {
        review["apiVersion"] = AUTHN_V1BETA1.into();
    } else if v1beta1 {
        review["apiVersion"] = V1BETA1.into();
        if let Some(spec) = review.get_mut("spec").and_then(Value::as_object_mut)
            && let Some(groups) = spec.remove("groups")
        {
            spec.insert("group".into(), groups);
        }
    }
    // A SubjectAccessReview is how a kube-apiserver's authorization webhook asks; it expects 200
    // for every well-formed review, whatever the verdict.
    let code = if kind == "SubjectAccessReview" || kind == "TokenReview" {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(object_response(code, &review))
}

/// The SubjectAccessReview version older kube-apiserver webhooks speak.
const V1BETA1: &str = "authorization.k8s.io/v1beta1";
/// The TokenReview version older kube-apiserver webhooks speak.
const AUTHN_V1BETA1: &str = "authentication.k8s.io/v1beta1";

/// TokenReview: runs the bearer-token authenticators on `spec.token`. Answered 200 whatever the
/// verdict, as a kube-apiserver token webhook expects.
async fn token_review(ctx: &Ctx, spec: &Value) -> Result<Value, Status> {
    let token = spec["token"].as_str().unwrap_or("");
    if token.is_empty() {
        return Err(Status::bad_request(
            "token is required for TokenReview in authentication",
        ));
    }
    if token.len() > portcullis_authn::token_file::MAX_TOKEN_BYTES {
        return Ok(json!({"authenticated": false, "user": {}, "error": "invalid bearer token"}));
    }
    let audiences: Vec<String> = spec["audiences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    Ok(
        match ctx
            .state
            .tokens
            .authenticate(ctx.state.store.as_ref(), token, &audiences)
            .await
        {
            super::tokens::TokenOutcome::User(user, auds) => json!({
                "authenticated": true,
                "user": user_info_json(&user.with_authenticated_group()),
                "audiences": auds,
            }),
            super::tokens::TokenOutcome::Invalid(error) => {
                json!({"authenticated": false, "user": {}, "error": error})
            }
        },
    )
}

/// TokenRequest (`POST .../serviceaccounts/NAME/token`): signs a bound token for the
/// ServiceAccount, as `kubectl create token` asks.
pub(super) async fn token_request(ctx: &Ctx, req: Request) -> ApiResult {
    let media = media_type(req.headers());
    let bytes = read_body(req.into_body()).await?;
    let mut body = decode_object(&media, &bytes)?;
    if body.get("kind").and_then(Value::as_str) != Some("TokenRequest") {
        return Err(Status::bad_request(
            "the body must be an authentication.k8s.io/v1 TokenRequest",
        )
        .into());
    }
    let name = &ctx.req.name;
    let namespace = &ctx.req.namespace;
    let sa_resource = ctx.resource;
    let sa = ctx
        .state
        .store
        .get(&sa_resource.key(Some(namespace), name))
        .await
        .map_err(super::resources::store_error)?
        .ok_or_else(|| Status::not_found(sa_resource, name))?;
    let sa: Value = serde_json::from_slice(&sa.value)
        .map_err(|e| Status::internal(format!("stored service account is corrupt: {e}")))?;
    let spec = body.get("spec").cloned().unwrap_or_else(|| json!({}));
    let expiration = spec["expirationSeconds"].as_i64().unwrap_or(3600);
    if expiration < 600 {
        return Err(token_invalid(
            name,
            "spec.expirationSeconds",
            &expiration.to_string(),
            "may not specify a duration less than 10 minutes",
        )
        .into());
    }
    if expiration > 1 << 32 {
        return Err(token_invalid(
            name,
            "spec.expirationSeconds",
            &expiration.to_string(),
            "may not specify a duration larger than 2^32 seconds",
        )
        .into());
    }
    let mut audiences: Vec<String> = spec["audiences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    if audiences.is_empty() {
        audiences = ctx.state.tokens.audiences.clone();
    }
    let bound = match spec.get("boundObjectRef").filter(|b| !b.is_null()) {
        None => None,
        Some(b) => {
            let kind = b["kind"].as_str().unwrap_or("");
            let plural = match kind {
                "Pod" => "pods",
                "Secret" => "secrets",
                other => {
                    return Err(token_invalid(
                        name,
                        "spec.boundObjectRef.kind",
                        other,
                        "supported values: \"Pod\", \"Secret\"",
                    )
                    .into());
                }
            };
            let bound_name = b["name"].as_str().unwrap_or("");
            let resource = portcullis_api::registry::lookup("", "v1", plural)
                .ok_or_else(|| Status::internal("pods are not registered"))?;
            let obj = ctx
                .state
                .store
                .get(&resource.key(Some(namespace), bound_name))
                .await
                .map_err(super::resources::store_error)?
                .ok_or_else(|| Status::not_found(resource, bound_name))?;
            let obj: Value =
                serde_json::from_slice(&obj.value).map_err(|e| Status::internal(e.to_string()))?;
            let uid = obj
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            if let Some(want) = b["uid"].as_str().filter(|u| !u.is_empty())
                && want != uid
            {
                return Err(Status::conflict(resource, bound_name, &format!("the UID in the bound object reference ({want}) does not match the UID in record. The object might have been deleted and then recreated")).into());
            }
            Some((kind.to_ascii_lowercase(), bound_name.to_owned(), uid))
        }
    };
    let now = super::tokens::now_seconds();
    let token = ctx
        .state
        .tokens
        .sign(&portcullis_authn::serviceaccount::TokenRequest {
            issuer: ctx.state.tokens.issuer.clone(),
            audiences: audiences.clone(),
            namespace: namespace.clone(),
            name: name.clone(),
            uid: sa
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            bound,
            now,
            expiration_seconds: expiration as u64,
            jti: uuid::Uuid::new_v4().to_string(),
        })
        .map_err(Status::internal)?;
    let expires = jiff::Timestamp::from_second(now as i64 + expiration)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    body["apiVersion"] = "authentication.k8s.io/v1".into();
    body["metadata"] = json!({"name": name, "namespace": namespace, "creationTimestamp": null});
    body["spec"]["audiences"] = json!(audiences);
    body["spec"]["expirationSeconds"] = expiration.into();
    body["status"] = json!({"token": token, "expirationTimestamp": expires});
    Ok(object_response(StatusCode::CREATED, &body))
}

fn token_invalid(name: &str, field: &str, value: &str, detail: &str) -> Status {
    let mut s = Status::bad_request("");
    s.code = 422;
    s.reason = "Invalid".into();
    s.message = format!(
        "TokenRequest.authentication.k8s.io {name:?} is invalid: {field}: Invalid value: {value}: {detail}"
    );
    s
}

fn user_info_json(user: &UserInfo) -> Value {
    let mut v = json!({"username": user.username, "groups": user.groups});
    if !user.uid.is_empty() {
        v["uid"] = user.uid.clone().into();
    }
    if !user.extra.is_empty() {
        v["extra"] = json!(user.extra);
    }
    v
}

/// SubjectAccessReview, LocalSubjectAccessReview and SelfSubjectAccessReview.
fn access_review(ctx: &Ctx, kind: &str, spec: &Value, review: &mut Value) -> Result<Value, Status> {
    let resource_attrs = spec.get("resourceAttributes").filter(|v| !v.is_null());
    let non_resource = spec.get("nonResourceAttributes").filter(|v| !v.is_null());
    let name = review
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let invalid = |errors: Vec<FieldError>| Status::invalid(ctx.resource, &name, &errors);
    let mut errors = Vec::new();
    match (resource_attrs.is_some(), non_resource.is_some()) {
        (true, true) => errors.push(FieldError::invalid(
            "spec.nonResourceAttributes",
            &non_resource.map(ToString::to_string).unwrap_or_default(),
            "cannot be specified in combination with resourceAttributes",
        )),
        (false, false) => errors.push(FieldError::invalid(
            "spec.resourceAttributes",
            "null",
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )),
        _ => {}
    }
    let user = match kind {
        "SelfSubjectAccessReview" => ctx.user.clone(),
        _ => {
            let user = UserInfo {
                username: spec["user"].as_str().unwrap_or("").to_owned(),
                uid: spec["uid"].as_str().unwrap_or("").to_owned(),
                groups: spec["groups"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
                extra: spec["extra"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| {
                                let vals = v
                                    .as_array()
                                    .into_iter()
                                    .flatten()
                                    .filter_map(Value::as_str)
                                    .map(str::to_owned)
                                    .collect();
                                (k.clone(), vals)
                            })
                            .collect::<BTreeMap<_, _>>()
                    })
                    .unwrap_or_default(),
            };
            if user.username.is_empty() && user.groups.is_empty() {
                errors.push(FieldError::invalid(
                    "spec.user",
                    "",
                    "at least one of user or group must be specified",
                ));
            }
            user
        }
    };
    if kind == "LocalSubjectAccessReview" {
        if non_resource.is_some() {
            errors.push(FieldError::invalid(
                "spec.nonResourceAttributes",
                &non_resource.map(ToString::to_string).unwrap_or_default(),
                "disallowed on this kind of request",
            ));
        }
        let ns = resource_attrs
            .and_then(|r| r["namespace"].as_str())
            .unwrap_or("");
        if !ns.is_empty() && ns != ctx.req.namespace {
            errors.push(FieldError::invalid(
                "spec.resourceAttributes.namespace",
                ns,
                "must match metadata.namespace",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(invalid(errors));
    }
    let request = if let Some(r) = resource_attrs {
        let s = |k: &str| r[k].as_str().unwrap_or("").to_owned();
        let namespace = if kind == "LocalSubjectAccessReview" {
            ctx.req.namespace.clone()
        } else {
            s("namespace")
        };
        if kind == "LocalSubjectAccessReview" {
            review["spec"]["resourceAttributes"]["namespace"] = namespace.clone().into();
        }
        RequestInfo::Resource(ResourceRequest {
            verb: s("verb"),
            group: s("group"),
            version: s("version"),
            resource: s("resource"),
            subresource: s("subresource"),
            namespace,
            name: s("name"),
            ..ResourceRequest::default()
        })
    } else {
        let n = non_resource.cloned().unwrap_or_default();
        RequestInfo::NonResource {
            verb: n["verb"].as_str().unwrap_or("").to_owned(),
            path: n["path"].as_str().unwrap_or("").to_owned(),
        }
    };
    let decision = ctx.authorizer.authorize(&user, &request);
    let mut status = json!({"allowed": decision.is_allowed()});
    if matches!(decision, Decision::Deny { .. }) {
        status["denied"] = true.into();
    }
    if !decision.reason().is_empty() {
        status["reason"] = decision.reason().into();
    }
    Ok(status)
}

/// SelfSubjectRulesReview: every rule RBAC gives the caller in a namespace. The superuser group
/// contributes no rules, as upstream.
fn rules_review(ctx: &Ctx, spec: &Value) -> Value {
    let namespace = spec["namespace"].as_str().unwrap_or("");
    let (rules, errors) = ctx
        .authorizer
        .rbac()
        .map(|s| s.rules_for(&ctx.user, namespace))
        .unwrap_or_default();
    let mut resource_rules = Vec::new();
    let mut non_resource_rules = Vec::new();
    for r in rules {
        if !r.resources.is_empty() {
            let mut v =
                json!({"verbs": r.verbs, "apiGroups": r.api_groups, "resources": r.resources});
            if !r.resource_names.is_empty() {
                v["resourceNames"] = json!(r.resource_names);
            }
            resource_rules.push(v);
        }
        if !r.non_resource_urls.is_empty() {
            non_resource_rules
                .push(json!({"verbs": r.verbs, "nonResourceURLs": r.non_resource_urls}));
        }
    }
    let mut status = json!({
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": false,
    });
    if !errors.is_empty() {
        let joined = errors
            .iter()
            .map(|e| e.as_ref())
            .collect::<Vec<_>>()
            .join(", ");
        status["evaluationError"] = if errors.len() == 1 {
            joined.into()
        } else {
            format!("[{joined}]").into()
        };
    }
    status
}
