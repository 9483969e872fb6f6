//! The metrics and status endpoint: a minimal HTTP/1.1 server on the control plane's tokio
//! runtime (`GET /metrics`, `GET /status`), and the matching client `trafgen status` uses
//! (a plain `std::net::TcpStream`, no HTTP crate).
//!
//! Owns: request parsing (just the request line; one request per connection, then close),
//! responses, and [`get`]. Does not render metrics (that is [`super::metrics`]) nor hold
//! state: it asks a render callback on every request. It never runs on the hot path.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What a request is answered with: (status line, content type, body).
pub type Response = (&'static str, &'static str, String);

/// Answers `GET path`; `render` gives (metrics text, status JSON) on demand.
pub fn respond(method: &str, path: &str, render: &dyn Fn(Page) -> String) -> Response {
    if method != "GET" && method != "HEAD" {
        return ("405 Method Not Allowed", "text/plain; charset=utf-8", "only GET\n".into());
    }
    match path.split('?').next().unwrap_or("") {
        "/metrics" => ("200 OK", "text/plain; version=0.0.4; charset=utf-8", render(Page::Metrics)),
        "/status" => ("200 OK", "application/json", render(Page::Status)),
        "/" => ("200 OK", "text/plain; charset=utf-8", "trafgend: /metrics (Prometheus), /status (JSON)\n".into()),
        _ => ("404 Not Found", "text/plain; charset=utf-8", "not found: try /metrics or /status\n".into()),
    }
}

/// Which document a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    Metrics,
    Status,
}

/// Serves `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, render: Arc<dyn Fn(Page) -> String + Send + Sync>) {
    loop {
        let (mut conn, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("metrics endpoint: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let render = render.clone();
        tokio::spawn(async move {
            let mut buf = Vec::with_capacity(1024);
            let mut chunk = [0u8; 1024];
            // the request head, at most 8 KiB and 5 s
            let head = tokio::time::timeout(Duration::from_secs(5), async {
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") && !buf.windows(2).any(|w| w == b"\n\n") && buf.len() < 8192 {
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            })
            .await;
            if head.is_err() {
                tracing::debug!(%peer, "metrics endpoint: request timed out");
                return;
            }
            let text = String::from_utf8_lossy(&buf);
            let mut words = text.lines().next().unwrap_or("").split_whitespace();
            let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
            let (status, ctype, body) = respond(method, path, &*render);
            let head = format!("HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            let _ = conn.write_all(head.as_bytes()).await;
            if method != "HEAD" {
                let _ = conn.write_all(body.as_bytes()).await;
            }
            let _ = conn.shutdown().await;
        });
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{url}: only http://HOST:PORT[/PATH] URLs are supported")]
    Url { url: String },
    #[error("{url}: {source}")]
    Io { url: String, source: std::io::Error },
    #[error("{url}: not an HTTP response")]
    Malformed { url: String },
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: String },
}

/// `GET path` from the daemon at `base` (`http://127.0.0.1:9177`); returns the body.
pub fn get(base: &str, path: &str) -> Result<String, ClientError> {
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let rest = base.strip_prefix("http://").ok_or_else(|| ClientError::Url { url: url.clone() })?;
    let hostport = rest.split('/').next().unwrap_or("");
    let io = |source| ClientError::Io { url: url.clone(), source };
    let addrs: Vec<SocketAddr> = hostport.to_socket_addrs().map_err(|_| ClientError::Url { url: url.clone() })?.collect();
    let addr = addrs.first().ok_or_else(|| ClientError::Url { url: url.clone() })?;
    let mut conn = TcpStream::connect_timeout(addr, Duration::from_secs(3)).map_err(io)?;
    conn.set_read_timeout(Some(Duration::from_secs(5))).map_err(io)?;
    write!(conn, "GET {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\r\n").map_err(io)?;
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).map_err(io)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| ClientError::Malformed { url: url.clone() })?;
    let status = head.lines().next().unwrap_or("").splitn(2, ' ').nth(1).unwrap_or("").to_owned();
    if !head.starts_with("HTTP/1.") {
        return Err(ClientError::Malformed { url });
    }
    if !status.starts_with("200") {
        return Err(ClientError::Status { url, status });
    }
    Ok(body.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(p: Page) -> String {
        match p {
            Page::Metrics => "m 1\n".into(),
            Page::Status => "{}".into(),
        }
    }

    #[test]
    fn routes() {
        assert_eq!(respond("GET", "/metrics", &render).2, "m 1\n");
        assert!(respond("GET", "/metrics", &render).1.contains("version=0.0.4"));
        assert_eq!(respond("GET", "/status?x=1", &render), ("200 OK", "application/json", "{}".into()));
        assert_eq!(respond("GET", "/nope", &render).0, "404 Not Found");
        assert_eq!(respond("POST", "/metrics", &render).0, "405 Method Not Allowed");
    }

    #[test]
    fn serves_and_the_client_reads_it() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let _guard = rt.enter();
        let server = rt.spawn(serve(listener, Arc::new(render)));
        let th = std::thread::spawn(move || {
            let base = format!("http://{addr}");
            (get(&base, "/metrics"), get(&base, "/status"), get(&base, "/nope"))
        });
        let (m, s, n) = rt.block_on(async {
            loop {
                if th.is_finished() {
                    break th.join().unwrap();
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        server.abort();
        assert_eq!(m.unwrap(), "m 1\n");
        assert_eq!(s.unwrap(), "{}");
        assert!(matches!(n, Err(ClientError::Status { ref status, .. }) if status.starts_with("404")), "{n:?}");
        assert!(matches!(get("https://x:1", "/"), Err(ClientError::Url { .. })));
    }
}
