//! Reading a live OpenMetrics endpoint (`run --metrics`, `hub serve --metrics`) over plain HTTP.

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;

/// The whole HTTP response of `GET /metrics` at `addr`, headers included.
pub fn scrape(addr: SocketAddr) -> String {
    let mut s = std::net::TcpStream::connect(addr).expect("metrics endpoint connects");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("request written");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("response read");
    out
}

/// The value of `sample` (a metric name with any labels) in an exposition.
pub fn value(exposition: &str, sample: &str) -> Option<f64> {
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
}

/// The value of `sample` served at `addr` now; 0 while it is absent.
pub fn value_at(addr: SocketAddr, sample: &str) -> f64 {
    value(&scrape(addr), sample).unwrap_or(0.0)
}
