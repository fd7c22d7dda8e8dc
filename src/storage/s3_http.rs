//! The S3 client's HTTP connection for plain-HTTP endpoints: hyper over TCP
//! sockets that acknowledge at once. A server that sends without
//! `TCP_NODELAY` (Garage 2.5) and writes a response's head and body
//! separately makes the body wait for the ACK of the head, which Linux
//! delays up to 40 ms on a kept-alive connection: every small GET took
//! ~45 ms through Coffer. `TCP_QUICKACK` before each read sends that ACK
//! at once. HTTPS endpoints keep the SDK's own client.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::ErrorKind;
use hyper::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector as TcpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A TCP connection that turns on `TCP_QUICKACK` before every read.
pub struct QuickAckStream(TokioIo<TcpStream>);

impl QuickAckStream {
    fn ack_at_once(&self) {
        // Not sticky: the kernel may return to delayed ACKs after any read.
        let _ = socket2::SockRef::from(self.0.inner()).set_tcp_quickack(true);
    }
}

impl Read for QuickAckStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: ReadBufCursor<'_>) -> Poll<std::io::Result<()>> {
        self.ack_at_once();
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl Write for QuickAckStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

impl Connection for QuickAckStream {
    fn connected(&self) -> Connected {
        self.0.connected()
    }
}

/// Opens [`QuickAckStream`]s (hyper's TCP connector, `TCP_NODELAY` on).
#[derive(Clone, Debug)]
pub struct QuickAckConnector(TcpConnector);

impl tower_service::Service<Uri> for QuickAckConnector {
    type Response = QuickAckStream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<QuickAckStream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.0.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.0.call(uri);
        Box::pin(async move { Ok(QuickAckStream(connecting.await?)) })
    }
}

/// The SDK's `HttpClient` over [`QuickAckConnector`], one pool for all requests.
#[derive(Clone, Debug)]
pub struct QuickAckHttpClient {
    client: Client<QuickAckConnector, SdkBody>,
}

impl QuickAckHttpClient {
    pub fn new(connect_timeout: Duration) -> Self {
        let mut tcp = TcpConnector::new();
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(connect_timeout));
        tcp.enforce_http(true);
        // The pool needs a timer for its idle timeout to take effect.
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(QuickAckConnector(tcp));
        Self { client }
    }
}

impl HttpConnector for QuickAckHttpClient {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(error) => return HttpConnectorFuture::ready(Err(ConnectorError::user(error.into()))),
        };
        let sending = self.client.request(request);
        HttpConnectorFuture::new(async move {
            match sending.await {
                Ok(response) => HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                    .map_err(|error| ConnectorError::other(error.into(), None)),
                Err(error) => Err(classify(error)),
            }
        })
    }
}

impl HttpClient for QuickAckHttpClient {
    fn http_connector(&self, _: &HttpConnectorSettings, _: &RuntimeComponents) -> SharedHttpConnector {
        // Timeouts are the client's own (connect) and the SDK's (attempt, operation).
        SharedHttpConnector::new(self.clone())
    }
}

/// Sorts hyper's errors as the SDK's client does: failures to connect and
/// connections that broke are I/O (retried), an incomplete response is
/// transient, anything else is not retried.
fn classify(error: hyper_util::client::legacy::Error) -> ConnectorError {
    let hyper_error = std::error::Error::source(&error).and_then(|source| source.downcast_ref::<hyper::Error>());
    let retryable_io =
        error.is_connect() || hyper_error.is_some_and(|e| e.is_closed() || e.is_canceled() || source_is_io(e));
    let incomplete = hyper_error.is_some_and(hyper::Error::is_incomplete_message);
    let timed_out = hyper_error.is_some_and(hyper::Error::is_timeout);
    let boxed: BoxError = Box::new(error);
    if timed_out {
        ConnectorError::timeout(boxed)
    } else if retryable_io {
        ConnectorError::io(boxed)
    } else if incomplete {
        ConnectorError::other(boxed, Some(ErrorKind::TransientError))
    } else {
        ConnectorError::other(boxed, None)
    }
}

fn source_is_io(error: &hyper::Error) -> bool {
    let mut next = std::error::Error::source(error);
    while let Some(source) = next {
        if source.is::<std::io::Error>() {
            return true;
        }
        next = source.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refused_connection_is_a_retryable_io_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        drop(listener);
        let client = QuickAckHttpClient::new(Duration::from_secs(2));
        let mut request = HttpRequest::new(SdkBody::empty());
        request.set_uri(format!("http://{address}/bucket/key")).expect("uri");
        let error = HttpConnector::call(&client, request).await.expect_err("nothing listens");
        assert!(error.is_io(), "{error:?}");
    }

    #[tokio::test]
    async fn sockets_ask_for_immediate_acks_before_reading() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let (client, _server) = tokio::join!(TcpStream::connect(address), listener.accept());
        let stream = QuickAckStream(TokioIo::new(client.expect("connect")));
        let socket = socket2::SockRef::from(stream.0.inner());
        socket.set_tcp_quickack(false).expect("off");
        stream.ack_at_once();
        assert!(socket.tcp_quickack().expect("read back"), "TCP_QUICKACK on");
    }
}
