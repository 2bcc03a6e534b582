//! What may be merged: all N shards of one split, each once, from one scenario and one CA.

use serde_json::Value;

use super::ShardSummary;

/// Why summaries cannot be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// Nothing was given.
    #[error("no shard summaries to merge")]
    Empty,
    /// A summary of an unsharded run.
    #[error("{0} is not a shard: it was run without --shard K/N")]
    NotShard(String),
    /// Shards of different splits.
    #[error("{a} is shard {ka} of {na} but {b} is shard {kb} of {nb}: the shard counts differ")]
    Count {
        /// First source.
        a: String,
        /// Its index.
        ka: u64,
        /// Its count.
        na: u64,
        /// Second source.
        b: String,
        /// Its index.
        kb: u64,
        /// Its count.
        nb: u64,
    },
    /// The same shard twice.
    #[error("{a} and {b} are both shard {k}/{n}")]
    Duplicate {
        /// First source.
        a: String,
        /// Second source.
        b: String,
        /// Index.
        k: u64,
        /// Count.
        n: u64,
    },
    /// Shards absent.
    #[error("shards {missing} of {n} are missing: the merge would not be the whole fleet")]
    Missing {
        /// Their indices, comma-separated.
        missing: String,
        /// Count.
        n: u64,
    },
    /// Different scenarios.
    #[error("{a} and {b} ran different scenarios: {field} is {va} in {a} but {vb} in {b}")]
    Scenario {
        /// First source.
        a: String,
        /// Second source.
        b: String,
        /// Dotted path of the first difference.
        field: String,
        /// Its value in `a`.
        va: String,
        /// Its value in `b`.
        vb: String,
    },
    /// Different CAs.
    #[error("{a} and {b} used different CAs: device CA SHA-256 {fa} in {a} but {fb} in {b}")]
    Ca {
        /// First source.
        a: String,
        /// Second source.
        b: String,
        /// Fingerprint in `a`.
        fa: String,
        /// Fingerprint in `b`.
        fb: String,
    },
    /// A timestamp that does not parse.
    #[error("{source_name}: started_at {value:?} is not an RFC 3339 time")]
    StartedAt {
        /// Source.
        source_name: String,
        /// The value.
        value: String,
    },
    /// A histogram that does not decode or add.
    #[error("{source_name}: phase {phase}: {message}")]
    Histogram {
        /// Source.
        source_name: String,
        /// Phase name.
        phase: String,
        /// What went wrong.
        message: String,
    },
    /// The scenario's thresholds do not parse.
    #[error("{source_name}: scenario.thresholds: {message}")]
    Thresholds {
        /// Source.
        source_name: String,
        /// What went wrong.
        message: String,
    },
}

/// All shards of one split, each once, from one scenario and one CA; sorted by index.
pub(super) fn check_shards(shards: &mut [ShardSummary]) -> Result<(), MergeError> {
    for s in shards.iter() {
        if s.summary.shard.is_none() {
            return Err(MergeError::NotShard(s.source.clone()));
        }
    }
    // Invariant: every summary has a shard (checked above).
    #[allow(clippy::unwrap_used)]
    let info = |s: &ShardSummary| s.summary.shard.clone().unwrap();
    shards.sort_by_key(|s| info(s).index);
    let first = shards.first().ok_or(MergeError::Empty)?;
    let n = info(first).count;
    for s in &shards[1..] {
        let (a, b) = (info(first), info(s));
        if a.count != b.count {
            return Err(MergeError::Count {
                a: first.source.clone(),
                ka: a.index,
                na: a.count,
                b: s.source.clone(),
                kb: b.index,
                nb: b.count,
            });
        }
        if let Some((field, va, vb)) = difference(
            "scenario",
            &comparable(&first.summary.scenario),
            &comparable(&s.summary.scenario),
        ) {
            return Err(MergeError::Scenario {
                a: first.source.clone(),
                b: s.source.clone(),
                field,
                va,
                vb,
            });
        }
        if first.summary.ca_fingerprint != s.summary.ca_fingerprint {
            let f = |x: &Option<String>| x.clone().unwrap_or_else(|| "(none)".into());
            return Err(MergeError::Ca {
                a: first.source.clone(),
                b: s.source.clone(),
                fa: f(&first.summary.ca_fingerprint),
                fb: f(&s.summary.ca_fingerprint),
            });
        }
    }
    for w in shards.windows(2) {
        if info(&w[0]).index == info(&w[1]).index {
            return Err(MergeError::Duplicate {
                a: w[0].source.clone(),
                b: w[1].source.clone(),
                k: info(&w[0]).index,
                n,
            });
        }
    }
    let have: Vec<u64> = shards.iter().map(|s| info(s).index).collect();
    let missing: Vec<String> = (0..n)
        .filter(|k| !have.contains(k))
        .map(|k| k.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(MergeError::Missing {
            missing: missing.join(", "),
            n,
        });
    }
    Ok(())
}

/// The scenario without what may differ between shards of one fleet: where each found the CA
/// directory (the CA fingerprint is compared instead).
fn comparable(scenario: &Value) -> Value {
    let mut v = scenario.clone();
    if let Some(fleet) = v.get_mut("fleet").and_then(Value::as_object_mut) {
        fleet.remove("ca-dir");
    }
    v
}

/// The first difference between two JSON values: (dotted path, left, right).
fn difference(path: &str, a: &Value, b: &Value) -> Option<(String, String, String)> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<_> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| {
                let (va, vb) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                difference(&format!("{path}.{k}"), va, vb)
            })
        }
        _ if a == b => None,
        _ => Some((path.to_owned(), a.to_string(), b.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_first_difference_is_named_by_its_path() {
        let a = json!({"fleet": {"devices": 4, "ca-dir": "/a"}, "connect": {"rate": 10.0}});
        let b = json!({"fleet": {"devices": 4, "ca-dir": "/b"}, "connect": {"rate": 20.0}});
        assert_eq!(
            difference("scenario", &comparable(&a), &comparable(&b)),
            Some(("scenario.connect.rate".into(), "10.0".into(), "20.0".into()))
        );
        let c = json!({"fleet": {"devices": 4, "ca-dir": "/c"}, "connect": {"rate": 10.0}});
        assert_eq!(
            difference("scenario", &comparable(&a), &comparable(&c)),
            None
        );
        let d = json!({"fleet": {"devices": 4}, "connect": {"rate": 10.0}, "extra": 1});
        assert_eq!(
            difference("s", &comparable(&a), &d).map(|x| x.0),
            Some("s.extra".into())
        );
    }
}
