//! The resource handlers: get, list, watch, create, update, patch, delete and deletecollection
//! over the store, with kube-apiserver's semantics and error shapes.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use jiff::Timestamp;
use portcullis_api::registry::{self, RESOURCES};
use portcullis_api::request::Query;
use portcullis_api::status::FieldError;
use portcullis_api::{RequestInfo, Resource, ResourceRequest, Status, UserInfo};
use portcullis_authz::Authorizer;
use serde_json::{Value, json};

use super::AppState;
use super::body::{
    ApiError, ApiResult, Rendering, decode_object, media_type, negotiate, object_response,
    read_body,
};
use super::objects::{self, FieldValidation};
use super::rbac_writes;
use super::selectors::{FieldSelector, LabelSelector};
use crate::patch::{self, PatchType};
use crate::storage::{KeyValue, StoreError, TxnOp};
use crate::table::{self, IncludeObject};

/// The default and the longest `?timeout=` of a non-watch request.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a read-modify-write retries when another writer got in between.
const MAX_RETRIES: usize = 8;
/// How many names a `generateName` create tries before it reports the collision.
const GENERATE_NAME_ATTEMPTS: usize = 8;

/// Entry point for every path the fixed routes do not serve.
pub(super) async fn handle(State(state): State<AppState>, req: Request) -> Response {
    let info = req.extensions().get::<RequestInfo>().cloned();
    let Some(RequestInfo::Resource(r)) = info else {
        return ApiError(Status::path_not_found()).into_response();
    };
    let query = Query::parse(req.uri().query().unwrap_or(""));
    if r.verb == "watch" {
        return super::watch::handle(state, r, query, req)
            .await
            .unwrap_or_else(IntoResponse::into_response);
    }
    let timeout = match query.get("timeout").map(crate::duration::parse) {
        None => DEFAULT_TIMEOUT,
        Some(Some(d)) => d.min(DEFAULT_TIMEOUT),
        Some(None) => {
            return ApiError(Status::bad_request(format!(
                "invalid timeout {:?}",
                query.get("timeout").unwrap_or_default()
            )))
            .into_response();
        }
    };
    match tokio::time::timeout(timeout, dispatch(state, r, query, req)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => e.into_response(),
        Err(_) => ApiError(Status::timeout()).into_response(),
    }
}

/// Everything a handler needs about one request.
pub(super) struct Ctx {
    pub(super) state: AppState,
    pub(super) user: UserInfo,
    pub(super) authorizer: Arc<Authorizer>,
    pub(super) resource: &'static Resource,
    pub(super) req: ResourceRequest,
    pub(super) query: Query,
    pub(super) now: Timestamp,
    /// The request's audit record, when audit is on.
    pub(super) audit: Option<Arc<super::audit::Record>>,
}

impl Ctx {
    fn namespace(&self) -> Option<&str> {
        (self.resource.namespaced && !self.req.namespace.is_empty())
            .then_some(self.req.namespace.as_str())
    }

    fn key(&self) -> String {
        self.resource.key(self.namespace(), &self.req.name)
    }

    fn dry_run(&self) -> Result<bool, Status> {
        let mut dry = false;
        for v in self.query.get_all("dryRun") {
            match v {
                "All" => dry = true,
                "" => {}
                other => {
                    return Err(Status::bad_request(format!(
                        "Invalid dryRun value {other:?}; supported values: All"
                    )));
                }
            }
        }
        Ok(dry)
    }

    fn field_validation(&self) -> Result<FieldValidation, Status> {
        FieldValidation::parse(self.query.get("fieldValidation"))
    }

    /// The `fieldValidation` parameter, or `default` when the client sent none.
    pub(super) fn field_validation_or(
        &self,
        default: FieldValidation,
    ) -> Result<FieldValidation, Status> {
        match self.query.get("fieldValidation") {
            None | Some("") => Ok(default),
            v => FieldValidation::parse(v),
        }
    }
}

/// Resolves the resource and routes by verb.
pub(super) async fn dispatch(
    state: AppState,
    r: ResourceRequest,
    query: Query,
    req: Request,
) -> ApiResult {
    let resource = resolve(&r)?;
    let user = req.extensions().get::<UserInfo>().cloned();
    let authorizer = req.extensions().get::<Arc<Authorizer>>().cloned();
    let (Some(user), Some(authorizer)) = (user, authorizer) else {
        // The pipeline always sets both; fail closed if it ever does not.
        return Err(Status::internal("request reached a handler unauthorized").into());
    };
    let ctx = Ctx {
        state,
        user,
        authorizer,
        resource,
        req: r,
        query,
        now: Timestamp::now(),
        audit: req.extensions().get::<Arc<super::audit::Record>>().cloned(),
    };
    let headers = req.headers().clone();
    if !resource.is_stored() {
        return match ctx.req.verb.as_str() {
            "create" if ctx.req.name.is_empty() => super::reviews::create(&ctx, req).await,
            _ => Err(Status::method_not_allowed().into()),
        };
    }
    let result = match ctx.req.verb.as_str() {
        "get" => get(&ctx, &headers).await,
        "list" => list(&ctx, &headers).await,
        "create" if ctx.req.name.is_empty() => create(&ctx, &headers, req).await,
        "create" if ctx.req.subresource == "token" => {
            super::reviews::token_request(&ctx, req).await
        }
        "update" => update(&ctx, req).await,
        "patch" => patch_object(&ctx, req).await,
        "delete" => delete(&ctx, req).await,
        "deletecollection" => delete_collection(&ctx, &headers).await,
        _ => Err(Status::method_not_allowed().into()),
    };
    // An RBAC write (or a namespace deletion, which removes roles and bindings) is in force for
    // the very next request: the snapshot is rebuilt before the write is answered.
    let writes = !matches!(ctx.req.verb.as_str(), "get" | "list" | "watch");
    // Tokens bound to what changed are checked afresh on their next use.
    if writes
        && matches!(
            resource.plural,
            "serviceaccounts" | "secrets" | "pods" | "namespaces"
        )
    {
        ctx.state.tokens.invalidate();
    }
    if writes
        && (rbac_writes::is_rbac(resource) || resource.plural == "namespaces")
        && result.as_ref().is_ok_and(|r| r.status().is_success())
        && !ctx.dry_run().unwrap_or(true)
    {
        ctx.state
            .rbac
            .changed(ctx.state.store.as_ref(), resource.plural == "clusterroles")
            .await;
    }
    result
}

/// Finds the served resource and checks scope, subresource and path segments.
pub(super) fn resolve(r: &ResourceRequest) -> Result<&'static Resource, Status> {
    let resource =
        registry::lookup(&r.group, &r.version, &r.resource).ok_or_else(Status::path_not_found)?;
    if !r.subresource.is_empty() && resource.subresource(&r.subresource).is_none() {
        return Err(Status::path_not_found());
    }
    if !r.namespace.is_empty() {
        objects::check_path_segment("namespace", &r.namespace)?;
    }
    if !r.name.is_empty() {
        objects::check_path_segment("resource name", &r.name)?;
    }
    // `/api/v1/namespaces/<ns>` names the namespace itself; any other cluster-scoped resource
    // under a namespace path does not exist.
    if !resource.namespaced && !r.namespace.is_empty() && resource.plural != "namespaces" {
        return Err(Status::path_not_found());
    }
    let verb_ok = match r.subresource.as_str() {
        "" => resource.supports(&r.verb),
        sub => resource
            .subresource(sub)
            .is_some_and(|s| s.verbs.contains(&r.verb.as_str())),
    };
    if !verb_ok {
        return Err(Status::method_not_allowed());
    }
    if resource.namespaced && r.namespace.is_empty() && !matches!(r.verb.as_str(), "list" | "watch")
    {
        return Err(Status::method_not_allowed());
    }
    Ok(resource)
}

// === reading ===

/// Parses a stored value and sets its `resourceVersion`.
pub(super) fn materialize(resource: &Resource, kv: &KeyValue) -> Result<Value, Status> {
    let mut v: Value = serde_json::from_slice(&kv.value).map_err(|e| {
        Status::internal(format!(
            "stored {} at `{}` is corrupt: {e}",
            resource.singular, kv.key
        ))
    })?;
    set_resource_version(&mut v, kv.mod_revision);
    Ok(v)
}

fn set_resource_version(v: &mut Value, rev: u64) {
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), rev.to_string().into());
    }
}

async fn current(ctx: &Ctx) -> Result<(Value, u64), Status> {
    let kv = ctx
        .state
        .store
        .get(&ctx.key())
        .await
        .map_err(store_error)?
        .ok_or_else(|| Status::not_found(ctx.resource, &ctx.req.name))?;
    Ok((materialize(ctx.resource, &kv)?, kv.mod_revision))
}

async fn get(ctx: &Ctx, headers: &HeaderMap) -> ApiResult {
    let rendering = negotiate(headers)?;
    let (obj, _) = current(ctx).await?;
    if ctx.req.subresource == "scale" {
        return Ok(object_response(
            StatusCode::OK,
            &scale_of(ctx.resource, &obj),
        ));
    }
    Ok(render_one(ctx, rendering, obj))
}

fn render_one(ctx: &Ctx, rendering: Rendering, obj: Value) -> Response {
    match rendering {
        Rendering::Json => object_response(StatusCode::OK, &obj),
        Rendering::Table => {
            let include = IncludeObject::from_param(ctx.query.get("includeObject").unwrap_or(""))
                .unwrap_or_default();
            let meta = json!({"resourceVersion": obj.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null)});
            object_response(
                StatusCode::OK,
                &table::table(
                    ctx.resource.gv.group,
                    ctx.resource.plural,
                    &[obj],
                    meta,
                    include,
                    ctx.now,
                ),
            )
        }
    }
}

/// Selectors of a list, watch or deletecollection request.
pub(super) struct Selectors {
    pub(super) labels: LabelSelector,
    pub(super) fields: FieldSelector,
}

impl Selectors {
    pub(super) fn from_query(resource: &Resource, query: &Query) -> Result<Self, Status> {
        Ok(Selectors {
            labels: LabelSelector::parse(query.get("labelSelector").unwrap_or(""))
                .map_err(Status::bad_request)?,
            fields: FieldSelector::parse(query.get("fieldSelector").unwrap_or(""), resource.plural)
                .map_err(Status::bad_request)?,
        })
    }

    pub(super) fn is_empty(&self) -> bool {
        self.labels == LabelSelector::default() && self.fields == FieldSelector::default()
    }

    pub(super) fn matches(&self, v: &Value) -> bool {
        self.labels.matches(v) && self.fields.matches(v)
    }
}

/// Reads a page of objects matching the request's selectors.
pub(super) async fn read_list(
    ctx: &Ctx,
    limit: usize,
    start_after: Option<&str>,
    at: u64,
) -> Result<(Vec<Value>, u64, Option<String>), Status> {
    let selectors = Selectors::from_query(ctx.resource, &ctx.query)?;
    let prefix = ctx.resource.key_prefix(ctx.namespace());
    let filter = |kv: &KeyValue| {
        selectors.is_empty()
            || serde_json::from_slice::<Value>(&kv.value).is_ok_and(|v| selectors.matches(&v))
    };
    let page = ctx
        .state
        .store
        .list(&prefix, start_after, limit, at, &filter)
        .await
        .map_err(|e| match e {
            // A continue token whose revision was compacted away (etcd), as kube-apiserver says.
            StoreError::Gone { .. } if at > 0 => Status::gone(
                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
            ),
            e => store_error(e),
        })?;
    let last = page.items.last().map(|kv| kv.key.clone());
    let items = page
        .items
        .iter()
        .map(|kv| materialize(ctx.resource, kv))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((items, page.revision, if page.more { last } else { None }))
}

async fn list(ctx: &Ctx, headers: &HeaderMap) -> ApiResult {
    let rendering = negotiate(headers)?;
    let limit = match ctx.query.get("limit") {
        None | Some("") => 0,
        Some(l) => l
            .parse::<i64>()
            .map_err(|_| Status::bad_request(format!("invalid limit {l:?}")))?
            .max(0) as usize,
    };
    let (start_after, token_rev) = match ctx.query.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            let (rev, key) = decode_continue(token, &ctx.resource.key_prefix(ctx.namespace()))?;
            (Some(key), Some(rev))
        }
        None => (None, None),
    };
    let (mut items, revision, next) =
        read_list(ctx, limit, start_after.as_deref(), token_rev.unwrap_or(0)).await?;
    let mut meta = json!({"resourceVersion": revision.to_string()});
    if let Some(key) = next {
        meta["continue"] = encode_continue(revision, &key).into();
    }
    match rendering {
        Rendering::Table => {
            let include = IncludeObject::from_param(ctx.query.get("includeObject").unwrap_or(""))
                .ok_or_else(|| {
                Status::bad_request("includeObject must be one of None, Metadata or Object")
            })?;
            Ok(object_response(
                StatusCode::OK,
                &table::table(
                    ctx.resource.gv.group,
                    ctx.resource.plural,
                    &items,
                    meta,
                    include,
                    ctx.now,
                ),
            ))
        }
        Rendering::Json => {
            // List items carry no kind or apiVersion on the wire, as kube-apiserver sends them.
            for item in &mut items {
                if let Some(o) = item.as_object_mut() {
                    o.remove("kind");
                    o.remove("apiVersion");
                }
            }
            Ok(object_response(
                StatusCode::OK,
                &json!({
                    "kind": ctx.resource.list_kind(),
                    "apiVersion": ctx.resource.api_version(),
                    "metadata": meta,
                    "items": items,
                }),
            ))
        }
    }
}

fn encode_continue(rev: u64, key: &str) -> String {
    let raw = json!({"v": "meta.k8s.io/v1", "rv": rev, "start": key}).to_string();
    base64::engine::general_purpose::URL_SAFE.encode(raw)
}

fn decode_continue(token: &str, prefix: &str) -> Result<(u64, String), Status> {
    let bad = || Status::bad_request("continue key is not valid: the token is malformed");
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rev = v.get("rv").and_then(Value::as_u64).ok_or_else(bad)?;
    let key = v.get("start").and_then(Value::as_str).ok_or_else(bad)?;
    // A token may only continue the listing it came from.
    if !key.starts_with(prefix) || key.contains("/../") {
        return Err(bad());
    }
    Ok((rev, key.to_owned()))
}

// === writing ===

/// Decodes a create or update body and checks the identity fields every write must agree on.
async fn decode_body(ctx: &Ctx, req: Request) -> Result<(Value, Vec<String>), ApiError> {
    let media = media_type(req.headers());
    let bytes = read_body(req.into_body()).await?;
    let value = decode_object(&media, &bytes)?;
    let (api_version, kind) = (ctx.resource.api_version(), ctx.resource.kind);
    let (want_av, want_kind) = if ctx.req.subresource == "scale" {
        ("autoscaling/v1".to_owned(), "Scale")
    } else {
        (api_version, kind)
    };
    match (
        value.get("apiVersion").and_then(Value::as_str),
        value.get("kind").and_then(Value::as_str),
    ) {
        (Some(av), Some(k)) if av == want_av && k == want_kind => {}
        (None, _) | (_, None) => {
            return Err(Status::bad_request(format!(
                "Object 'Kind' or 'apiVersion' is missing; expected {want_av} {want_kind}"
            ))
            .into());
        }
        (Some(av), Some(k)) => {
            return Err(Status::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({want_av}), or the kind ({k}) does not match {want_kind}"
            ))
            .into());
        }
    }
    if ctx.req.subresource == "scale" {
        return Ok((value, Vec::new()));
    }
    let mode = ctx.field_validation()?;
    Ok(objects::decode_strict(ctx.resource, &value, mode)?)
}

fn check_namespace(ctx: &Ctx, obj: &mut Value) -> Result<(), Status> {
    let meta = obj
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| Status::bad_request("metadata is required"))?;
    if ctx.resource.namespaced {
        match meta.get("namespace").and_then(Value::as_str) {
            Some(ns) if !ns.is_empty() && ns != ctx.req.namespace => {
                return Err(Status::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => {
                meta.insert("namespace".into(), ctx.req.namespace.clone().into());
            }
        }
    } else {
        meta.remove("namespace");
    }
    Ok(())
}

fn name_of(v: &Value) -> &str {
    v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn stored_bytes(v: &Value) -> Vec<u8> {
    let mut v = v.clone();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    serde_json::to_vec(&v).unwrap_or_default()
}

fn with_warnings(mut r: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let text = format!("299 - {:?}", w);
        if let Ok(v) = HeaderValue::from_str(&text) {
            r.headers_mut().append("warning", v);
        }
    }
    r
}

async fn create(ctx: &Ctx, headers: &HeaderMap, req: Request) -> ApiResult {
    let _ = headers;
    let dry_run = ctx.dry_run()?;
    let (mut obj, warnings) = decode_body(ctx, req).await?;
    check_namespace(ctx, &mut obj)?;
    let given = name_of(&obj).to_owned();
    let generate = obj
        .pointer("/metadata/generateName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if given.is_empty() && generate.is_empty() {
        return Err(Status::invalid(
            ctx.resource,
            "",
            &[FieldError::required(
                "metadata.name",
                "name or generateName is required",
            )],
        )
        .into());
    }
    if let Some(ns) = ctx.namespace() {
        let ns_resource = registry::lookup("", "v1", "namespaces")
            .ok_or_else(|| Status::internal("namespaces are not registered"))?;
        if ctx
            .state
            .store
            .get(&ns_resource.key(None, ns))
            .await
            .map_err(store_error)?
            .is_none()
        {
            return Err(Status::not_found(ns_resource, ns).into());
        }
    }
    objects::prepare_create(ctx.resource, &mut obj, ctx.now);
    super::admission::mutate(ctx, &mut obj).await?;
    let mut warnings = warnings;
    warnings.extend(super::admission::check(ctx, &obj, None).await?);
    if rbac_writes::is_rbac(ctx.resource) {
        rbac_writes::validate(ctx.resource, &obj, None)?;
        rbac_writes::check_escalation(
            ctx.state.store.as_ref(),
            &ctx.authorizer,
            &ctx.user,
            ctx.resource,
            &obj,
            None,
        )
        .await?;
    }
    // A generated name that collides is generated again, as kube-apiserver does
    // (RetryGenerateName); a name the client chose collides only once.
    let attempts = if given.is_empty() {
        GENERATE_NAME_ATTEMPTS
    } else {
        1
    };
    let mut attempt = 0;
    let result = loop {
        attempt += 1;
        let name = if given.is_empty() {
            format!("{generate}{}", objects::name_suffix())
        } else {
            given.clone()
        };
        let errors = objects::name_errors(ctx.resource, &name);
        if !errors.is_empty() {
            return Err(Status::invalid(ctx.resource, &name, &errors).into());
        }
        obj["metadata"]["name"] = name.clone().into();
        if dry_run {
            return Ok(with_warnings(
                object_response(StatusCode::CREATED, &obj),
                &warnings,
            ));
        }
        let created = ctx
            .state
            .store
            .txn(vec![TxnOp::Create {
                key: ctx.resource.key(ctx.namespace(), &name),
                value: stored_bytes(&obj),
            }])
            .await;
        match created {
            Ok(r) => break r,
            Err(StoreError::AlreadyExists(_)) if attempt < attempts => continue,
            Err(StoreError::AlreadyExists(_)) => {
                return Err(Status::already_exists(ctx.resource, &name).into());
            }
            Err(other) => return Err(store_error(other).into()),
        }
    };
    set_resource_version(&mut obj, result.revision);
    Ok(with_warnings(
        object_response(StatusCode::CREATED, &obj),
        &warnings,
    ))
}

/// Read-modify-write with optimistic concurrency: `compute` gets the current object and its
/// revision and returns the new one; a concurrent write makes it run again.
async fn read_modify_write(
    ctx: &Ctx,
    warnings: Vec<String>,
    compute: impl Fn(&Value, u64) -> Result<Value, Status>,
) -> ApiResult {
    let dry_run = ctx.dry_run()?;
    for _ in 0..MAX_RETRIES {
        let (cur, rev) = current(ctx).await?;
        let mut new = compute(&cur, rev)?;
        objects::prepare_update(ctx.resource, &cur, &mut new, &ctx.req.subresource);
        set_resource_version(&mut new, rev);
        if new == cur {
            return Ok(with_warnings(respond_object(ctx, cur), &warnings));
        }
        super::admission::mutate(ctx, &mut new).await?;
        let admission_warnings = super::admission::check(ctx, &new, Some(&cur)).await?;
        let warnings: Vec<String> = warnings.iter().cloned().chain(admission_warnings).collect();
        if rbac_writes::is_rbac(ctx.resource) {
            rbac_writes::validate(ctx.resource, &new, Some(&cur))?;
            rbac_writes::check_escalation(
                ctx.state.store.as_ref(),
                &ctx.authorizer,
                &ctx.user,
                ctx.resource,
                &new,
                Some(&cur),
            )
            .await?;
        }
        if new == cur {
            return Ok(with_warnings(respond_object(ctx, cur), &warnings));
        }
        let finalized = new.pointer("/metadata/deletionTimestamp").is_some()
            && new
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty);
        if dry_run {
            return Ok(with_warnings(respond_object(ctx, new), &warnings));
        }
        let op = if finalized {
            TxnOp::Delete {
                key: ctx.key(),
                expect: Some(rev),
            }
        } else {
            TxnOp::Update {
                key: ctx.key(),
                value: stored_bytes(&new),
                expect: Some(rev),
            }
        };
        match ctx.state.store.txn(vec![op]).await {
            Ok(r) => {
                set_resource_version(&mut new, r.revision);
                return Ok(with_warnings(respond_object(ctx, new), &warnings));
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(StoreError::NotFound(_)) => {
                return Err(Status::not_found(ctx.resource, &ctx.req.name).into());
            }
            Err(e) => return Err(store_error(e).into()),
        }
    }
    Err(Status::conflict(
        ctx.resource,
        &ctx.req.name,
        "too many concurrent writers; please retry",
    )
    .into())
}

fn respond_object(ctx: &Ctx, obj: Value) -> Response {
    if ctx.req.subresource == "scale" {
        return object_response(StatusCode::OK, &scale_of(ctx.resource, &obj));
    }
    object_response(StatusCode::OK, &obj)
}

async fn update(ctx: &Ctx, req: Request) -> ApiResult {
    let (mut new, warnings) = decode_body(ctx, req).await?;
    if ctx.req.subresource != "scale" {
        check_namespace(ctx, &mut new)?;
    }
    let body_name = name_of(&new).to_owned();
    if body_name != ctx.req.name {
        return Err(Status::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({})",
            ctx.req.name
        ))
        .into());
    }
    let body_rv = new
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let resource = ctx.resource;
    read_modify_write(ctx, warnings, |cur, rev| {
        if !body_rv.is_empty() && body_rv != rev.to_string() {
            return Err(Status::conflict(
                resource,
                &ctx.req.name,
                Status::STALE_OBJECT,
            ));
        }
        if ctx.req.subresource == "scale" {
            return apply_scale(resource, cur, &new);
        }
        Ok(new.clone())
    })
    .await
}

async fn patch_object(ctx: &Ctx, req: Request) -> ApiResult {
    let media = media_type(req.headers());
    let patch_type = PatchType::from_media_type(&media).ok_or_else(|| {
        Status::unsupported_media_type(
            &media,
            &[
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/strategic-merge-patch+json",
            ],
        )
    })?;
    let bytes = read_body(req.into_body()).await?;
    let patch_doc: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Status::bad_request(format!("the request body is not valid JSON: {e}")))?;
    let mode = ctx.field_validation()?;
    let resource = ctx.resource;
    let warnings = std::sync::Mutex::new(Vec::new());
    let response = read_modify_write(ctx, Vec::new(), |cur, rev| {
        let base = if ctx.req.subresource == "scale" {
            scale_of(resource, cur)
        } else {
            cur.clone()
        };
        let patched = patch::apply(
            patch_type,
            &base,
            &patch_doc,
            &resource.api_version(),
            resource.kind,
        )
        .map_err(|e| e.into_status(resource, &ctx.req.name))?;
        if let Some(rv) = patched
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            && rv != rev.to_string()
        {
            return Err(Status::conflict(
                resource,
                &ctx.req.name,
                Status::STALE_OBJECT,
            ));
        }
        if ctx.req.subresource == "scale" {
            return apply_scale(resource, cur, &patched);
        }
        if name_of(&patched) != ctx.req.name {
            return Err(Status::bad_request(
                "metadata.name cannot be changed by a patch",
            ));
        }
        let (mut typed, w) = objects::decode_strict(resource, &patched, mode)?;
        if let Ok(mut all) = warnings.lock() {
            *all = w;
        }
        check_namespace(ctx, &mut typed)?;
        set_resource_version(&mut typed, rev);
        Ok(typed)
    })
    .await?;
    let w = warnings.lock().map(|w| w.clone()).unwrap_or_default();
    Ok(with_warnings(response, &w))
}

async fn delete(ctx: &Ctx, req: Request) -> ApiResult {
    let bytes = read_body(req.into_body()).await?;
    let options: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(&bytes).map_err(|e| {
            Status::bad_request(format!("the request body is not valid DeleteOptions: {e}"))
        })?
    };
    let dry_run = ctx.dry_run()?
        || options
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|v| v == "All"));
    for _ in 0..MAX_RETRIES {
        let (cur, rev) = current(ctx).await?;
        if let Some(uid) = options
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
        {
            let actual = cur
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or("");
            if uid != actual {
                return Err(Status::conflict(
                    ctx.resource,
                    &ctx.req.name,
                    &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"),
                )
                .into());
            }
        }
        if let Some(want) = options
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            && want != rev.to_string()
        {
            return Err(Status::conflict(
                ctx.resource,
                &ctx.req.name,
                &format!("Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {rev}"),
            )
            .into());
        }
        let finalizers = cur
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        let is_namespace = ctx.resource.plural == "namespaces";
        if finalizers && !is_namespace {
            // Wait for the finalizers: mark the object and keep it.
            if cur.pointer("/metadata/deletionTimestamp").is_some() {
                return Ok(object_response(StatusCode::OK, &cur));
            }
            let mut marked = cur.clone();
            marked["metadata"]["deletionTimestamp"] = objects::timestamp(ctx.now).into();
            marked["metadata"]["deletionGracePeriodSeconds"] = 0.into();
            if dry_run {
                return Ok(object_response(StatusCode::OK, &marked));
            }
            match ctx
                .state
                .store
                .txn(vec![TxnOp::Update {
                    key: ctx.key(),
                    value: stored_bytes(&marked),
                    expect: Some(rev),
                }])
                .await
            {
                Ok(r) => {
                    set_resource_version(&mut marked, r.revision);
                    return Ok(object_response(StatusCode::OK, &marked));
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(store_error(e).into()),
            }
        }
        let mut ops = vec![TxnOp::Delete {
            key: ctx.key(),
            expect: Some(rev),
        }];
        if is_namespace {
            // Deleting a namespace deletes everything in it, in the same transaction.
            ops.extend(
                RESOURCES
                    .iter()
                    .filter(|r| r.namespaced)
                    .map(|r| TxnOp::DeletePrefix {
                        prefix: r.key_prefix(Some(&ctx.req.name)),
                    }),
            );
        }
        if dry_run {
            return Ok(deleted_response(ctx, cur));
        }
        match ctx.state.store.txn(ops).await {
            Ok(r) => {
                let mut gone = cur;
                set_resource_version(&mut gone, r.revision);
                return Ok(deleted_response(ctx, gone));
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(StoreError::NotFound(_)) => {
                return Err(Status::not_found(ctx.resource, &ctx.req.name).into());
            }
            Err(e) => return Err(store_error(e).into()),
        }
    }
    Err(Status::conflict(
        ctx.resource,
        &ctx.req.name,
        "too many concurrent writers; please retry",
    )
    .into())
}

/// kube-apiserver answers a delete of a pod or namespace with the object, and of anything else
/// with a `Success` status naming it.
fn deleted_response(ctx: &Ctx, obj: Value) -> Response {
    match ctx.resource.plural {
        "pods" => object_response(StatusCode::OK, &obj),
        "namespaces" => {
            let mut ns = obj;
            ns["status"]["phase"] = "Terminating".into();
            object_response(StatusCode::OK, &ns)
        }
        _ => {
            let uid = obj
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or("");
            let status = Status::success_deleted(ctx.resource, &ctx.req.name, uid);
            object_response(
                StatusCode::OK,
                &serde_json::to_value(status).unwrap_or_default(),
            )
        }
    }
}

/// Deletes per transaction in `deletecollection` (etcd allows 128 operations per transaction).
const DELETE_CHUNK: usize = 100;

async fn delete_collection(ctx: &Ctx, headers: &HeaderMap) -> ApiResult {
    let _ = headers;
    let dry_run = ctx.dry_run()?;
    let (items, _, _) = read_list(ctx, 0, None, 0).await?;
    let ops: Vec<TxnOp> = items
        .iter()
        .filter_map(|obj| {
            let rev = obj
                .pointer("/metadata/resourceVersion")?
                .as_str()?
                .parse()
                .ok()?;
            Some(TxnOp::Delete {
                key: ctx.resource.key(ctx.namespace(), name_of(obj)),
                expect: Some(rev),
            })
        })
        .collect();
    let revision = if dry_run || ops.is_empty() {
        ctx.state.store.revision().await.map_err(store_error)?
    } else {
        // As kube-apiserver, the collection goes item by item rather than in one transaction
        // (etcd refuses transactions of more than 128 operations): chunks of guarded deletes,
        // and a chunk that met a concurrent change is redone one item at a time, where an
        // item already gone is fine.
        let mut revision = 0;
        for chunk in ops.chunks(DELETE_CHUNK) {
            match ctx.state.store.txn(chunk.to_vec()).await {
                Ok(r) => revision = revision.max(r.revision),
                Err(StoreError::Conflict { .. } | StoreError::NotFound(_)) => {
                    for op in chunk {
                        let TxnOp::Delete { key, .. } = op else {
                            continue;
                        };
                        let one = TxnOp::Delete {
                            key: key.clone(),
                            expect: None,
                        };
                        match ctx.state.store.txn(vec![one]).await {
                            Ok(r) => revision = revision.max(r.revision),
                            Err(StoreError::NotFound(_)) => {}
                            Err(e) => return Err(store_error(e).into()),
                        }
                    }
                }
                Err(e) => return Err(store_error(e).into()),
            }
        }
        revision
    };
    Ok(object_response(
        StatusCode::OK,
        &json!({
            "kind": ctx.resource.list_kind(),
            "apiVersion": ctx.resource.api_version(),
            "metadata": {"resourceVersion": revision.to_string()},
            "items": items,
        }),
    ))
}

// === scale ===

/// The `autoscaling/v1` `Scale` view of a workload.
fn scale_of(resource: &Resource, obj: &Value) -> Value {
    let selector = obj
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let meta = obj.get("metadata").cloned().unwrap_or_default();
    let pick = |k: &str| meta.get(k).cloned().unwrap_or(Value::Null);
    let _ = resource;
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": pick("name"),
            "namespace": pick("namespace"),
            "uid": pick("uid"),
            "resourceVersion": pick("resourceVersion"),
            "creationTimestamp": pick("creationTimestamp"),
        },
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
        "status": {
            "replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector,
        },
    })
}

fn apply_scale(resource: &Resource, cur: &Value, scale: &Value) -> Result<Value, Status> {
    let replicas = scale
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if !(0..=i32::MAX as i64).contains(&replicas) {
        return Err(Status::invalid(
            resource,
            name_of(cur),
            &[FieldError::invalid(
                "spec.replicas",
                &replicas.to_string(),
                "must be greater than or equal to 0",
            )],
        ));
    }
    let mut new = cur.clone();
    new["spec"]["replicas"] = replicas.into();
    Ok(new)
}

// === helpers ===

/// Maps a storage failure that no handler turned into something more specific.
pub(super) fn store_error(e: StoreError) -> Status {
    match e {
        StoreError::Gone { .. } => Status::gone(e.to_string()),
        StoreError::Future { .. } => Status::timeout(),
        StoreError::Lagged => Status::gone(e.to_string()),
        StoreError::Unavailable(why) => {
            tracing::warn!(%why, "storage unavailable");
            Status::unavailable(format!("storage is unavailable: {why}"))
        }
        StoreError::TooLarge(why) => Status::request_too_large(why),
        other => {
            tracing::error!(error = %format!("{:#}", anyhow::Error::from(other)), "storage failure");
            Status::internal("storage backend failure")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_cannot_leave_their_listing() {
        let t = encode_continue(5, "/registry/pods/a/x");
        assert_eq!(
            decode_continue(&t, "/registry/pods/a/").unwrap(),
            (5, "/registry/pods/a/x".into())
        );
        assert!(decode_continue(&t, "/registry/pods/b/").is_err());
        assert!(decode_continue("!!!", "/registry/pods/").is_err());
    }
}
