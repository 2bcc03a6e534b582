//! The live metrics endpoints of `run --metrics ADDR` and `hub serve --metrics ADDR`: a minimal
//! HTTP/1.1 responder on tokio that answers `GET /metrics` with current counters in OpenMetrics
//! text. It reads snapshots only, so scraping never touches the measured path. `hub serve` also
//! answers `GET /runs/<run-id>` with JSON (see [`serve_routes`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::metrics::Recorder;
use crate::report::openmetrics::{write_openmetrics, CONTENT_TYPE};

/// A request head larger than this is refused: scrapers send a few hundred bytes.
const MAX_HEAD: usize = 8 * 1024;
/// A client that has not sent its request head by then is dropped.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Renders one exposition, ending with `# EOF`.
pub type Render = Arc<dyn Fn() -> std::io::Result<Vec<u8>> + Send + Sync>;

/// Answers a GET of another path with a JSON body, or `None` (404).
pub type JsonRoute = Arc<dyn Fn(&str) -> Option<Vec<u8>> + Send + Sync>;

/// Serves `listener` with the recorder's counters until `stop` is cancelled.
pub async fn serve(listener: TcpListener, recorder: Arc<Recorder>, stop: CancellationToken) {
    let render: Render = Arc::new(move || {
        let mut body = Vec::with_capacity(4096);
        write_openmetrics(&mut body, &recorder.snapshot(), &recorder.histograms())?;
        Ok(body)
    });
    serve_with(listener, render, stop).await;
}

/// Serves `listener` with what `render` makes until `stop` is cancelled.
pub async fn serve_with(listener: TcpListener, render: Render, stop: CancellationToken) {
    serve_routes(listener, render, Arc::new(|_| None), stop).await;
}

/// Serves `listener` until `stop` is cancelled: `GET /metrics` with what `render` makes, any
/// other `GET` with what `json` answers for its path.
pub async fn serve_routes(
    listener: TcpListener,
    render: Render,
    json: JsonRoute,
    stop: CancellationToken,
) {
    loop {
        let stream = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::debug!(error = %e, "metrics endpoint accept failed");
                    continue;
                }
            },
        };
        let (render, json) = (render.clone(), json.clone());
        tokio::spawn(async move {
            if let Err(e) = respond(stream, &*render, &*json).await {
                tracing::debug!(error = %e, "metrics endpoint request failed");
            }
        });
    }
}

async fn respond(
    mut stream: TcpStream,
    render: &(dyn Fn() -> std::io::Result<Vec<u8>> + Send + Sync),
    json: &(dyn Fn(&str) -> Option<Vec<u8>> + Send + Sync),
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(READ_TIMEOUT, stream.read(&mut buf))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        if n == 0 || head.len() + n > MAX_HEAD {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|b| *b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|b| *b == b' ');
    let (method, path) = (parts.next(), parts.next());
    let (status, content_type, body) = match (method, path) {
        (Some(b"GET"), Some(b"/metrics")) => ("200 OK", CONTENT_TYPE, render()?),
        (Some(b"GET"), Some(path)) => match json(&String::from_utf8_lossy(path)) {
            Some(body) => ("200 OK", "application/json", body),
            None => ("404 Not Found", "text/plain", b"try /metrics\n".to_vec()),
        },
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            b"GET only\n".to_vec(),
        ),
    };
    let header = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(header.as_bytes()).await?;
    stream.write_all(&body).await?;
    stream.shutdown().await
}
