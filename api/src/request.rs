//! Request attributes, derived from method, path and query exactly as kube-apiserver's
//! `RequestInfoFactory` derives them.
//!
//! Every later stage (authorization, admission, audit, storage routing) sees the request through
//! [`RequestInfo`]. Path segments are percent-decoded one by one, so an encoded `/` can never
//! create a segment boundary that the caller did not write.

/// The attributes of one request: a resource request or a non-resource path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestInfo {
    /// `/api/...` or `/apis/...` naming a resource.
    Resource(ResourceRequest),
    /// Anything else (`/healthz`, `/version`, `/api`, `/apis/apps/v1`, ...).
    NonResource {
        /// The lower-cased HTTP method: `get`, `post`, `head`, ...
        verb: String,
        /// The request path, as sent.
        path: String,
    },
}

/// The attributes of a resource request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceRequest {
    /// The Kubernetes verb: `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`, or `proxy`.
    pub verb: String,
    /// `api` or `apis`.
    pub api_prefix: String,
    /// API group; empty for the core group.
    pub group: String,
    /// API version.
    pub version: String,
    /// Namespace; empty for cluster-scoped requests and for lists across all namespaces.
    pub namespace: String,
    /// Resource (plural), e.g. `pods`.
    pub resource: String,
    /// Subresource, e.g. `status`; empty when none.
    pub subresource: String,
    /// Object name; empty for collections.
    pub name: String,
    /// Whether the request path carried a `/watch/` special verb segment (legacy form).
    pub watch_path: bool,
}

/// Why a path could not be turned into request attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestInfoError {
    /// A segment held an invalid percent escape or decoded to something that is not a single
    /// path segment.
    InvalidSegment(String),
    /// A special verb (`watch`, `proxy`) with nothing after it.
    IncompletePath(String),
}

impl std::fmt::Display for RequestInfoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestInfoError::InvalidSegment(s) => write!(f, "invalid path segment `{s}`"),
            RequestInfoError::IncompletePath(p) => {
                write!(f, "unable to determine kind and namespace from url `{p}`")
            }
        }
    }
}

impl std::error::Error for RequestInfoError {}

impl RequestInfo {
    /// Derives request attributes from an HTTP method, the raw (still percent-encoded) path and
    /// the raw query string.
    pub fn parse(
        method: &str,
        raw_path: &str,
        raw_query: Option<&str>,
    ) -> Result<Self, RequestInfoError> {
        let non_resource = || RequestInfo::NonResource {
            verb: method.to_ascii_lowercase(),
            path: raw_path.to_owned(),
        };
        let trimmed = raw_path.trim_matches('/');
        if trimmed.is_empty() {
            return Ok(non_resource());
        }
        let mut parts = Vec::new();
        for raw in trimmed.split('/') {
            let seg = percent_decode(raw)
                .ok_or_else(|| RequestInfoError::InvalidSegment(raw.to_owned()))?;
            parts.push(seg);
        }
        let mut cur: &[String] = &parts;
        let Some((prefix, rest)) = cur.split_first() else {
            return Ok(non_resource());
        };
        if prefix != "api" && prefix != "apis" {
            return Ok(non_resource());
        }
        let mut info = ResourceRequest {
            api_prefix: prefix.clone(),
            ..ResourceRequest::default()
        };
        cur = rest;
        if prefix == "apis" {
            if cur.len() < 3 {
                return Ok(non_resource());
            }
            let Some((group, rest)) = cur.split_first() else {
                return Ok(non_resource());
            };
            info.group = group.clone();
            cur = rest;
        } else if cur.len() < 2 {
            return Ok(non_resource());
        }
        let Some((version, rest)) = cur.split_first() else {
            return Ok(non_resource());
        };
        info.version = version.clone();
        cur = rest;

        match cur.first().map(String::as_str) {
            Some(special @ ("watch" | "proxy")) => {
                if cur.len() < 2 {
                    return Err(RequestInfoError::IncompletePath(raw_path.to_owned()));
                }
                info.verb = special.to_owned();
                info.watch_path = special == "watch";
                cur = cur.get(1..).unwrap_or_default();
            }
            _ => {
                info.verb = match method {
                    "POST" => "create",
                    "GET" | "HEAD" => "get",
                    "PUT" => "update",
                    "PATCH" => "patch",
                    "DELETE" => "delete",
                    _ => "",
                }
                .to_owned();
            }
        }

        if cur.first().map(String::as_str) == Some("namespaces")
            && let Some(ns) = cur.get(1)
        {
            info.namespace = ns.clone();
            if let Some(third) = cur.get(2)
                && third != "status"
                && third != "finalize"
            {
                cur = cur.get(2..).unwrap_or_default();
            }
        }

        if let Some(resource) = cur.first() {
            info.resource = resource.clone();
        }
        if let Some(name) = cur.get(1) {
            info.name = name.clone();
        }
        if info.verb != "proxy"
            && let Some(sub) = cur.get(2)
        {
            info.subresource = sub.clone();
        }

        let query = Query::parse(raw_query.unwrap_or(""));
        if info.name.is_empty() && info.verb == "get" {
            info.verb = if query.is_true("watch") {
                "watch"
            } else {
                "list"
            }
            .to_owned();
        }
        if info.name.is_empty() && info.verb == "delete" {
            info.verb = "deletecollection".to_owned();
        }
        if (info.verb == "list" || info.verb == "watch")
            && let Some(name) = query.get("fieldSelector").and_then(single_name_selector)
        {
            info.name = name;
        }
        Ok(RequestInfo::Resource(info))
    }
}

/// A decoded `application/x-www-form-urlencoded` query string; later values of a repeated key
/// are kept but [`Query::get`] returns the first, as Go's `url.Values.Get` does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Parses a raw query string. Pairs that do not decode are dropped.
    pub fn parse(raw: &str) -> Self {
        let pairs = raw
            .split('&')
            .filter(|p| !p.is_empty())
            .filter_map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                Some((form_decode(k)?, form_decode(v)?))
            })
            .collect();
        Query { pairs }
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order.
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether `key` is present with a true value, as kube-apiserver reads boolean parameters
    /// such as `watch` (`true`, `1`; an empty value is false).
    pub fn is_true(&self, key: &str) -> bool {
        matches!(
            self.get(key).map(str::to_ascii_lowercase).as_deref(),
            Some("true" | "1" | "t")
        )
    }
}

/// Returns the name a field selector pins, when it is exactly `metadata.name=<x>` (or `==`).
fn single_name_selector(selector: &str) -> Option<String> {
    let selector = selector.trim();
    if selector.contains(',') {
        return None;
    }
    let value = selector
        .strip_prefix("metadata.name==")
        .or_else(|| selector.strip_prefix("metadata.name="))?;
    let value = value.trim();
    (!value.is_empty() && !value.contains('/') && value != "." && value != "..")
        .then(|| value.to_owned())
}

/// Percent-decodes one path segment; `None` when an escape is malformed or the result is not
/// UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    decode(s, false)
}

/// Decodes a form value: percent escapes and `+` as space.
fn form_decode(s: &str) -> Option<String> {
    decode(s, true)
}

fn decode(s: &str, plus_is_space: bool) -> Option<String> {
    if !(s.contains('%') || plus_is_space && s.contains('+')) {
        return Some(s.to_owned());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hi = hex(*bytes.get(i + 1)?)?;
                let lo = hex(*bytes.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(method: &str, path: &str, query: Option<&str>) -> ResourceRequest {
        match RequestInfo::parse(method, path, query).unwrap() {
            RequestInfo::Resource(r) => r,
            other => panic!("{method} {path}: expected a resource request, got {other:?}"),
        }
    }

    #[test]
    fn discovery_and_health_paths_are_non_resource() {
        for path in [
            "/",
            "/api",
            "/api/v1",
            "/apis",
            "/apis/apps",
            "/apis/apps/v1",
            "/healthz",
            "/version",
            "/openapi/v3",
        ] {
            assert!(
                matches!(RequestInfo::parse("GET", path, None).unwrap(), RequestInfo::NonResource { ref verb, .. } if verb == "get"),
                "{path}"
            );
        }
        assert!(matches!(
            RequestInfo::parse("HEAD", "/healthz", None).unwrap(),
            RequestInfo::NonResource { verb, .. } if verb == "head"
        ));
    }

    #[test]
    fn verbs_follow_method_name_and_watch_parameter() {
        assert_eq!(
            res("GET", "/api/v1/namespaces/default/pods", None).verb,
            "list"
        );
        assert_eq!(
            res("GET", "/api/v1/namespaces/default/pods", Some("watch=true")).verb,
            "watch"
        );
        assert_eq!(
            res("GET", "/api/v1/namespaces/default/pods", Some("watch=1")).verb,
            "watch"
        );
        assert_eq!(
            res(
                "GET",
                "/api/v1/namespaces/default/pods",
                Some("watch=false")
            )
            .verb,
            "list"
        );
        assert_eq!(
            res("GET", "/api/v1/namespaces/default/pods/x", None).verb,
            "get"
        );
        assert_eq!(
            res("POST", "/api/v1/namespaces/default/pods", None).verb,
            "create"
        );
        assert_eq!(
            res("PUT", "/api/v1/namespaces/default/pods/x", None).verb,
            "update"
        );
        assert_eq!(
            res("PATCH", "/api/v1/namespaces/default/pods/x", None).verb,
            "patch"
        );
        assert_eq!(
            res("DELETE", "/api/v1/namespaces/default/pods/x", None).verb,
            "delete"
        );
        assert_eq!(
            res("DELETE", "/api/v1/namespaces/default/pods", None).verb,
            "deletecollection"
        );
        let w = res("GET", "/api/v1/watch/namespaces/default/pods", None);
        assert_eq!(
            (w.verb.as_str(), w.resource.as_str(), w.namespace.as_str()),
            ("watch", "pods", "default")
        );
    }

    #[test]
    fn namespace_object_is_its_own_namespace() {
        let r = res("GET", "/api/v1/namespaces/foo", None);
        assert_eq!(
            (r.namespace.as_str(), r.resource.as_str(), r.name.as_str()),
            ("foo", "namespaces", "foo")
        );
        let s = res("PUT", "/api/v1/namespaces/foo/finalize", None);
        assert_eq!(
            (s.resource.as_str(), s.name.as_str(), s.subresource.as_str()),
            ("namespaces", "foo", "finalize")
        );
    }

    #[test]
    fn groups_subresources_and_field_selector_names() {
        let r = res(
            "GET",
            "/apis/apps/v1/namespaces/ns/deployments/web/scale",
            None,
        );
        assert_eq!(r.group, "apps");
        assert_eq!(r.subresource, "scale");
        assert_eq!(r.name, "web");
        let l = res(
            "GET",
            "/api/v1/namespaces/ns/pods",
            Some("fieldSelector=metadata.name%3Dweb&watch=1"),
        );
        assert_eq!((l.verb.as_str(), l.name.as_str()), ("watch", "web"));
        let many = res(
            "GET",
            "/api/v1/pods",
            Some("fieldSelector=metadata.name%3Dweb,metadata.namespace%3Dx"),
        );
        assert_eq!(many.name, "");
    }

    #[test]
    fn encoded_slash_stays_inside_its_segment() {
        let r = res("GET", "/api/v1/namespaces/default/pods/a%2F..%2Fb", None);
        assert_eq!(r.name, "a/../b");
        assert_eq!(r.subresource, "");
        assert!(RequestInfo::parse("GET", "/api/v1/namespaces/default/pods/%zz", None).is_err());
        assert!(RequestInfo::parse("GET", "/api/v1/watch", None).is_err());
    }
}
