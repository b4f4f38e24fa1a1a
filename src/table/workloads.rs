//! Rows for apps/v1 and batch/v1 workloads (deployments, replicasets, statefulsets,
//! daemonsets, jobs, cronjobs) and for rbac.authorization.k8s.io/v1 bindings.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::util::{
    NONE, Selector, array, at, container_cells, format_label_selector, format_labels,
    human_duration, int, label_selector, nanos_between, opt_bool, opt_int, opt_string, since,
    string, time,
};

fn name(obj: &Value) -> Value {
    json!(string(obj, "/metadata/name"))
}

fn age(obj: &Value, now: Timestamp) -> Value {
    json!(since(time(obj, "/metadata/creationTimestamp"), now))
}

/// `spec.replicas` with apps/v1 defaulting: an absent value means 1.
fn desired_replicas(obj: &Value) -> i64 {
    opt_int(obj, "/spec/replicas").unwrap_or(1)
}

/// Containers and images of the pod template under `spec` at `template`.
fn template_cells(obj: &Value, template: &str) -> (Value, Value) {
    let (names, images) = container_cells(obj, &format!("{template}/spec/containers"));
    (json!(names), json!(images))
}

/// Cells of a deployment: Name, Ready, Up-to-date, Available, Age, Containers, Images,
/// Selector.
pub(crate) fn deployment(d: &Value, now: Timestamp) -> Vec<Value> {
    let (containers, images) = template_cells(d, "/spec/template");
    // Deployments render the selector without FormatLabelSelector's placeholders.
    let selector = match label_selector(d, "/spec/selector") {
        Selector::Nothing => String::new(),
        Selector::Rendered(s) => s,
        Selector::Invalid => "<invalid>".to_owned(),
    };
    vec![
        name(d),
        json!(format!(
            "{}/{}",
            int(d, "/status/readyReplicas"),
            desired_replicas(d)
        )),
        json!(int(d, "/status/updatedReplicas")),
        json!(int(d, "/status/availableReplicas")),
        age(d, now),
        containers,
        images,
        json!(selector),
    ]
}

/// Cells of a replicaset: Name, Desired, Current, Ready, Age, Containers, Images, Selector.
pub(crate) fn replica_set(rs: &Value, now: Timestamp) -> Vec<Value> {
    let (containers, images) = template_cells(rs, "/spec/template");
    vec![
        name(rs),
        json!(desired_replicas(rs)),
        json!(int(rs, "/status/replicas")),
        json!(int(rs, "/status/readyReplicas")),
        age(rs, now),
        containers,
        images,
        json!(format_label_selector(rs, "/spec/selector")),
    ]
}

/// Cells of a statefulset: Name, Ready, Age, Containers, Images.
pub(crate) fn stateful_set(sts: &Value, now: Timestamp) -> Vec<Value> {
    let (containers, images) = template_cells(sts, "/spec/template");
    vec![
        name(sts),
        json!(format!(
            "{}/{}",
            int(sts, "/status/readyReplicas"),
            desired_replicas(sts)
        )),
        age(sts, now),
        containers,
        images,
    ]
}

/// Cells of a daemonset: Name, Desired, Current, Ready, Up-to-date, Available,
/// Node Selector, Age, Containers, Images, Selector.
pub(crate) fn daemon_set(ds: &Value, now: Timestamp) -> Vec<Value> {
    let (containers, images) = template_cells(ds, "/spec/template");
    vec![
        name(ds),
        json!(int(ds, "/status/desiredNumberScheduled")),
        json!(int(ds, "/status/currentNumberScheduled")),
        json!(int(ds, "/status/numberReady")),
        json!(int(ds, "/status/updatedNumberScheduled")),
        json!(int(ds, "/status/numberAvailable")),
        json!(format_labels(ds, "/spec/template/spec/nodeSelector")),
        age(ds, now),
        containers,
        images,
        json!(format_label_selector(ds, "/spec/selector")),
    ]
}

/// Whether the first job condition of `type_` has status `True`.
fn job_condition(job: &Value, type_: &str) -> bool {
    array(job, "/status/conditions")
        .iter()
        .find(|c| string(c, "/type") == type_)
        .is_some_and(|c| string(c, "/status") == "True")
}

/// Cells of a job: Name, Status, Completions, Duration, Age, Containers, Images, Selector.
pub(crate) fn job(job: &Value, now: Timestamp) -> Vec<Value> {
    let succeeded = int(job, "/status/succeeded");
    let completions = match opt_int(job, "/spec/completions") {
        Some(c) => format!("{succeeded}/{c}"),
        None => match opt_int(job, "/spec/parallelism").unwrap_or(0) {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let duration = match (
        time(job, "/status/startTime"),
        time(job, "/status/completionTime"),
    ) {
        (None, _) => String::new(),
        (Some(start), None) => human_duration(nanos_between(start, now)),
        (Some(start), Some(end)) => human_duration(nanos_between(start, end)),
    };
    let deleting = at(job, "/metadata/deletionTimestamp").is_some_and(|d| !d.is_null());
    let status = if job_condition(job, "Complete") {
        "Complete"
    } else if job_condition(job, "Failed") {
        "Failed"
    } else if deleting {
        "Terminating"
    } else if job_condition(job, "Suspended") {
        "Suspended"
    } else if job_condition(job, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let (containers, images) = template_cells(job, "/spec/template");
    vec![
        name(job),
        json!(status),
        json!(completions),
        json!(duration),
        age(job, now),
        containers,
        images,
        json!(format_label_selector(job, "/spec/selector")),
    ]
}

/// Cells of a cronjob: Name, Schedule, Timezone, Suspend, Active, Last Schedule, Age,
/// Containers, Images, Selector.
pub(crate) fn cron_job(cj: &Value, now: Timestamp) -> Vec<Value> {
    let last_schedule = match time(cj, "/status/lastScheduleTime") {
        Some(ts) => since(Some(ts), now),
        // A present-but-zero time still prints `<unknown>`, as upstream does.
        None if at(cj, "/status/lastScheduleTime").is_some_and(Value::is_string) => {
            since(None, now)
        }
        None => NONE.to_owned(),
    };
    let suspend = match opt_bool(cj, "/spec/suspend") {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    };
    let (containers, images) = template_cells(cj, "/spec/jobTemplate/spec/template");
    vec![
        name(cj),
        json!(string(cj, "/spec/schedule")),
        json!(opt_string(cj, "/spec/timeZone").unwrap_or(NONE)),
        json!(suspend),
        json!(array(cj, "/status/active").len()),
        json!(last_schedule),
        age(cj, now),
        containers,
        images,
        json!(format_label_selector(cj, "/spec/jobTemplate/spec/selector")),
    ]
}

/// Cells of a rolebinding or clusterrolebinding: Name, Role, Age, Users, Groups,
/// ServiceAccounts.
pub(crate) fn binding(b: &Value, now: Timestamp) -> Vec<Value> {
    let mut users = Vec::new();
    let mut groups = Vec::new();
    let mut service_accounts = Vec::new();
    for subject in array(b, "/subjects") {
        let subject_name = string(subject, "/name");
        match string(subject, "/kind") {
            "User" => users.push(subject_name.to_owned()),
            "Group" => groups.push(subject_name.to_owned()),
            "ServiceAccount" => {
                service_accounts.push(format!("{}/{subject_name}", string(subject, "/namespace")))
            }
            _ => {}
        }
    }
    vec![
        name(b),
        json!(format!(
            "{}/{}",
            string(b, "/roleRef/kind"),
            string(b, "/roleRef/name")
        )),
        age(b, now),
        json!(users.join(", ")),
        json!(groups.join(", ")),
        json!(service_accounts.join(", ")),
    ]
}
