//! Units people read: µs / ms / s, and k / M.

use crate::metrics::Unit;

/// A duration in microseconds as `823 µs`, `1.23 ms`, `2.50 s`.
pub fn micros(us: u64) -> String {
    if us < 1_000 {
        format!("{us} µs")
    } else if us < 10_000 {
        format!("{:.2} ms", us as f64 / 1e3)
    } else if us < 1_000_000 {
        format!("{:.1} ms", us as f64 / 1e3)
    } else {
        format!("{:.2} s", us as f64 / 1e6)
    }
}

/// A count as `999`, `12.3k`, `4.56M`.
pub fn count(n: u64) -> String {
    if n < 10_000 {
        n.to_string()
    } else if n < 1_000_000 {
        format!("{:.1}k", n as f64 / 1e3)
    } else {
        format!("{:.2}M", n as f64 / 1e6)
    }
}

/// A rate per second as `12.5/s`, `3.4k/s`.
pub fn rate(per_sec: f64) -> String {
    if per_sec < 1_000.0 {
        format!("{per_sec:.1}/s")
    } else if per_sec < 1_000_000.0 {
        format!("{:.1}k/s", per_sec / 1e3)
    } else {
        format!("{:.2}M/s", per_sec / 1e6)
    }
}

/// KiB as `512 KiB`, `25.3 MiB`, `1.20 GiB`.
pub fn kib(k: u64) -> String {
    if k < 1024 {
        format!("{k} KiB")
    } else if k < 1024 * 1024 {
        format!("{:.1} MiB", k as f64 / 1024.0)
    } else {
        format!("{:.2} GiB", k as f64 / (1024.0 * 1024.0))
    }
}

/// A threshold's value in its unit: `3.21 ms`, `512.0/s`, `0.120%`, `12`.
pub fn observed(unit: Unit, v: f64) -> String {
    match unit {
        Unit::Count => count(v.round() as u64),
        Unit::Microseconds => micros(v.round() as u64),
        Unit::PerSecond => rate(v),
        Unit::Ratio => format!("{:.3}%", v * 100.0),
    }
}

/// A signed relative change as `+12.3%`, `-0.5%`, `0.0%`; `n/a` when there is no base.
pub fn change(base: f64, new: f64) -> String {
    match relative_change(base, new) {
        Some(c) if c.abs() < 0.0005 => "0.0%".to_owned(),
        Some(c) => format!("{:+.1}%", c * 100.0),
        None if new == 0.0 => "0.0%".to_owned(),
        None => "new".to_owned(),
    }
}

/// `(new - base) / base`, or `None` when the base is zero.
pub fn relative_change(base: f64, new: f64) -> Option<f64> {
    (base != 0.0).then(|| (new - base) / base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(micros(823), "823 µs");
        assert_eq!(micros(1_234), "1.23 ms");
        assert_eq!(micros(45_600), "45.6 ms");
        assert_eq!(micros(2_500_000), "2.50 s");
        assert_eq!(count(9_999), "9999");
        assert_eq!(count(12_345), "12.3k");
        assert_eq!(count(4_560_000), "4.56M");
        assert_eq!(rate(3_400.0), "3.4k/s");
        assert_eq!(kib(25 * 1024 + 300), "25.3 MiB");
        assert_eq!(observed(Unit::Ratio, 0.0012), "0.120%");
        assert_eq!(observed(Unit::Microseconds, 3_210.4), "3.21 ms");
        assert_eq!(change(100.0, 112.34), "+12.3%");
        assert_eq!(change(100.0, 100.0), "0.0%");
        assert_eq!(change(0.0, 0.0), "0.0%");
        assert_eq!(change(0.0, 3.0), "new");
    }
}
