//! The upstream HTTP/1.1 client: a pool of keep-alive connections on hyper's low-level
//! connection API (`hyper::client::conn::http1`), in which a request's connection is driven by
//! the task that reads its response instead of a task of its own.
//!
//! With hyper's pooled client every connection runs in its own task and hands the response body
//! over one chunk at a time through a channel, so each SSE event cost two task wake-ups and one
//! write to the client. Here the response body polls its connection itself: an upstream chunk
//! goes from the upstream's socket to the client's in the one task that serves the client (the
//! model of Pingora and nginx), and chunks already received are read in one go (the relay then
//! writes them together). A connection goes back to the pool only when its response was read to
//! the end; a response dropped part-way closes it.

use super::tls::{self, Io};
use crate::config::BackendConfig;
use axum::http::{header, HeaderValue, Request, Response, Uri};
use bytes::Bytes;
use futures::Stream;
use http_body_util::Full;
use hyper::body::{Body, Incoming};
use hyper::client::conn::http1::{Connection, SendRequest};
use hyper_util::rt::TokioIo;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// How long an idle connection is kept for reuse.
const IDLE_KEEP: Duration = Duration::from_secs(60);

/// Bytes read from an upstream at a time. hyper's adaptive buffer starts at 8 KiB and never
/// goes below it; a stream's connection holds its buffer for the stream's whole life, and SSE
/// events are a few hundred bytes. 4 KiB (nginx's `proxy_buffer_size` default) took 4 KiB off
/// every open stream (`bench/streams.py`); a large whole answer is read in more pieces.
const READ_BUFFER: usize = 4096;

/// Most idle connections kept per backend.
const MAX_IDLE: usize = 1024;

/// Why a request got no response head.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("could not connect: {0}")]
    Connect(String),
    #[error("{0}")]
    Transport(String),
}

type Conn = Connection<TokioIo<Io>, Full<Bytes>>;

/// One upstream connection: the handle requests are sent on and the connection it drives.
struct Link {
    tx: SendRequest<Full<Bytes>>,
    conn: Conn,
    idle_since: Instant,
}

impl Link {
    /// Lets the connection make progress without waiting (reads a close, finishes a response);
    /// false when it is gone.
    fn alive(&mut self) -> bool {
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        !Pin::new(&mut self.conn).poll(&mut cx).is_ready() && !self.tx.is_closed()
    }
}

/// The pooled HTTP/1.1 client a backend's proxied requests go through (one per backend).
#[derive(Clone)]
pub struct HttpClient {
    idle: Arc<Mutex<Vec<Link>>>,
    connect_timeout: Duration,
    keep_alive: bool,
    /// For an `https://` backend: the TLS handshake every new connection makes.
    tls: Option<TlsConnector>,
}

/// The client for `cfg`: TCP_NODELAY, its connect timeout, keep-alive unless turned off, TLS for
/// an `https://` URL (trusting `tls`, if any).
pub fn http_client(cfg: &BackendConfig, tls: Option<TlsConnector>) -> HttpClient {
    HttpClient {
        idle: Arc::default(),
        connect_timeout: Duration::from_millis(cfg.connect_timeout_ms),
        keep_alive: cfg.keep_alive,
        tls,
    }
}

impl HttpClient {
    /// Sends `req` (an absolute URI) and returns its response head; the body drives the
    /// connection as it is read. A request that fails on a reused connection before any
    /// response (the upstream closed it while idle) is sent once more on a new one.
    pub async fn request(&self, req: Request<Full<Bytes>>) -> Result<Response<UpstreamBody>, ClientError> {
        let (mut parts, body) = req.into_parts();
        let authority = parts.uri.authority().cloned().ok_or_else(|| ClientError::Transport("no host".into()))?;
        if let Ok(host) = HeaderValue::from_str(authority.as_str()) {
            parts.headers.insert(header::HOST, host);
        }
        // HTTP/1.1 origin form: the path and query only.
        let origin: Uri = parts.uri.path_and_query().map_or("/", |p| p.as_str()).parse().unwrap_or_default();
        let build = || {
            let mut r = Request::new(body.clone());
            *r.method_mut() = parts.method.clone();
            *r.uri_mut() = origin.clone();
            *r.headers_mut() = parts.headers.clone();
            r
        };
        if let Some(link) = self.checkout() {
            match self.send(link, build()).await {
                Ok(resp) => return Ok(resp),
                // A stale connection (closed by the upstream while idle): try a new one.
                Err(Sent::Early(e)) => {
                    tracing::debug!(host = %authority, error = %e, "reused connection failed; reconnecting")
                }
                Err(Sent::Late(e)) => return Err(ClientError::Transport(e.to_string())),
            }
        }
        let port = authority.port_u16().unwrap_or(if self.tls.is_some() { 443 } else { 80 });
        let link = self.connect(authority.host(), port).await?;
        self.send(link, build()).await.map_err(|e| match e {
            Sent::Early(e) | Sent::Late(e) => ClientError::Transport(e.to_string()),
        })
    }

    fn checkout(&self) -> Option<Link> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(mut link) = idle.pop() {
            if link.idle_since.elapsed() < IDLE_KEEP && link.alive() {
                tracing::debug!(idle = idle.len(), "reusing an idle upstream connection");
                return Some(link);
            }
        }
        None
    }

    /// A new connection to `host:port`: TCP, then TLS for an `https://` backend, both within
    /// the connect timeout.
    async fn connect(&self, host: &str, port: u16) -> Result<Link, ClientError> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let open = async {
            let stream = TcpStream::connect((host, port)).await?;
            let _ = stream.set_nodelay(true);
            match &self.tls {
                Some(connector) => tls::handshake(connector, host, stream).await,
                None => Ok(Io::Plain(stream)),
            }
        };
        let stream = match tokio::time::timeout(self.connect_timeout, open).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(ClientError::Connect(e.to_string())),
            Err(_) => return Err(ClientError::Connect("connect timed out".into())),
        };
        tracing::debug!(host, port, tls = self.tls.is_some(), "connected to upstream");
        let (tx, conn) = hyper::client::conn::http1::Builder::new()
            .read_buf_exact_size(Some(READ_BUFFER))
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::Connect(e.to_string()))?;
        Ok(Link { tx, conn, idle_since: Instant::now() })
    }

    /// Sends `req` on `link`, driving the connection until the response head arrives.
    async fn send(&self, mut link: Link, req: Request<Full<Bytes>>) -> Result<Response<UpstreamBody>, Sent> {
        let mut closed = false;
        let ready = poll_fn(|cx| {
            if !closed {
                if let Poll::Ready(r) = Pin::new(&mut link.conn).poll(cx) {
                    closed = true;
                    if let Err(e) = r {
                        return Poll::Ready(Err(e));
                    }
                }
            }
            link.tx.poll_ready(cx)
        })
        .await;
        ready.map_err(Sent::Early)?;
        let mut response = std::pin::pin!(link.tx.send_request(req));
        let head = poll_fn(|cx| {
            if !closed {
                if let Poll::Ready(r) = Pin::new(&mut link.conn).poll(cx) {
                    closed = true;
                    r?;
                }
            }
            response.as_mut().poll(cx)
        })
        .await;
        let resp = head.map_err(|e| if e.is_canceled() || e.is_closed() { Sent::Early(e) } else { Sent::Late(e) })?;
        let pool = self.keep_alive.then(|| self.idle.clone());
        // A connection that already ended (the upstream closed it after the response) is not
        // polled again; the body is read from what it handed over.
        let link = (!closed).then_some(link);
        Ok(resp.map(|body| UpstreamBody { body, link, pool }))
    }
}

/// How a send failed: before the request could have reached the upstream (safe to resend), or
/// after.
enum Sent {
    Early(hyper::Error),
    Late(hyper::Error),
}

/// A response body that drives its own connection as it is read; the connection returns to the
/// pool when the body ends.
pub struct UpstreamBody {
    body: Incoming,
    link: Option<Link>,
    pool: Option<Arc<Mutex<Vec<Link>>>>,
}

impl Stream for UpstreamBody {
    type Item = Result<Bytes, hyper::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            // The connection first: it reads the socket and hands the next decoded chunk over.
            if let Some(link) = this.link.as_mut() {
                if let Poll::Ready(r) = Pin::new(&mut link.conn).poll(cx) {
                    this.link = None;
                    if let Err(e) = r {
                        return Poll::Ready(Some(Err(e)));
                    }
                }
            }
            return match Pin::new(&mut this.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => Poll::Ready(Some(Ok(data))),
                    Err(_) => continue, // trailers carry nothing the relay reads
                },
                Poll::Ready(Some(Err(e))) => {
                    this.link = None;
                    Poll::Ready(Some(Err(e)))
                }
                Poll::Ready(None) => {
                    this.give_back();
                    Poll::Ready(None)
                }
                Poll::Pending => Poll::Pending,
            };
        }
    }
}

impl UpstreamBody {
    /// Returns the connection to the pool once its response is complete.
    fn give_back(&mut self) {
        let (Some(mut link), Some(pool)) = (self.link.take(), self.pool.as_ref()) else { return };
        if link.alive() {
            link.idle_since = Instant::now();
            let mut idle = pool.lock().unwrap_or_else(|e| e.into_inner());
            // The oldest are at the front: drop those kept too long.
            let expired = idle.iter().take_while(|l| l.idle_since.elapsed() >= IDLE_KEEP).count();
            idle.drain(..expired);
            if idle.len() < MAX_IDLE {
                tracing::debug!(idle = idle.len() + 1, "upstream connection back in the pool");
                idle.push(link);
            }
        }
    }
}
