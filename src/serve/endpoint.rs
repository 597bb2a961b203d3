//! The `[metrics]` endpoint: `/metrics` (Prometheus text exposition), `/healthz` (the process
//! answers) and `/readyz` (the database answers and the policies are in memory).

use std::convert::Infallible;
use std::time::Duration;

use deadpool_postgres::Pool;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::state::Current;
use crate::stop::Stop;
use crate::{metrics, store};

/// How long `/readyz` waits for the database.
const READY_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a client may take to send its request's head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one connection may last, whatever the client does.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);

/// Answers requests on `listener` until told to stop.
pub async fn run(listener: TcpListener, pool: Pool, current: Current, mut stop: Stop) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, most likely: a pause, not a busy loop.
                    tracing::warn!(error = %e, "metrics endpoint: accept");
                    if !stop.sleep(Duration::from_millis(100)).await {
                        return;
                    }
                    continue;
                }
            },
            () = stop.requested() => return,
        };
        let (pool, current) = (pool.clone(), current.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let (pool, current) = (pool.clone(), current.clone());
                async move { Ok::<_, Infallible>(answer(&request, &pool, &current).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(CONNECTION_TIMEOUT, connection).await {
                Ok(Ok(())) | Err(_) => {}
                Ok(Err(e)) => tracing::debug!(error = %e, "metrics endpoint: connection"),
            }
        });
    }
}

/// The response to one request.
async fn answer<B>(request: &Request<B>, pool: &Pool, current: &Current) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into());
    }
    match request.uri().path() {
        "/metrics" => {
            let mut response = text(StatusCode::OK, metrics::get().encode());
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static(
                    prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
                ),
            );
            response
        }
        "/healthz" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" => match ready(pool, current).await {
            Ok(()) => text(StatusCode::OK, "ready\n".into()),
            Err(why) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {why}\n"),
            ),
        },
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: /metrics, /healthz, /readyz\n".into(),
        ),
    }
}

/// Whether serve can take mail: the policies are in memory and the database answers.
async fn ready(pool: &Pool, current: &Current) -> Result<(), String> {
    if current.get().key.is_none() {
        return Err("the policies are not loaded yet".into());
    }
    match tokio::time::timeout(READY_TIMEOUT, store::ping(pool)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "the database did not answer within {} s",
            READY_TIMEOUT.as_secs()
        )),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
