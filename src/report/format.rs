//! Units people read: µs / ms / s, and k / M.

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
    }
}
