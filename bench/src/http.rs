//! The load generator's HTTP client: one keep-alive HTTP/1.1 connection per worker (hyper's
//! connection-level client, no pool to share), so a worker's latency is its own request's.

use std::{net::SocketAddr, sync::Arc};

use anyhow::{Context, anyhow, bail};
use axum::{
    body::Bytes,
    http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri, header},
};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// A server: where to connect, what to put in `Host`, the path prefix of its base URL, and the
/// bearer token.
#[derive(Debug)]
pub struct Endpoint {
    pub url: String,
    addr: SocketAddr,
    authority: HeaderValue,
    prefix: String,
    bearer: HeaderValue,
}

impl Endpoint {
    /// `url` is `http://host:port[/prefix]` (td's `TD_SYNC_URL`).
    pub async fn new(url: &str, token: &str) -> anyhow::Result<Arc<Endpoint>> {
        let trimmed = url.trim().trim_end_matches('/');
        let uri: Uri = trimmed
            .parse()
            .with_context(|| format!("bad --url {url:?}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => bail!("--url {url:?}: only http:// is supported (got {other}://)"),
            None => bail!("--url {url:?} needs a scheme, e.g. http://127.0.0.1:8080"),
        }
        let authority = uri
            .authority()
            .ok_or_else(|| anyhow!("--url {url:?} has no host"))?;
        let port = authority.port_u16().unwrap_or(80);
        let addr = tokio::net::lookup_host((authority.host(), port))
            .await
            .with_context(|| format!("resolving {}", authority.host()))?
            .next()
            .ok_or_else(|| anyhow!("{} resolves to no address", authority.host()))?;
        let bearer = HeaderValue::from_str(&format!("Bearer {}", token.trim()))
            .context("the token is not a valid header value")?;
        Ok(Arc::new(Endpoint {
            url: trimmed.to_string(),
            addr,
            authority: HeaderValue::from_str(authority.as_str())?,
            prefix: uri.path().trim_end_matches('/').to_string(),
            bearer,
        }))
    }

    /// A new keep-alive connection.
    pub async fn connect(self: &Arc<Self>) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(self.addr)
            .await
            .with_context(|| format!("connecting to {}", self.url))?;
        stream.set_nodelay(true)?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP handshake")?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn {
            send,
            endpoint: self.clone(),
        })
    }

    /// `n` connections.
    pub async fn connect_many(self: &Arc<Self>, n: usize) -> anyhow::Result<Vec<Conn>> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.connect().await?);
        }
        Ok(out)
    }

    /// An authenticated GET on a connection of its own whose body is read as it comes (an
    /// event stream); the response's head once it has arrived.
    pub async fn stream(self: &Arc<Self>, path: &str) -> anyhow::Result<Streaming> {
        let mut conn = self.connect().await?;
        conn.send.ready().await.context("connection closed")?;
        let req = Request::builder()
            .method(Method::GET)
            .uri(format!("{}{path}", self.prefix))
            .header(header::HOST, self.authority.clone())
            .header(header::AUTHORIZATION, self.bearer.clone())
            .header(
                header::ACCEPT,
                HeaderValue::from_static("text/event-stream"),
            )
            .body(Full::new(Bytes::new()))?;
        let response = conn
            .send
            .send_request(req)
            .await
            .with_context(|| format!("request to {}{path}", self.url))?;
        let (parts, body) = response.into_parts();
        Ok(Streaming {
            status: parts.status,
            body,
            _send: conn.send,
        })
    }
}

/// A response being read as it comes; the connection lives as long as it does.
pub struct Streaming {
    pub status: StatusCode,
    pub body: hyper::body::Incoming,
    _send: SendRequest<Full<Bytes>>,
}

/// A whole response.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The reply itself when its status is 2xx; otherwise an error quoting the body.
    pub fn ok(self, what: &str) -> anyhow::Result<Reply> {
        if self.status.is_success() {
            return Ok(self);
        }
        let text = String::from_utf8_lossy(&self.body[..self.body.len().min(500)]).into_owned();
        bail!("{what} answered {}: {}", self.status, text.trim())
    }

    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_slice(&self.body).context("the reply is not JSON")
    }
}

/// One connection; requests on it go one after another.
pub struct Conn {
    send: SendRequest<Full<Bytes>>,
    endpoint: Arc<Endpoint>,
}

impl Conn {
    pub async fn get(&mut self, path: &str, auth: bool) -> anyhow::Result<Reply> {
        self.request(Method::GET, path, None, auth).await
    }

    pub async fn post_json(&mut self, path: &str, body: Bytes) -> anyhow::Result<Reply> {
        self.request(Method::POST, path, Some(body), true).await
    }

    /// Sends one request and reads the whole response body (so the connection can be reused).
    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        auth: bool,
    ) -> anyhow::Result<Reply> {
        self.send.ready().await.context("connection closed")?;
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.endpoint.prefix))
            .header(header::HOST, self.endpoint.authority.clone());
        if auth {
            req = req.header(header::AUTHORIZATION, self.endpoint.bearer.clone());
        }
        if body.is_some() {
            req = req.header(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        let req = req.body(Full::new(body.unwrap_or_default()))?;
        let response = self
            .send
            .send_request(req)
            .await
            .with_context(|| format!("request to {}{path}", self.endpoint.url))?;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .context("reading the response")?
            .to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}
