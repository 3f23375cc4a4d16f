//! One HTTP/1.1 exchange with an already checked address: TCP connect to the
//! exact `SocketAddr` (no lookup, no proxy), TLS with SNI set to the URL's
//! host, a hyper handshake, then a streamed, decoded and capped response body.

use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use airlock_core::VerbError;
use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::canon::{CanonHost, Target};

/// Builds the one TLS client configuration (ring provider, the given roots,
/// HTTP/1.1 only).
pub fn tls_config(roots: RootCertStore) -> Result<Arc<ClientConfig>, rustls::Error> {
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The Mozilla roots shipped in `webpki-roots`.
pub fn webpki_roots() -> RootCertStore {
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Aborts the task driving a connection when the exchange is dropped, so a
/// timed-out or refused exchange leaves nothing running.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A response whose body is still on the wire, and its connection.
pub struct Exchange {
    /// Status and headers received; the body is read by [`read_body`].
    pub response: Response<Incoming>,
    _connection: AbortOnDrop,
}

/// Connects to the first reachable of `addrs` (all already checked) and
/// sends `request`.
pub async fn send(
    tls: &Arc<ClientConfig>,
    target: &Target,
    addrs: &[IpAddr],
    request: Request<Full<Bytes>>,
) -> Result<Exchange, VerbError> {
    let where_ = format!("{}:{}", target.host, target.port);
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    let mut tcp = None;
    for ip in addrs {
        match TcpStream::connect(SocketAddr::new(*ip, target.port)).await {
            Ok(stream) => {
                tcp = Some(stream);
                break;
            }
            Err(e) => last = e,
        }
    }
    let tcp =
        tcp.ok_or_else(|| VerbError::upstream(format!("connection to {where_} failed: {last}")))?;
    let _ = tcp.set_nodelay(true);
    let io: Box<dyn Io> = if target.scheme == "https" {
        let name = match &target.host {
            CanonHost::Domain(d) => ServerName::try_from(d.clone()).map_err(|_| {
                VerbError::invalid(format!("`{d}` cannot be used as a TLS server name"))
            })?,
            CanonHost::Ip(ip) => ServerName::IpAddress((*ip).into()),
        };
        let stream = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| VerbError::upstream(format!("connection to {where_} failed: TLS: {e}")))?;
        Box::new(stream)
    } else {
        Box::new(tcp)
    };
    let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
        .handshake(TokioIo::new(io))
        .await
        .map_err(|e| VerbError::upstream(format!("connection to {where_} failed: {e}")))?;
    let driver = AbortOnDrop(tokio::spawn(async move {
        let _ = connection.await;
    }));
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| VerbError::upstream(format!("request to {where_} failed: {e}")))?;
    Ok(Exchange {
        response,
        _connection: driver,
    })
}

/// The error a [`Capped`] sink returns once full.
#[derive(Debug, thiserror::Error)]
#[error("response cap reached")]
struct CapReached;

fn is_cap(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<CapReached>())
}

/// A `Write` that keeps at most `cap` bytes and remembers overflowing.
struct Capped {
    buf: Vec<u8>,
    cap: usize,
    over: bool,
}

impl Write for Capped {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len().saturating_add(data.len()) > self.cap {
            self.over = true;
            return Err(io::Error::other(CapReached));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Incremental decoding of the content codings the host asks for.
enum Decoder {
    Identity(Capped),
    Gzip(flate2::write::MultiGzDecoder<Capped>),
    Deflate(flate2::write::ZlibDecoder<Capped>),
}

impl Decoder {
    fn for_headers(headers: &HeaderMap, cap: usize) -> Result<Self, VerbError> {
        let sink = Capped {
            buf: Vec::new(),
            cap,
            over: false,
        };
        let mut codings: Vec<String> = Vec::new();
        for value in headers.get_all(CONTENT_ENCODING) {
            let text = String::from_utf8_lossy(value.as_bytes()).to_ascii_lowercase();
            codings.extend(
                text.split(',')
                    .map(str::trim)
                    .filter(|c| !c.is_empty() && *c != "identity")
                    .map(str::to_string),
            );
        }
        match codings.as_slice() {
            [] => Ok(Self::Identity(sink)),
            [c] if c == "gzip" || c == "x-gzip" => {
                Ok(Self::Gzip(flate2::write::MultiGzDecoder::new(sink)))
            }
            [c] if c == "deflate" => Ok(Self::Deflate(flate2::write::ZlibDecoder::new(sink))),
            other => Err(VerbError::upstream(format!(
                "the response uses content-encoding `{}`, which the host did not ask for and cannot inspect",
                other.join(", ")
            ))),
        }
    }

    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Self::Identity(w) => w.write_all(data),
            Self::Gzip(w) => w.write_all(data),
            Self::Deflate(w) => w.write_all(data),
        }
    }

    fn overflowed(&self) -> bool {
        match self {
            Self::Identity(w) => w.over,
            Self::Gzip(w) => w.get_ref().over,
            Self::Deflate(w) => w.get_ref().over,
        }
    }

    fn is_identity(&self) -> bool {
        matches!(self, Self::Identity(_))
    }

    fn finish(self) -> io::Result<Capped> {
        match self {
            Self::Identity(w) => Ok(w),
            Self::Gzip(w) => w.finish(),
            Self::Deflate(w) => w.finish(),
        }
    }
}

fn decode_error(overflowed: bool, e: io::Error) -> VerbError {
    if overflowed || is_cap(&e) {
        VerbError::exhausted("fetch-response-bytes")
    } else {
        VerbError::upstream(format!("the response body could not be decoded: {e}"))
    }
}

/// Reads the body as a stream, decoding gzip/deflate incrementally and
/// failing with `exhausted("fetch-response-bytes")` once more than `cap`
/// bytes (received or decoded) arrive. Decoded responses lose their
/// `content-encoding` and `content-length` headers.
pub async fn read_body(
    exchange: Exchange,
    cap: usize,
) -> Result<(StatusCode, HeaderMap, Vec<u8>), VerbError> {
    let Exchange {
        response,
        _connection,
    } = exchange;
    let (parts, mut body) = response.into_parts();
    let mut decoder = Decoder::for_headers(&parts.headers, cap)?;
    let mut received = 0usize;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| VerbError::upstream(format!("reading the response failed: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        received = received.saturating_add(data.len());
        if received > cap {
            return Err(VerbError::exhausted("fetch-response-bytes"));
        }
        if let Err(e) = decoder.write_all(&data) {
            return Err(decode_error(decoder.overflowed(), e));
        }
    }
    let mut headers = parts.headers;
    if !decoder.is_identity() {
        headers.remove(CONTENT_ENCODING);
        headers.remove(CONTENT_LENGTH);
    }
    let overflowed = decoder.overflowed();
    let sink = decoder.finish().map_err(|e| decode_error(overflowed, e))?;
    if sink.over {
        return Err(VerbError::exhausted("fetch-response-bytes"));
    }
    Ok((parts.status, headers, sink.buf))
}
