//! RBAC decision benchmarks: [`Snapshot::authorize`] against the upstream linear walk
//! ([`reference::authorize`]) on synthetic clusters of 500, 5,000 and 50,000 bindings, plus
//! [`Snapshot::build`] time and the resident memory one 50,000-binding snapshot takes.
//!
//! Run with `cargo bench -p portcullis-authz --bench decision`. The design budget (DESIGN.md) is
//! "RBAC decision, 50k bindings: < 1 µs median, and no more than 2x the 500-binding figure".
//!
//! The synthetic cluster for N bindings:
//!
//! - N/10 namespaces (`ns-00000`, ...), each with three Roles (`pod-reader`, `deployer`,
//!   `config-editor`) of two or three rules;
//! - ClusterRoles shaped like the bootstrap ones: `cluster-admin`, `admin`, `edit`, `view`,
//!   `system:basic-user`, `system:discovery`, `system:public-info-viewer`, two small ones for
//!   the group bindings (`namespace-lister`, `self-reviewer`), and 20 custom ones;
//! - N/100 ClusterRoleBindings: five bind the group `system:authenticated` (the three bootstrap
//!   ones and two custom), the rest bind users, groups and service accounts to other ClusterRoles;
//! - the other bindings are RoleBindings, about ten per namespace, each binding one distinct user
//!   `user-<i>`, every third also a group `team-<k>`, every seventh also a service account, to
//!   `view`, `edit` (ClusterRoles) or one of the namespace's Roles.
//!
//! The queried user, `user-<i>` of namespace X (the middle namespace), is bound to `view` in X by
//! its sixth RoleBinding (by name). `allow` asks `get pods` in X; `deny` asks `delete secrets` in X,
//! which nothing grants it; `deny_group_heavy` asks the same as the same user with the group
//! `system:authenticated`, which the five group ClusterRoleBindings match, so their rules are
//! checked too. `allow_spread` rotates over 1,024 allowed `get pods` requests of users (each with
//! `system:authenticated`) across the whole cluster, so that the data a decision touches is not
//! always hot in cache.

use std::hint::black_box;
use std::sync::OnceLock;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use portcullis_api::{RequestInfo, ResourceRequest, UserInfo};
use portcullis_authz::rbac::{
    Policy, PolicyRule, Role, RoleBinding, RoleRef, Snapshot, Subject, reference,
};

/// Binding counts of the synthetic clusters.
const SIZES: [usize; 3] = [500, 5_000, 50_000];
/// Binding counts the linear walk is run at for allowed requests (it is O(N) either way).
const LINEAR_ALLOW_SIZES: [usize; 2] = [500, 5_000];
/// How many ClusterRoleBindings bind `system:authenticated`.
const AUTHENTICATED_CRBS: usize = 5;
/// Requests `allow_spread` rotates over.
const SPREAD: usize = 1_024;

/// One synthetic cluster, its compiled snapshot, and the requests the benchmarks ask.
struct Cluster {
    bindings: usize,
    policy: Policy,
    snapshot: Snapshot,
    user: UserInfo,
    group_user: UserInfo,
    allow: RequestInfo,
    deny: RequestInfo,
    spread: Vec<(UserInfo, RequestInfo)>,
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect();
    PolicyRule {
        verbs: strings(verbs),
        api_groups: strings(groups),
        resources: strings(resources),
        ..PolicyRule::default()
    }
}

fn url_rule(urls: &[&str], verbs: &[&str]) -> PolicyRule {
    let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect();
    PolicyRule {
        verbs: strings(verbs),
        non_resource_urls: strings(urls),
        ..PolicyRule::default()
    }
}

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];

/// `view`-shaped rules: read access to the common namespaced resources, no secrets.
fn view_rules() -> Vec<PolicyRule> {
    vec![
        rule(
            &[""],
            &[
                "configmaps",
                "endpoints",
                "persistentvolumeclaims",
                "persistentvolumeclaims/status",
                "pods",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "serviceaccounts",
                "services",
                "services/status",
            ],
            READ,
        ),
        rule(
            &[""],
            &[
                "bindings",
                "events",
                "limitranges",
                "namespaces/status",
                "pods/log",
                "pods/status",
                "replicationcontrollers/status",
                "resourcequotas",
                "resourcequotas/status",
            ],
            READ,
        ),
        rule(&[""], &["namespaces"], READ),
        rule(
            &["apps"],
            &[
                "controllerrevisions",
                "daemonsets",
                "daemonsets/status",
                "deployments",
                "deployments/scale",
                "deployments/status",
                "replicasets",
                "replicasets/scale",
                "replicasets/status",
                "statefulsets",
                "statefulsets/scale",
                "statefulsets/status",
            ],
            READ,
        ),
        rule(
            &["autoscaling"],
            &[
                "horizontalpodautoscalers",
                "horizontalpodautoscalers/status",
            ],
            READ,
        ),
        rule(
            &["batch"],
            &["cronjobs", "cronjobs/status", "jobs", "jobs/status"],
            READ,
        ),
        rule(
            &["networking.k8s.io"],
            &["ingresses", "ingresses/status", "networkpolicies"],
            READ,
        ),
        rule(
            &["policy"],
            &["poddisruptionbudgets", "poddisruptionbudgets/status"],
            READ,
        ),
    ]
}

/// `edit`-shaped rules: `view` plus writes, secrets included.
fn edit_rules() -> Vec<PolicyRule> {
    let mut rules = vec![
        rule(
            &[""],
            &[
                "pods",
                "pods/attach",
                "pods/exec",
                "pods/portforward",
                "pods/proxy",
            ],
            &[
                "create",
                "delete",
                "deletecollection",
                "patch",
                "update",
                "get",
                "list",
                "watch",
            ],
        ),
        rule(
            &[""],
            &[
                "configmaps",
                "events",
                "persistentvolumeclaims",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "secrets",
                "serviceaccounts",
                "services",
                "services/proxy",
            ],
            WRITE,
        ),
        rule(&[""], &["serviceaccounts/token"], &["create"]),
        rule(
            &["apps"],
            &[
                "daemonsets",
                "deployments",
                "deployments/rollback",
                "deployments/scale",
                "replicasets",
                "replicasets/scale",
                "statefulsets",
                "statefulsets/scale",
            ],
            WRITE,
        ),
        rule(&["batch"], &["cronjobs", "jobs"], WRITE),
        rule(
            &["networking.k8s.io"],
            &["ingresses", "networkpolicies"],
            WRITE,
        ),
        rule(&[""], &["secrets"], READ),
    ];
    rules.extend(view_rules());
    rules
}

fn role(namespace: &str, name: &str, rules: Vec<PolicyRule>) -> Role {
    let mut r = Role {
        rules,
        ..Role::default()
    };
    r.metadata.name = name.to_owned();
    r.metadata.namespace = namespace.to_owned();
    r
}

fn subject(kind: &str, name: &str, namespace: &str) -> Subject {
    Subject {
        kind: kind.to_owned(),
        api_group: if kind == "ServiceAccount" {
            String::new()
        } else {
            "rbac.authorization.k8s.io".to_owned()
        },
        name: name.to_owned(),
        namespace: namespace.to_owned(),
    }
}

fn binding(
    namespace: &str,
    name: String,
    role_kind: &str,
    role_name: &str,
    subjects: Vec<Subject>,
) -> RoleBinding {
    let mut b = RoleBinding {
        subjects,
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_owned(),
            kind: role_kind.to_owned(),
            name: role_name.to_owned(),
        },
        ..RoleBinding::default()
    };
    b.metadata.name = name;
    b.metadata.namespace = namespace.to_owned();
    b
}

fn namespace_name(i: usize) -> String {
    format!("ns-{i:05}")
}

/// The role a namespace's `j`-th RoleBinding grants: `(kind, name)`.
fn role_of(j: usize) -> (&'static str, &'static str) {
    match j % 5 {
        0 => ("ClusterRole", "view"),
        1 => ("Role", "pod-reader"),
        2 => ("Role", "deployer"),
        3 => ("ClusterRole", "edit"),
        _ => ("Role", "config-editor"),
    }
}

/// The policy of a cluster with `n` bindings (see the crate documentation).
fn policy(n: usize) -> Policy {
    let namespaces = n / 10;
    let crb_count = n / 100;
    let rb_count = n - crb_count;

    let mut cluster_roles = vec![
        role(
            "",
            "cluster-admin",
            vec![rule(&["*"], &["*"], &["*"]), url_rule(&["*"], &["*"])],
        ),
        role("", "view", view_rules()),
        role("", "edit", edit_rules()),
        role("", "admin", {
            let mut r = vec![rule(
                &["rbac.authorization.k8s.io"],
                &["rolebindings", "roles"],
                &[
                    "create",
                    "delete",
                    "deletecollection",
                    "get",
                    "list",
                    "patch",
                    "update",
                    "watch",
                ],
            )];
            r.extend(edit_rules());
            r
        }),
        role(
            "",
            "system:basic-user",
            vec![rule(
                &["authorization.k8s.io"],
                &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                &["create"],
            )],
        ),
        role(
            "",
            "system:discovery",
            vec![url_rule(
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
                &["get"],
            )],
        ),
        role(
            "",
            "system:public-info-viewer",
            vec![url_rule(
                &["/healthz", "/livez", "/readyz", "/version", "/version/"],
                &["get"],
            )],
        ),
        role(
            "",
            "namespace-lister",
            vec![rule(&[""], &["namespaces"], &["get", "list"])],
        ),
        role(
            "",
            "self-reviewer",
            vec![rule(
                &["authentication.k8s.io"],
                &["selfsubjectreviews"],
                &["create"],
            )],
        ),
    ];
    for k in 0..20 {
        cluster_roles.push(role(
            "",
            &format!("custom-{k:02}"),
            vec![
                rule(
                    &[&format!("example{k}.io")],
                    &["widgets", "widgets/status"],
                    READ,
                ),
                rule(&[&format!("example{k}.io")], &["widgets"], WRITE),
                rule(&[""], &["nodes", "persistentvolumes"], READ),
            ],
        ));
    }

    let mut roles = Vec::with_capacity(namespaces * 3);
    for i in 0..namespaces {
        let ns = namespace_name(i);
        roles.push(role(
            &ns,
            "pod-reader",
            vec![
                rule(&[""], &["pods", "pods/log", "pods/status"], READ),
                rule(&[""], &["events"], READ),
            ],
        ));
        roles.push(role(
            &ns,
            "deployer",
            vec![
                rule(
                    &["apps"],
                    &["deployments", "replicasets", "deployments/scale"],
                    READ,
                ),
                rule(
                    &["apps"],
                    &["deployments", "deployments/scale"],
                    &["create", "patch", "update"],
                ),
                rule(&[""], &["pods"], READ),
            ],
        ));
        roles.push(role(
            &ns,
            "config-editor",
            vec![
                rule(&[""], &["configmaps", "services"], READ),
                rule(&[""], &["configmaps", "services"], WRITE),
            ],
        ));
    }

    let mut cluster_role_bindings = Vec::with_capacity(crb_count);
    let authenticated = [
        ("system:basic-user", "system:basic-user"),
        ("system:discovery", "system:discovery"),
        ("system:public-info-viewer", "system:public-info-viewer"),
        ("authenticated-namespace-lister", "namespace-lister"),
        ("authenticated-self-reviewer", "self-reviewer"),
    ];
    for (name, role_name) in authenticated.iter().take(crb_count) {
        cluster_role_bindings.push(binding(
            "",
            (*name).to_owned(),
            "ClusterRole",
            role_name,
            vec![subject("Group", "system:authenticated", "")],
        ));
    }
    for k in 0..crb_count.saturating_sub(AUTHENTICATED_CRBS) {
        let (role_name, subjects) = match k % 4 {
            0 => (
                "cluster-admin".to_owned(),
                vec![subject("User", &format!("admin-{k}"), "")],
            ),
            1 => (
                "view".to_owned(),
                vec![subject("Group", &format!("auditors-{k}"), "")],
            ),
            2 => (
                "edit".to_owned(),
                vec![subject(
                    "ServiceAccount",
                    &format!("controller-{k}"),
                    "kube-system",
                )],
            ),
            _ => (
                format!("custom-{:02}", k % 20),
                vec![
                    subject("User", &format!("operator-{k}"), ""),
                    subject("Group", &format!("operators-{k}"), ""),
                ],
            ),
        };
        cluster_role_bindings.push(binding(
            "",
            format!("crb-{k:05}"),
            "ClusterRole",
            &role_name,
            subjects,
        ));
    }

    let mut role_bindings = Vec::with_capacity(rb_count);
    for i in 0..rb_count {
        let ns_index = i % namespaces;
        let j = i / namespaces;
        let ns = namespace_name(ns_index);
        let (kind, role_name) = role_of(j);
        let mut subjects = vec![subject("User", &format!("user-{i}"), "")];
        if i % 3 == 0 {
            subjects.push(subject("Group", &format!("team-{}", i % 97), ""));
        }
        if i % 7 == 0 {
            subjects.push(subject("ServiceAccount", &format!("sa-{j}"), ""));
        }
        role_bindings.push(binding(
            &ns,
            format!("rb-{j:03}-{i:06}"),
            kind,
            role_name,
            subjects,
        ));
    }

    Policy {
        cluster_roles,
        roles,
        cluster_role_bindings,
        role_bindings,
    }
}

fn user(name: String, groups: &[&str]) -> UserInfo {
    UserInfo {
        username: name,
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        ..UserInfo::default()
    }
}

fn request(verb: &str, namespace: String, resource: &str, name: &str) -> RequestInfo {
    RequestInfo::Resource(ResourceRequest {
        verb: verb.to_owned(),
        api_prefix: "api".to_owned(),
        group: String::new(),
        version: "v1".to_owned(),
        namespace,
        resource: resource.to_owned(),
        subresource: String::new(),
        name: name.to_owned(),
        watch_path: false,
    })
}

impl Cluster {
    fn new(n: usize) -> Cluster {
        let policy = policy(n);
        let snapshot = Snapshot::build(&policy);
        assert_eq!(snapshot.binding_count(), n);
        let namespaces = n / 10;
        let x = namespaces / 2;
        // The namespace's sixth RoleBinding (j = 5) grants `view`.
        let i = 5 * namespaces + x;
        assert_eq!(role_of(5), ("ClusterRole", "view"));
        let cluster = Cluster {
            bindings: n,
            user: user(format!("user-{i}"), &[]),
            group_user: user(format!("user-{i}"), &["system:authenticated"]),
            allow: request("get", namespace_name(x), "pods", "web-0"),
            deny: request("delete", namespace_name(x), "secrets", "db-password"),
            spread: spread(n),
            policy,
            snapshot,
        };
        cluster.check();
        cluster
    }

    /// The benchmarks measure what they claim: the verdicts, and agreement with the oracle.
    fn check(&self) {
        let cases = [
            (&self.user, &self.allow, true),
            (&self.user, &self.deny, false),
            (&self.group_user, &self.deny, false),
        ];
        for (u, r, allowed) in cases {
            let fast = self.snapshot.authorize(u, r);
            assert_eq!(fast.is_allowed(), allowed, "{u:?} {r:?}: {fast:?}");
            assert_eq!(fast, reference::authorize(&self.policy, u, r));
        }
        for (u, r) in self.spread.iter().take(64) {
            let fast = self.snapshot.authorize(u, r);
            assert!(fast.is_allowed(), "{u:?} {r:?}: {fast:?}");
            assert_eq!(fast, reference::authorize(&self.policy, u, r));
        }
        for (u, r) in &self.spread {
            assert!(self.snapshot.authorize(u, r).is_allowed());
        }
    }
}

/// Allowed `get pods` requests of users spread over the whole cluster (a fixed pseudo-random
/// sequence), each with `system:authenticated`.
fn spread(n: usize) -> Vec<(UserInfo, RequestInfo)> {
    let namespaces = n / 10;
    let rb_count = n - n / 100;
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(SPREAD);
    while out.len() < SPREAD {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let i = (state >> 33) as usize % rb_count;
        let j = i / namespaces;
        // Every role but `config-editor` grants `get pods`.
        if role_of(j).1 == "config-editor" {
            continue;
        }
        out.push((
            user(format!("user-{i}"), &["system:authenticated"]),
            request("get", namespace_name(i % namespaces), "pods", "web-0"),
        ));
    }
    out
}

fn clusters() -> &'static [Cluster] {
    static CLUSTERS: OnceLock<Vec<Cluster>> = OnceLock::new();
    CLUSTERS.get_or_init(|| SIZES.iter().map(|&n| Cluster::new(n)).collect())
}

/// Resident set size of this process, in KiB (`VmRSS` of /proc/self/status).
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Prints the RSS growth of building one policy and one snapshot per size. It runs before
/// anything else has allocated much, and keeps everything it built until the end, so that the
/// allocator has few freed blocks to hand back instead of asking the kernel for fresh pages.
fn memory(_: &mut Criterion) {
    let mut keep = Vec::new();
    for &n in &SIZES {
        let before = rss_kib();
        let policy = black_box(policy(n));
        let mid = rss_kib();
        let snapshot = black_box(Snapshot::build(&policy));
        let after = rss_kib();
        if let (Some(before), Some(mid), Some(after)) = (before, mid, after) {
            let built = after.saturating_sub(mid);
            eprintln!(
                "memory/{n}: policy +{} KiB, Snapshot::build +{built} KiB ({:.0} B per binding)",
                mid.saturating_sub(before),
                built as f64 * 1024.0 / n as f64,
            );
        }
        keep.push((policy, snapshot));
    }
    drop(keep);
}

fn fast_group<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.warm_up_time(Duration::from_millis(800))
        .measurement_time(Duration::from_secs(3))
        .sample_size(60);
    g
}

fn decisions(c: &mut Criterion) {
    let clusters = clusters();

    let mut g = fast_group(c, "allow");
    for cl in clusters {
        g.bench_function(BenchmarkId::from_parameter(cl.bindings), |b| {
            b.iter(|| {
                cl.snapshot
                    .authorize(black_box(&cl.user), black_box(&cl.allow))
            })
        });
    }
    g.finish();

    let mut g = fast_group(c, "deny");
    for cl in clusters {
        g.bench_function(BenchmarkId::from_parameter(cl.bindings), |b| {
            b.iter(|| {
                cl.snapshot
                    .authorize(black_box(&cl.user), black_box(&cl.deny))
            })
        });
    }
    g.finish();

    let mut g = fast_group(c, "deny_group_heavy");
    for cl in clusters {
        g.bench_function(BenchmarkId::from_parameter(cl.bindings), |b| {
            b.iter(|| {
                cl.snapshot
                    .authorize(black_box(&cl.group_user), black_box(&cl.deny))
            })
        });
    }
    g.finish();

    let mut g = fast_group(c, "allow_spread");
    for cl in clusters {
        g.bench_function(BenchmarkId::from_parameter(cl.bindings), |b| {
            let mut next = 0usize;
            b.iter(|| {
                next = (next + 1) % SPREAD;
                let (u, r) = &cl.spread[next];
                cl.snapshot.authorize(black_box(u), black_box(r))
            })
        });
    }
    g.finish();
}

fn linear(c: &mut Criterion) {
    let clusters = clusters();

    let mut g = c.benchmark_group("linear_allow");
    g.warm_up_time(Duration::from_millis(800))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    for cl in clusters
        .iter()
        .filter(|cl| LINEAR_ALLOW_SIZES.contains(&cl.bindings))
    {
        g.bench_function(BenchmarkId::from_parameter(cl.bindings), |b| {
            b.iter(|| reference::authorize(&cl.policy, black_box(&cl.user), black_box(&cl.allow)))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("linear_deny");
    g.warm_up_time(Duration::from_millis(800))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    for cl in clusters {
        g.bench_function(BenchmarkId::from_parameter(cl.bindings), |b| {
            b.iter(|| reference::authorize(&cl.policy, black_box(&cl.user), black_box(&cl.deny)))
        });
    }
    g.finish();
}

fn build(c: &mut Criterion) {
    let clusters = clusters();
    let mut g = c.benchmark_group("build");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(10);
    for cl in clusters {
        g.bench_function(BenchmarkId::from_parameter(cl.bindings), |b| {
            // The snapshot is dropped outside the timed part.
            b.iter_batched(
                || (),
                |()| Snapshot::build(black_box(&cl.policy)),
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, memory, decisions, linear, build);
criterion_main!(benches);
