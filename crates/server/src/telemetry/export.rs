//! The OTLP/HTTP exporter: protobuf bodies POSTed to `<endpoint>/v1/traces` by a batch processor
//! (its own thread; a request only queues its finished spans), through the workspace's reqwest
//! on a one-thread runtime of its own, so exports neither need nor disturb the service's runtime.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};

use crate::config::HttpUrl;

type BuildError = Box<dyn std::error::Error + Send + Sync>;

/// How long one export may take before it is given up (its spans are dropped, counted by the SDK).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

pub fn provider(endpoint: &HttpUrl, sample_ratio: f64, service: &str) -> Result<SdkTracerProvider, BuildError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        // the configured URL wins over OTEL_EXPORTER_OTLP_* variables
        .with_endpoint(format!("{}/v1/traces", endpoint.base()))
        .with_timeout(EXPORT_TIMEOUT)
        .with_http_client(ExportClient::new()?)
        .build()?;
    let resource = Resource::builder()
        .with_service_name(service.to_owned())
        .with_attribute(opentelemetry::KeyValue::new("service.version", crate::metrics::VERSION))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        // a trusted caller's decision (the sampled flag of its traceparent) stands; new traces by ratio
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(sample_ratio))))
        .with_resource(resource)
        .build())
}

/// reqwest on a runtime of its own (one worker thread): the SDK's batch thread awaits the
/// spawned request's handle, which needs no runtime of its caller.
#[derive(Debug, Clone)]
struct ExportClient {
    client: reqwest::Client,
    runtime: Arc<OwnRuntime>,
}

#[derive(Debug)]
struct OwnRuntime(Option<tokio::runtime::Runtime>);

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        // dropped wherever the exporter ends, possibly inside another runtime: never block there
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl ExportClient {
    fn new() -> Result<Self, BuildError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sallyport-otlp")
            .enable_all()
            .build()?;
        // the collector is reached directly, whatever HTTP(S)_PROXY says, like the gateway's upstreams
        let client = reqwest::Client::builder().no_proxy().timeout(EXPORT_TIMEOUT).build()?;
        Ok(Self { client, runtime: Arc::new(OwnRuntime(Some(runtime))) })
    }

    async fn post(&self, request: http::Request<Bytes>) -> Result<http::Response<Bytes>, BuildError> {
        let Some(runtime) = self.runtime.0.as_ref() else { return Err("the exporter is stopped".into()) };
        let (parts, body) = request.into_parts();
        let request = self.client.request(parts.method, parts.uri.to_string()).headers(parts.headers).body(body);
        let sent = runtime.spawn(async move {
            let response = request.send().await?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, headers, body))
        });
        let (status, headers, body) = sent.await??;
        let mut response = http::Response::builder().status(status).body(body)?;
        *response.headers_mut() = headers;
        Ok(response)
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for ExportClient {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, opentelemetry_http::HttpError> {
        self.post(request).await
    }
}
