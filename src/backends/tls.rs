//! TLS to upstreams: what a backend whose `url` is `https://` trusts (Mozilla's roots, compiled
//! in, plus the certificates of its `ca_file`), the connector the proxied-request client
//! handshakes with, and [`Io`], the one connection type that client drives whether or not the
//! bytes are encrypted. rustls on its `ring` provider: no system certificate store is needed
//! (a slim container has none) and nothing beyond a C compiler builds it.

use crate::config::BackendConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Why a backend's TLS settings could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("ca_file {path}: {message}")]
    CaFile { path: String, message: String },
    #[error("TLS settings: {0}")]
    Config(#[from] rustls::Error),
}

/// The certificates of `cfg`'s `ca_file` (PEM, one or more), none when it names no file.
pub fn extra_roots(cfg: &BackendConfig) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let Some(path) = &cfg.ca_file else { return Ok(Vec::new()) };
    let err = |message: String| TlsError::CaFile { path: path.display().to_string(), message };
    let pem = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>().map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no PEM certificate in it".into()));
    }
    Ok(certs)
}

/// The connector for `cfg`, trusting Mozilla's roots and `extra` (its [`extra_roots`]), or
/// `None` when its `url` is plain `http://`. It speaks HTTP/1.1 only (offered by ALPN), as the
/// client above it does.
pub fn connector(cfg: &BackendConfig, extra: &[CertificateDer<'static>]) -> Result<Option<TlsConnector>, TlsError> {
    if !cfg.is_https() {
        return Ok(None);
    }
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    for cert in extra {
        roots.add(cert.clone())?;
    }
    // rustls 0.23.48 deprecates ring's provider because ring has no post-quantum key exchange;
    // aws-lc-rs has one but builds a second crypto library (reqwest's TLS is on ring) with a
    // longer C build. Classical X25519/P-256 key exchange is what hosted APIs accept today.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(TlsConnector::from(Arc::new(config))))
}

/// Handshakes over `tcp` with the server named `host` (a DNS name or an IP address).
pub async fn handshake(connector: &TlsConnector, host: &str, tcp: TcpStream) -> io::Result<Io> {
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("server name {host}: {e}")))?;
    Ok(Io::Tls(Box::new(connector.connect(name, tcp).await?)))
}

/// An upstream connection, plain or under TLS.
pub enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Io {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
