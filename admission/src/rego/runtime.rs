//! The plumbing around regorus that both policy styles share: engines built with our limits,
//! compiler messages on one line, input conversion with a depth bound, one rule evaluated with
//! its errors attributed to a policy, and rule results read as messages.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::time::Duration;

use regorus::{Engine, LimitError, Value as RegoValue};
use serde_json::Value;

use super::{RegoError, RegoVersion};

/// How long one policy may evaluate for one request before it is stopped and the request
/// fails closed.
pub const DEFAULT_TIME_LIMIT: Duration = Duration::from_millis(100);

/// How deeply the admission request may nest (objects and arrays) before it is refused. It is
/// twice serde_json's own parsing limit, so any request that serde_json parsed fits.
pub const MAX_INPUT_DEPTH: usize = 256;

/// A new engine for `version`, with prints kept in memory instead of written to stderr.
pub(super) fn new_engine(version: RegoVersion) -> Engine {
    let mut engine = Engine::new();
    engine.set_rego_v0(version == RegoVersion::V0);
    engine.set_gather_prints(true);
    engine
}

/// Applies the wall-clock limit to every later evaluation on `engine` and its clones.
pub(super) fn set_time_limit(engine: &mut Engine, limit: Duration) {
    engine.set_execution_timer_config(regorus::utils::limits::ExecutionTimerConfig {
        limit,
        check_interval: CHECK_INTERVAL,
    });
}

/// Adds the Rego in `text` to `engine` under the name `path`; returns its package path
/// (`data.main`).
pub(super) fn add_policy(engine: &mut Engine, path: &str, text: &str) -> Result<String, RegoError> {
    engine
        .add_policy(path.to_owned(), text.to_owned())
        .map_err(|error| RegoError::Compile {
            path: path.to_owned(),
            detail: one_line(&format!("{error:#}")),
        })
}

/// Evaluates `rule` (a full path, `data.main.deny`) on `engine`, which already holds the input.
pub(super) fn eval_rule(
    engine: &mut Engine,
    rule: &str,
    policy: &str,
    limit: Duration,
) -> Result<RegoValue, RegoError> {
    engine.eval_rule(rule.to_owned()).map_err(|error| {
        if let Some(LimitError::TimeLimitExceeded { .. }) = error.downcast_ref::<LimitError>() {
            RegoError::TimeLimit {
                policy: policy.to_owned(),
                limit,
            }
        } else {
            RegoError::Evaluation {
                policy: policy.to_owned(),
                detail: one_line(&format!("{error:#}")),
            }
        }
    })
}

/// Converts JSON into a Rego value, refusing input nested deeper than [`MAX_INPUT_DEPTH`].
pub(super) fn to_rego(value: &Value) -> Result<RegoValue, RegoError> {
    convert(value, 0)
}

fn convert(value: &Value, depth: usize) -> Result<RegoValue, RegoError> {
    Ok(match value {
        Value::Null => RegoValue::Null,
        Value::Bool(b) => RegoValue::from(*b),
        Value::Number(n) => {
            if let Some(n) = n.as_u64() {
                RegoValue::from(n)
            } else if let Some(n) = n.as_i64() {
                RegoValue::from(n)
            } else {
                RegoValue::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => RegoValue::from(s.as_str()),
        Value::Array(items) => {
            let depth = deeper(depth)?;
            let items: Result<Vec<_>, _> = items.iter().map(|v| convert(v, depth)).collect();
            RegoValue::from(items?)
        }
        Value::Object(fields) => {
            let depth = deeper(depth)?;
            let mut map = BTreeMap::new();
            for (key, value) in fields {
                map.insert(RegoValue::from(key.as_str()), convert(value, depth)?);
            }
            RegoValue::from(map)
        }
    })
}

fn deeper(depth: usize) -> Result<usize, RegoError> {
    if depth >= MAX_INPUT_DEPTH {
        return Err(RegoError::Input {
            reason: format!("it nests deeper than {MAX_INPUT_DEPTH} levels"),
        });
    }
    Ok(depth + 1)
}

/// An object with string keys.
pub(super) fn object<const N: usize>(fields: [(&str, RegoValue); N]) -> RegoValue {
    let map: BTreeMap<RegoValue, RegoValue> = fields
        .into_iter()
        .map(|(key, value)| (RegoValue::from(key), value))
        .collect();
    RegoValue::from(map)
}

/// What a rule may return for its messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Shape {
    /// conftest: a set of strings or of objects with `msg`, or a boolean.
    Conftest,
    /// Gatekeeper `violation`: a set of objects with `msg`.
    Violation,
}

impl Shape {
    fn expected(self) -> &'static str {
        match self {
            Shape::Conftest => "a set of strings or of objects with a `msg` string, or a boolean",
            Shape::Violation => "a set of objects with a `msg` string",
        }
    }
}

/// The messages of `rule`'s result `value`, appended to `out`. Undefined and `false` are none.
pub(super) fn messages(
    value: &RegoValue,
    shape: Shape,
    policy: &str,
    rule: &str,
    out: &mut Vec<String>,
) -> Result<(), RegoError> {
    let wrong = |found: &RegoValue| RegoError::Result {
        policy: policy.to_owned(),
        rule: rule.to_owned(),
        found: describe(found).to_owned(),
        expected: shape.expected(),
    };
    let items: Box<dyn Iterator<Item = &RegoValue>> = match value {
        RegoValue::Undefined => return Ok(()),
        RegoValue::Bool(holds) if shape == Shape::Conftest => {
            if *holds {
                out.push(rule.to_owned());
            }
            return Ok(());
        }
        RegoValue::Set(items) => Box::new(items.iter()),
        RegoValue::Array(items) => Box::new(items.iter()),
        other => return Err(wrong(other)),
    };
    for item in items {
        match item {
            RegoValue::String(message) if shape == Shape::Conftest => {
                out.push(message.as_ref().to_owned());
            }
            RegoValue::Object(fields) => match fields.get(&RegoValue::from("msg")) {
                Some(RegoValue::String(message)) => out.push(message.as_ref().to_owned()),
                _ => return Err(wrong(item)),
            },
            other => return Err(wrong(other)),
        }
    }
    Ok(())
}

fn describe(value: &RegoValue) -> &'static str {
    match value {
        RegoValue::Null => "null",
        RegoValue::Bool(_) => "a boolean",
        RegoValue::Number(_) => "a number",
        RegoValue::String(_) => "a string",
        RegoValue::Array(_) => "an array",
        RegoValue::Set(_) => "a set",
        RegoValue::Object(fields) if fields.contains_key(&RegoValue::from("msg")) => {
            "an object whose `msg` is not a string"
        }
        RegoValue::Object(_) => "an object without `msg`",
        RegoValue::Undefined => "undefined",
    }
}

/// regorus reports errors as a small report: `--> file:line:col`, the source line, a caret and
/// `error: message`. A log line wants `file:line:col: message`; anything else is folded onto
/// one line as it is.
pub(super) fn one_line(text: &str) -> String {
    let mut location = None;
    let mut message = None;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("--> ") {
            location.get_or_insert(rest);
        } else if let Some(rest) = line.strip_prefix("error: ") {
            message.get_or_insert(rest);
        }
    }
    match (location, message) {
        (Some(location), Some(message)) => format!("{location}: {message}"),
        _ => text.split_whitespace().collect::<Vec<_>>().join(" "),
    }
}

/// Clock reads are amortised over this many units of interpreter work.
const CHECK_INTERVAL: NonZeroU32 = match NonZeroU32::new(32) {
    Some(interval) => interval,
    None => NonZeroU32::MIN,
};
