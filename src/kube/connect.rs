//! The kube client's HTTP stack, built by hand so that every connection has
//! `TCP_NODELAY` on.
//!
//! kube-rs 5's `ClientBuilder::try_from(Config)` uses a plain `HttpConnector`
//! with Nagle's algorithm on: the first request on each new pooled
//! connection then waits ~40 ms for the server's delayed ACK. This module
//! rebuilds the same default stack (kube-client-5.0.0
//! src/client/builder.rs, `make_generic_builder`) with the only change that
//! the connector sets `nodelay`: base URI, auth (tokens, exec, client
//! certificates through the rustls config), extra headers (impersonation),
//! TLS server name and the connect/read/write timeouts all come from the
//! same `ConfigExt` calls kube uses. A configured proxy falls back to kube's
//! own builder (which refuses or handles it exactly as before).

use ::kube::Config;
use ::kube::client::{Body, ClientBuilder, ConfigExt, DynBody};
use http::{Request, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower::{BoxError, ServiceBuilder, ServiceExt as _, util::BoxService};

/// The boxed service the rest of the client is layered on.
pub type Service = BoxService<Request<Body>, Response<Box<DynBody>>, BoxError>;

/// The TCP connector: no Nagle, any scheme (TLS is layered above it).
pub fn tcp_connector() -> HttpConnector {
    let mut tcp = HttpConnector::new();
    tcp.set_nodelay(true);
    tcp.enforce_http(false);
    tcp
}

/// kube's default client stack over a `TCP_NODELAY` connector.
pub fn builder(config: Config) -> Result<ClientBuilder<Service>, ::kube::Error> {
    if config.proxy_url.is_some() {
        // Proxies (SOCKS5, HTTP CONNECT) are kube's business: keep its handling.
        return ClientBuilder::try_from(config);
    }
    let default_ns = config.default_namespace.clone();
    let https = config.rustls_https_connector_with_connector(tcp_connector())?;
    let mut connector = hyper_timeout::TimeoutConnector::new(https);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    connector.set_reset_reader_on_write(config.reset_reader_on_write);
    let http: hyper_util::client::legacy::Client<_, Body> =
        hyper_util::client::legacy::Builder::new(TokioExecutor::new()).build(connector);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(BoxError::from)
        .service(http)
        .map_response(|resp| {
            resp.map(|body| {
                Box::new(http_body_util::BodyExt::map_err(body, BoxError::from)) as Box<DynBody>
            })
        })
        .boxed();
    Ok(ClientBuilder::new(service, default_ns))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::Service as _;

    #[tokio::test]
    async fn connections_have_nagle_off() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut tcp = tcp_connector();
        let uri: http::Uri = format!("https://{addr}").parse().unwrap();
        let io = tcp.call(uri).await.unwrap();
        assert!(io.inner().nodelay().unwrap(), "TCP_NODELAY off");
    }
}
