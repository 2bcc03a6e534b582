//! The `[thresholds]` table: `metric = "condition"` pairs, checked here with file, line and
//! field, and turned into [`Threshold`]s that `metrics` evaluates on any summary.
//!
//! ```toml
//! [thresholds]
//! "tls_handshake.p99" = "< 50ms"
//! "publish_ack.p99.9" = "< 200ms"
//! "errors.rate" = "< 0.001"
//! "connect.rate" = "> 500"
//! ```
//!
//! Unquoted dotted keys (`tls_handshake.p99 = "< 50ms"`) are TOML sub-tables; they are
//! flattened back into the same metric names, so both spellings work.

use super::problems::Problems;
use super::Scenario;
use crate::metrics::Threshold;

/// Validates every threshold, reporting each bad one at its line.
pub(super) fn thresholds(s: &Scenario, p: &mut Problems<'_>) -> Vec<Threshold> {
    conditions(&s.thresholds, "thresholds", p)
        .into_iter()
        .filter_map(
            |(name, condition)| match Threshold::parse(&name, &condition) {
                Ok(t) => Some(t),
                Err(e) => {
                    p.add(&format!("thresholds.{name}"), e.to_string());
                    None
                }
            },
        )
        .collect()
}

/// The `metric = "condition"` pairs of `table` (found at `at`, e.g. `capacity.slo`), dotted
/// keys flattened into one metric name; anything but a string is a problem at its line.
pub(in crate::scenario) fn conditions(
    table: &toml::Table,
    at: &str,
    p: &mut Problems<'_>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    flatten(table, "", at, &mut out, p);
    out
}

fn flatten(
    table: &toml::Table,
    prefix: &str,
    at: &str,
    out: &mut Vec<(String, String)>,
    p: &mut Problems<'_>,
) {
    for (key, value) in table {
        let name = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::String(c) => out.push((name, c.clone())),
            toml::Value::Table(t) => flatten(t, &name, at, out, p),
            other => p.add(
                &format!("{at}.{name}"),
                format!("{other} is not valid: a condition string such as \"< 50ms\" or \"> 500\""),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::metrics::{Metric, Op, Phase, Stat};

    use crate::scenario::test_plan as plan;

    #[test]
    fn quoted_and_dotted_keys_name_the_same_metrics() {
        let p = plan(
            "[thresholds]\n\"tls_handshake.p99\" = \"< 50ms\"\npublish_ack.max = \"<= 1s\"\n\
             \"errors.rate\" = \"< 0.001\"\n",
        )
        .unwrap();
        let names: Vec<_> = p.thresholds.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            ["errors.rate", "publish_ack.max", "tls_handshake.p99"]
        );
        assert_eq!(
            p.thresholds[1].metric,
            Metric::Latency(Phase::PublishAck, Stat::Max)
        );
        assert_eq!(p.thresholds[1].op, Op::AtMost);
        assert_eq!(p.to_json()["thresholds"]["tls_handshake.p99"], "< 50ms");
    }

    #[test]
    fn a_bad_threshold_is_named_with_line_and_field() {
        let e = plan("[fleet]\ndevices = 2\n[thresholds]\n\"tls_handshake.p99\" = \"< 50\"\n\"bogus.p99\" = \"< 1ms\"\nok = 3\n")
            .unwrap_err();
        let got: Vec<_> = e.0.iter().map(|e| (e.field.as_str(), e.line)).collect();
        assert_eq!(
            got,
            [
                ("thresholds.tls_handshake.p99", Some(4)),
                ("thresholds.bogus.p99", Some(5)),
                ("thresholds.ok", Some(6)),
            ]
        );
        assert!(e.0[0].message.contains("needs a unit"), "{}", e.0[0]);
    }
}
