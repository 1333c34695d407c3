//! The one place Cairn makes outbound HTTP calls (webhook deliveries, secret
//! rotation hooks). Everything that leaves the server goes through
//! [`Outbound`], which:
//!
//! - accepts only `http` and `https` URLs;
//! - resolves the host itself and refuses the request when **any** resolved
//!   address is loopback, private, link-local, CGNAT, unspecified, multicast,
//!   broadcast, reserved, documentation, IPv6 unique-local / link-local, or an
//!   IPv4-mapped / embedded form of those (see [`refusal`]), unless
//!   `allow_private` is set (the server's `--allow-private-targets`);
//! - pins the connection to exactly the addresses it checked (a per-request
//!   client with `resolve_to_addrs`), so a DNS answer that changes between the
//!   check and the connect (DNS rebinding) cannot reach another address;
//! - never follows redirects (a 3xx is returned as the response), ignores
//!   `HTTP(S)_PROXY`, and has a connect and a total timeout;
//! - reads at most [`MAX_RESPONSE_BYTES`] of the response body;
//! - never puts the request body (which may carry secret values) or the URL's
//!   path and query (webhook URLs often embed a token) into an error, and its
//!   response's `Debug` omits the body.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue, CONTENT_TYPE, USER_AGENT};

/// Largest response body kept; the rest is discarded (`truncated`).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Default total time for one request (connect, send, read the bounded body).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why an outbound call did not produce a response. Messages name the host
/// at most: never the request body, never the URL's path or query.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    /// The URL is not an absolute `http`/`https` URL with a host.
    #[error("invalid url: {0}")]
    InvalidUrl(String),
    /// The target is a loopback/private/… address and private targets are not allowed.
    #[error("target {host} refused: {addr} is {reason} (start the server with --allow-private-targets to allow it)")]
    Refused {
        host: String,
        addr: IpAddr,
        reason: &'static str,
    },
    /// The host name did not resolve.
    #[error("cannot resolve {host}: {message}")]
    Resolve { host: String, message: String },
    /// The request did not complete in time.
    #[error("request to {host} timed out")]
    Timeout { host: String },
    /// Connecting, sending or reading failed.
    #[error("request to {host} failed: {message}")]
    Transport { host: String, message: String },
}

/// A response: status and at most [`MAX_RESPONSE_BYTES`] of the body.
#[derive(Clone)]
pub struct OutboundResponse {
    pub status: u16,
    /// The body, cut at [`MAX_RESPONSE_BYTES`]. May carry a secret (a rotation
    /// hook answers with the new value): never log it.
    pub body: Vec<u8>,
    /// The body was longer than [`MAX_RESPONSE_BYTES`].
    pub truncated: bool,
}

impl OutboundResponse {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

impl fmt::Debug for OutboundResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboundResponse")
            .field("status", &self.status)
            .field("body", &format_args!("<{} bytes>", self.body.len()))
            .field("truncated", &self.truncated)
            .finish()
    }
}

/// The outbound HTTP guard. Cheap to build and to clone.
#[derive(Debug, Clone)]
pub struct Outbound {
    allow_private: bool,
    timeout: Duration,
    connect_timeout: Duration,
}

/// A URL that passed the checks, with the addresses to connect to.
#[derive(Debug, Clone)]
pub struct CheckedTarget {
    url: reqwest::Url,
    host: String,
    addrs: Vec<SocketAddr>,
}

impl CheckedTarget {
    /// The host name (or address) of the URL.
    pub fn host(&self) -> &str {
        &self.host
    }
    /// The resolved, checked addresses the request will connect to.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }
}

impl Outbound {
    /// `allow_private`: allow loopback/private/link-local targets (tests,
    /// deployments that call internal services on purpose).
    pub fn new(allow_private: bool) -> Outbound {
        Outbound {
            allow_private,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }

    /// Total time for one request (the connect timeout is the smaller of this and 5 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Outbound {
        self.timeout = timeout;
        self.connect_timeout = timeout.min(DEFAULT_CONNECT_TIMEOUT);
        self
    }

    pub fn allows_private(&self) -> bool {
        self.allow_private
    }

    /// Parse and check a URL's syntax without resolving it: absolute,
    /// `http`/`https`, a host, no user info. For input validation.
    pub fn parse_url(url: &str) -> Result<reqwest::Url, OutboundError> {
        let parsed =
            reqwest::Url::parse(url).map_err(|e| OutboundError::InvalidUrl(e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(OutboundError::InvalidUrl(format!(
                "scheme must be http or https, not {:?}",
                parsed.scheme()
            )));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(OutboundError::InvalidUrl("the url has no host".into()));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(OutboundError::InvalidUrl(
                "credentials in the url are not accepted (use a header)".into(),
            ));
        }
        Ok(parsed)
    }

    /// Parse the URL, resolve its host and check every address. This is what
    /// each request does first; call it alone to validate a target when it
    /// is configured (a webhook subscription, a rotation hook).
    pub async fn check(&self, url: &str) -> Result<CheckedTarget, OutboundError> {
        let url = Self::parse_url(url)?;
        let port = url.port_or_known_default().unwrap_or(80);
        let host_str = url.host_str().unwrap_or_default().to_string();
        // `host_str` is normalized by the URL parser: IPv6 in brackets,
        // IPv4 in dotted decimal (so `0x7f.1` is already `127.0.0.1`).
        let literal = host_str
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(&host_str)
            .parse::<IpAddr>()
            .ok();
        let addrs: Vec<SocketAddr> = match literal {
            Some(ip) => vec![SocketAddr::new(ip, port)],
            None => {
                let found = tokio::time::timeout(
                    self.connect_timeout,
                    tokio::net::lookup_host((host_str.as_str(), port)),
                )
                .await
                .map_err(|_| OutboundError::Resolve {
                    host: host_str.clone(),
                    message: "timed out".into(),
                })?
                .map_err(|e| OutboundError::Resolve {
                    host: host_str.clone(),
                    message: e.to_string(),
                })?;
                let mut addrs: Vec<SocketAddr> = found.collect();
                addrs.dedup();
                addrs
            }
        };
        if addrs.is_empty() {
            return Err(OutboundError::Resolve {
                host: host_str,
                message: "no addresses".into(),
            });
        }
        if !self.allow_private {
            // Refuse if any address is refused: a name that resolves to one
            // public and one private address must not be usable to reach the
            // private one by retrying until the connect picks it.
            for a in &addrs {
                if let Some(reason) = refusal(a.ip()) {
                    return Err(OutboundError::Refused {
                        host: host_str,
                        addr: a.ip(),
                        reason,
                    });
                }
            }
        }
        Ok(CheckedTarget {
            url,
            host: host_str,
            addrs,
        })
    }

    /// POST `body` (already serialized JSON; sent byte for byte, so a
    /// signature computed over it holds) with `Content-Type:
    /// application/json` and the given extra headers.
    pub async fn post_json(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<OutboundResponse, OutboundError> {
        let target = self.check(url).await?;
        self.post_checked(&target, headers, body).await
    }

    /// Serialize `value` and [`post_json`](Self::post_json) it.
    pub async fn post_value(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        value: &serde_json::Value,
    ) -> Result<OutboundResponse, OutboundError> {
        let body = serde_json::to_vec(value).map_err(|e| OutboundError::Transport {
            host: String::new(),
            message: format!("cannot serialize body: {e}"),
        })?;
        self.post_json(url, headers, &body).await
    }

    /// POST to a target already [`check`](Self::check)ed; the connection goes
    /// only to its checked addresses.
    pub async fn post_checked(
        &self,
        target: &CheckedTarget,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<OutboundResponse, OutboundError> {
        let host = target.host.clone();
        let transport = |message: String| OutboundError::Transport {
            host: host.clone(),
            message,
        };
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(self.timeout)
            .connect_timeout(self.connect_timeout)
            .pool_max_idle_per_host(0);
        if target
            .url
            .host_str()
            .is_some_and(|h| h.parse::<IpAddr>().is_err() && !h.starts_with('['))
        {
            // Pin the name to the checked addresses: no second DNS lookup.
            builder = builder.resolve_to_addrs(&target.host, &target.addrs);
        }
        let client = builder
            .build()
            .map_err(|e| transport(describe(&e.without_url())))?;
        let mut request = client
            .post(target.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, concat!("cairn/", env!("CARGO_PKG_VERSION")))
            .body(body.to_vec());
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| transport(format!("invalid header name {name:?}")))?;
            // The value may be a credential: do not echo it.
            let value = HeaderValue::from_str(value)
                .map_err(|_| transport(format!("invalid value for header {name}")))?;
            request = request.header(name, value);
        }
        let mut response = request.send().await.map_err(|e| self.map_err(&host, e))?;
        let status = response.status().as_u16();
        let mut out = Vec::new();
        let mut truncated = false;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = MAX_RESPONSE_BYTES - out.len();
                    if chunk.len() > room {
                        out.extend_from_slice(&chunk[..room]);
                        truncated = true;
                        break;
                    }
                    out.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => return Err(self.map_err(&host, e)),
            }
        }
        Ok(OutboundResponse {
            status,
            body: out,
            truncated,
        })
    }

    fn map_err(&self, host: &str, e: reqwest::Error) -> OutboundError {
        if e.is_timeout() {
            return OutboundError::Timeout { host: host.into() };
        }
        OutboundError::Transport {
            host: host.into(),
            message: describe(&e.without_url()),
        }
    }
}

/// An error and its causes, without the URL.
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !message.contains(&next) {
            message.push_str(": ");
            message.push_str(&next);
        }
        source = s.source();
    }
    message
}

/// Why an address may not be the target of an outbound call without
/// `allow_private`; `None` for a public unicast address.
pub fn refusal(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refusal_v4(v4),
        IpAddr::V6(v6) => refusal_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn refusal_v4(ip: Ipv4Addr) -> Option<&'static str> {
    const TABLE: &[([u8; 4], u32, &str)] = &[
        ([0, 0, 0, 0], 8, "an unspecified/\"this network\" address"),
        ([10, 0, 0, 0], 8, "a private address"),
        ([100, 64, 0, 0], 10, "a carrier-grade NAT address"),
        ([127, 0, 0, 0], 8, "a loopback address"),
        ([169, 254, 0, 0], 16, "a link-local address"),
        ([172, 16, 0, 0], 12, "a private address"),
        ([192, 0, 0, 0], 24, "an IETF protocol assignment"),
        ([192, 0, 2, 0], 24, "a documentation address"),
        ([192, 88, 99, 0], 24, "a 6to4 relay anycast address"),
        ([192, 168, 0, 0], 16, "a private address"),
        ([198, 18, 0, 0], 15, "a benchmarking address"),
        ([198, 51, 100, 0], 24, "a documentation address"),
        ([203, 0, 113, 0], 24, "a documentation address"),
        ([224, 0, 0, 0], 4, "a multicast address"),
        ([255, 255, 255, 255], 32, "the broadcast address"),
        ([240, 0, 0, 0], 4, "a reserved address"),
    ];
    TABLE
        .iter()
        .find(|(net, prefix, _)| in_v4(ip, *net, *prefix))
        .map(|(_, _, why)| *why)
}

fn refusal_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    let bits = u128::from(ip);
    let in_v6 = |net: u128, prefix: u32| {
        let mask = if prefix == 0 {
            0
        } else {
            u128::MAX << (128 - prefix)
        };
        bits & mask == net & mask
    };
    if ip.is_unspecified() {
        return Some("the unspecified address");
    }
    if ip.is_loopback() {
        return Some("a loopback address");
    }
    // ::ffff:a.b.c.d (IPv4-mapped) and ::a.b.c.d (deprecated IPv4-compatible):
    // judge the IPv4 address they carry.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return refusal_v4(v4);
    }
    if in_v6(0, 96) {
        let v4 = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
        return refusal_v4(v4).or(Some("an IPv4-compatible address"));
    }
    // NAT64 well-known prefix 64:ff9b::/96 embeds an IPv4 address.
    if in_v6(0x0064_ff9b << 96, 96) {
        return refusal_v4(Ipv4Addr::from((bits & 0xffff_ffff) as u32));
    }
    // 6to4 2002::/16 embeds an IPv4 address in bits 16..48.
    if s[0] == 0x2002 {
        let v4 = Ipv4Addr::from(((bits >> 80) & 0xffff_ffff) as u32);
        return refusal_v4(v4);
    }
    const TABLE: &[(u128, u32, &str)] = &[
        (0x0064_ff9b_0001 << 80, 48, "a NAT64 local-use address"),
        (0x0100 << 112, 64, "a discard-only address"),
        (0x2001 << 112, 32, "a Teredo address"),
        (0x2001_0002 << 96, 48, "a benchmarking address"),
        (0x2001_0db8 << 96, 32, "a documentation address"),
        (0x3fff << 112, 20, "a documentation address"),
        (0xfc00 << 112, 7, "a unique local address"),
        (0xfe80 << 112, 10, "a link-local address"),
        (0xfec0 << 112, 10, "a site-local address"),
        (0xff00 << 112, 8, "a multicast address"),
    ];
    TABLE
        .iter()
        .find(|(net, prefix, _)| in_v6(*net, *prefix))
        .map(|(_, _, why)| *why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_classification() {
        let refused = [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.8.9.10",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
            "::ffff:0.0.0.0",
            "::127.0.0.1",
            "::10.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
            "2002:7f00:1::1",
            "2002:c0a8:101::1",
            "2001::1",
            "2001:db8::1",
            "fc00::1",
            "fd12:3456:789a::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "100::1",
        ];
        for a in refused {
            let ip: IpAddr = a.parse().unwrap();
            assert!(refusal(ip).is_some(), "{a} must be refused");
        }
        let allowed = [
            "1.1.1.1",
            "8.8.8.8",
            "9.255.255.255",
            "11.0.0.1",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.1",
            "169.253.255.255",
            "172.15.255.255",
            "172.32.0.0",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "fbff::1",
            "fe7f::1",
        ];
        for a in allowed {
            let ip: IpAddr = a.parse().unwrap();
            assert_eq!(refusal(ip), None, "{a} must be allowed");
        }
    }

    #[test]
    fn url_syntax() {
        for bad in [
            "",
            "not a url",
            "ftp://example.com/x",
            "file:///etc/passwd",
            "http://user:pw@example.com/",
            "unix:/run/x.sock",
            "http://",
        ] {
            assert!(Outbound::parse_url(bad).is_err(), "{bad:?} must be invalid");
        }
        assert!(Outbound::parse_url("https://example.com/hook?x=1").is_ok());
    }

    #[tokio::test]
    async fn loopback_and_private_targets_are_refused_without_the_option() {
        let out = Outbound::new(false);
        for url in [
            "http://127.0.0.1:9/x",
            "http://[::1]:9/x",
            "http://[::ffff:127.0.0.1]:9/x",
            "http://0x7f.1:9/x",
            "http://2130706433:9/x",
            "http://localhost:9/x",
            "http://169.254.169.254/latest/meta-data",
            "http://10.0.0.1/x",
        ] {
            let err = out.post_json(url, &[], b"{\"secret\":\"s3cr3t\"}").await;
            match err {
                Err(OutboundError::Refused { .. }) => {}
                other => panic!("{url}: expected a refusal, got {other:?}"),
            }
            let msg = out.check(url).await.unwrap_err().to_string();
            assert!(!msg.contains("s3cr3t"), "{msg}");
        }
    }

    #[tokio::test]
    async fn allowed_private_target_is_called_and_redirects_are_not_followed() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let mut got = Vec::new();
            while !String::from_utf8_lossy(&got).contains("{\"a\":1}") {
                let n = sock.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            sock.write_all(
                b"HTTP/1.1 302 Found\r\nLocation: http://10.0.0.1/\r\nContent-Length: 5\r\nConnection: close\r\n\r\nmoved",
            )
            .await
            .unwrap();
            String::from_utf8_lossy(&got).to_string()
        });
        let out = Outbound::new(true);
        let url = format!("http://localhost:{}/hook", addr.port());
        let res = out
            .post_json(&url, &[("X-Test", "yes")], b"{\"a\":1}")
            .await
            .unwrap();
        assert_eq!(res.status, 302);
        assert_eq!(res.body, b"moved");
        assert!(!format!("{res:?}").contains("moved"));
        let request = server.await.unwrap();
        assert!(request.starts_with("POST /hook HTTP/1.1"), "{request}");
        assert!(request.to_ascii_lowercase().contains("x-test: yes"));
        assert!(request.contains("application/json"));
    }

    #[tokio::test]
    async fn the_connection_goes_to_the_checked_addresses_only() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let _ = sock.read(&mut buf).await.unwrap();
            sock.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
        });
        // A name that never resolves (RFC 6761), pinned to the address a
        // check produced: the request reaches it, so no second lookup is
        // made (a rebinding DNS answer would have no effect).
        let target = CheckedTarget {
            url: reqwest::Url::parse(&format!("http://pinned.invalid:{}/x", addr.port())).unwrap(),
            host: "pinned.invalid".into(),
            addrs: vec![addr],
        };
        let res = Outbound::new(false)
            .post_checked(&target, &[], b"{}")
            .await
            .unwrap();
        assert_eq!(res.status, 204);
        // And the name itself does not resolve.
        assert!(matches!(
            Outbound::new(true).check("http://pinned.invalid/x").await,
            Err(OutboundError::Resolve { .. })
        ));
    }

    #[tokio::test]
    async fn transport_errors_name_neither_body_nor_path() {
        // A port nothing listens on (bound then dropped).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let out = Outbound::new(true).with_timeout(Duration::from_secs(2));
        let url = format!("http://127.0.0.1:{port}/hook/tok3n?key=k3y");
        let err = out.post_json(&url, &[], b"s3cr3t").await.unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, OutboundError::Transport { .. }), "{err:?}");
        for leak in ["s3cr3t", "tok3n", "k3y"] {
            assert!(!msg.contains(leak), "{msg}");
        }
    }
}
