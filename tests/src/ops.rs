//! Scraping a node's `/metrics` the way Prometheus does: one HTTP GET, the body parsed by a
//! real Prometheus text parser (`prometheus-parse`), so a malformed exposition fails a test.

use std::net::SocketAddr;

use prometheus_parse::{Scrape, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// GETs `http://<addr>/metrics` and parses it; panics if it is not Prometheus text.
pub async fn scrape(addr: SocketAddr) -> Scrape {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("metrics listener accepts");
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "the Prometheus text content type: {head}"
    );
    Scrape::parse(body.lines().map(|line| Ok(line.to_owned())))
        .unwrap_or_else(|e| panic!("not Prometheus text ({e}):\n{body}"))
}

/// The value of the one sample `name` carrying `labels` (counter, gauge or untyped), if any.
pub fn sample(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = scrape.samples.iter().filter(|sample| {
        sample.metric == name
            && labels
                .iter()
                .all(|(label, value)| sample.labels.get(label) == Some(*value))
    });
    let sample = found.next()?;
    assert!(found.next().is_none(), "two samples {name} {labels:?}");
    match sample.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(v),
        ref other => panic!("{name} is not a single number: {other:?}"),
    }
}

/// Whether `name` is declared a counter (`# TYPE name counter`) in `scrape`.
pub fn is_counter(scrape: &Scrape, name: &str) -> bool {
    scrape
        .samples
        .iter()
        .any(|sample| sample.metric == name && matches!(sample.value, Value::Counter(_)))
}
