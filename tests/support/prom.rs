//! A scrape of a node's metrics endpoint and a parser of the Prometheus
//! text exposition format, written here apart from the exporter.

use std::collections::BTreeMap;
use std::io::{Read, Write};

/// One scrape: `(name, sorted labels)` → value, and the raw body.
pub fn scrape(addr: std::net::SocketAddr, request: &str) -> (String, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    (head.to_string(), body.to_string())
}

pub type Samples = BTreeMap<(String, Vec<(String, String)>), f64>;

/// The samples of an exposition text (comments skipped): each line is
/// `name{label="value",...} number` or `name number`.
pub fn parse(text: &str) -> Samples {
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("{line}"));
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => {
                let inner = rest.strip_suffix('}').unwrap();
                let mut labels: Vec<(String, String)> = inner
                    .split("\",")
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (k, v) = p.split_once("=\"").unwrap();
                        (k.to_string(), v.trim_end_matches('"').to_string())
                    })
                    .collect();
                labels.sort();
                (n.to_string(), labels)
            }
            None => (series.to_string(), Vec::new()),
        };
        out.insert((name, labels), value);
    }
    out
}

pub fn get(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut l: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    l.sort();
    *samples
        .get(&(name.to_string(), l))
        .unwrap_or_else(|| panic!("no {name}{labels:?} in {samples:#?}"))
}

/// `GET /metrics` of the endpoint at `addr`, parsed.
pub fn metrics(addr: std::net::SocketAddr) -> Samples {
    let (head, body) = scrape(
        addr,
        "GET /metrics HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n",
    );
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    parse(&body)
}
