//! Asking a fleetbench hub in another process (`hub serve --metrics ADDR`) what it received of a
//! run: `GET /runs/<run-id>` over plain HTTP/1.1 (the hub's metrics listener; keep it on
//! loopback or a trusted network).

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::hub::accounts::RunAccount;

/// How long connecting to the hub's accounting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the whole answer may take (a run of a million devices is tens of megabytes).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest answer read.
const MAX_ANSWER: u64 = 1 << 30;

/// Why the hub's count of a run is unknown.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AccountsError {
    /// Not reachable.
    #[error(
        "cannot reach the hub's accounting at {addr} (target.accounts: the address of \
         `fleetbench hub serve --metrics ADDR`): {source}"
    )]
    Unreachable {
        /// target.accounts
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// No complete answer in time.
    #[error("the hub's accounting at {addr} did not answer within {} s", ANSWER_TIMEOUT.as_secs())]
    Timeout {
        /// target.accounts
        addr: String,
    },
    /// An answer that is not a run's counts.
    #[error(
        "the hub's accounting at {addr} answered GET {path} with {what}: is target.accounts the \
         address of `fleetbench hub serve --metrics`?"
    )]
    Answer {
        /// target.accounts
        addr: String,
        /// The path asked.
        path: String,
        /// What came back.
        what: String,
    },
}

/// What the hub at `addr` counted of run `run_id`.
pub(crate) async fn fetch(addr: &str, run_id: &str) -> Result<RunAccount, AccountsError> {
    let path = format!("/runs/{run_id}");
    let unreachable = |source| AccountsError::Unreachable {
        addr: addr.to_owned(),
        source,
    };
    let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| unreachable(std::io::ErrorKind::TimedOut.into()))?
        .map_err(unreachable)?;
    let exchange = async {
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        (&mut stream)
            .take(MAX_ANSWER)
            .read_to_end(&mut answer)
            .await?;
        Ok::<_, std::io::Error>(answer)
    };
    let answer = tokio::time::timeout(ANSWER_TIMEOUT, exchange)
        .await
        .map_err(|_| AccountsError::Timeout {
            addr: addr.to_owned(),
        })?
        .map_err(unreachable)?;
    parse(&answer, run_id).map_err(|what| AccountsError::Answer {
        addr: addr.to_owned(),
        path,
        what,
    })
}

/// The counts in an HTTP answer, or what is wrong with it.
fn parse(answer: &[u8], run_id: &str) -> Result<RunAccount, String> {
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("{} bytes that are not an HTTP answer", answer.len()))?;
    let head = String::from_utf8_lossy(&answer[..split]);
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("{status:?}"));
    }
    let account: RunAccount = serde_json::from_slice(&answer[split + 4..])
        .map_err(|e| format!("JSON that is not a run's counts ({e})"))?;
    if account.run_id != run_id {
        return Err(format!("the counts of another run ({:?})", account.run_id));
    }
    Ok(account)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_checked() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{\"run_id\":\"ab\",\"seen\":true,\"received\":3,\"devices\":{\"d1\":3},\"hub_refused\":[],\"hub_throttled\":0,\"runs_kept\":64}";
        let a = parse(ok, "ab").unwrap();
        assert_eq!((a.received, a.devices["d1"]), (3, 3));
        assert!(parse(ok, "cd").unwrap_err().contains("another run"));
        let missing = b"HTTP/1.1 404 Not Found\r\n\r\ntry /metrics\n";
        assert!(parse(missing, "ab").unwrap_err().contains("404"));
        assert!(parse(b"garbage", "ab")
            .unwrap_err()
            .contains("not an HTTP answer"));
        let html = b"HTTP/1.1 200 OK\r\n\r\n<html>";
        assert!(parse(html, "ab")
            .unwrap_err()
            .contains("not a run's counts"));
    }
}
