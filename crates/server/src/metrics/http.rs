//! Metrics over HTTP: the request middleware every service runs, the `/metrics` endpoint, and the
//! admin listener (`listen.admin`) that serves it apart from the service port in containers.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{App, HttpMessage, HttpResponse, HttpServer, web};

use super::{HttpLabels, Metrics};

/// OpenMetrics 1.0 text, the format Prometheus asks for first.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The route a request is counted under when the router's match pattern does not say it (the
/// gateway's routes are prefix guards): set in the request's extensions before the answer.
#[derive(Clone, Debug)]
pub struct RouteLabel(pub Arc<str>);

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// The route template of an answered request: the gateway's label, else actix's match pattern
/// (`/oauth2/register/{client_id}`, never the raw path), else `unmatched` (404s of unknown paths).
pub fn route_label(req: &actix_web::HttpRequest) -> Cow<'static, str> {
    if let Some(label) = req.extensions().get::<RouteLabel>() {
        return Cow::Owned(label.0.to_string());
    }
    match req.match_pattern() {
        Some(p) if !p.is_empty() => Cow::Owned(p),
        _ => Cow::Borrowed("unmatched"),
    }
}

/// Counts and times every request of `service` (the shared middleware of `http::serve_with`).
pub async fn observe(
    metrics: Metrics,
    service: &'static str,
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = method_label(req.method());
    let result = next.call(req).await;
    let (status, route) = match &result {
        Ok(res) => (res.status().as_u16(), route_label(res.request())),
        // a middleware's error: its request is gone; the dispatcher renders it
        Err(e) => (e.as_response_error().status_code().as_u16(), Cow::Borrowed("unknown")),
    };
    let labels = HttpLabels { service, route, method, status: status_class(status) };
    metrics.observe_http(&labels, started.elapsed().as_secs_f64());
    result
}

/// `GET /metrics`: every metric of the process, or 404 when metrics are off.
pub async fn scrape(metrics: web::Data<Metrics>) -> HttpResponse {
    match metrics.encode() {
        Some(text) => {
            HttpResponse::Ok().content_type(CONTENT_TYPE).insert_header(("cache-control", "no-store")).body(text)
        }
        None => HttpResponse::NotFound()
            .content_type("application/json")
            .body(r#"{"error":"not_found","error_description":"metrics are not served here"}"#),
    }
}

/// Mounts `/metrics` on a service's own port. It is always claimed (404 when metrics are served
/// on `listen.admin` or are off), so no route behind it, such as a gateway route with prefix `/`,
/// ever answers for it.
pub fn configure_service_port(cfg: &mut web::ServiceConfig, metrics: &Metrics) {
    let exposed = if metrics.on_service_port() { metrics.clone() } else { Metrics::default() };
    cfg.service(web::resource("/metrics").app_data(web::Data::new(exposed)).route(web::get().to(scrape)));
}

/// The admin listener: `/metrics` only, one worker, stopped by the caller with the service.
pub fn serve_admin(listener: std::net::TcpListener, metrics: Metrics) -> std::io::Result<Server> {
    let data = web::Data::new(metrics);
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/metrics", web::get().to(scrape))
            .default_service(web::to(crate::http::not_found))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)?
    .run())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        assert_eq!(method_label(&Method::from_bytes(b"BREW").expect("method")), "other");
        assert_eq!(method_label(&Method::POST), "POST");
        assert_eq!(status_class(204), "2xx");
        assert_eq!(status_class(429), "4xx");
        assert_eq!(status_class(999), "5xx");
    }
}
