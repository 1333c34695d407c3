//! The one place Cairn makes outbound HTTP calls (webhook deliveries, secret
//! rotation hooks). Everything that leaves the server goes through
//! [`Outbound`], which:
//!
//! - accepts only `http` and `https` URLs, without credentials;
//! - sends every request through **one shared client** (built once by
//!   [`Outbound::new`]; clones share it, its TLS configuration and its
//!   connection pool) whose DNS resolver is a checking resolver: it resolves
//!   the host itself and refuses the name when **any** resolved address is
//!   loopback, private, link-local, CGNAT, unspecified, multicast, broadcast,
//!   reserved, documentation, IPv6 unique-local / link-local, or an
//!   IPv4-mapped / embedded form of those (see [`refusal`]), unless
//!   `allow_private` is set (the server's `--allow-private-targets`);
//! - connects to exactly the addresses that resolver checked and returned:
//!   the check and the connect use the same answer, so a DNS answer that
//!   changes between them (DNS rebinding) cannot reach another address. A
//!   pooled connection was made, when it was opened, to checked addresses;
//! - checks an IP-literal host (which the client never hands to a resolver)
//!   against the same table before sending;
//! - never follows redirects (a 3xx is returned as the response), ignores
//!   `HTTP(S)_PROXY`, and has a connect and a total timeout;
//! - reads at most [`MAX_RESPONSE_BYTES`] of the response body;
//! - never puts the request body (which may carry secret values) or the URL's
//!   path and query (webhook URLs often embed a token) into an error, and its
//!   response's `Debug` omits the body.

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue, CONTENT_TYPE, USER_AGENT};

/// Largest response body kept; the rest is discarded (`truncated`).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Default total time for one request (connect, send, read the bounded body).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default connect timeout (also bounds one name resolution).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an idle pooled connection is kept. A pooled connection goes to
/// addresses checked when it was opened; this bounds how long an answer
/// checked then keeps being used.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle pooled connections kept per host.
const POOL_MAX_IDLE_PER_HOST: usize = 8;

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

type LookupFuture = Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>>;

/// How the checking resolver looks a name up: the system resolver, or (in
/// tests) scripted answers.
trait Lookup: Send + Sync + 'static {
    fn lookup(&self, host: &str) -> LookupFuture;
}

/// The system resolver (`getaddrinfo`, through tokio).
struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(&self, host: &str) -> LookupFuture {
        let host = host.to_owned();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            Ok(found.map(|a| a.ip()).collect())
        })
    }
}

/// The shared client's DNS resolver: resolves a name, refuses it when any
/// address is refused (unless private targets are allowed), and returns the
/// checked addresses — the only ones the client then connects to.
struct CheckingResolver {
    allow_private: bool,
    timeout: Duration,
    lookup: Arc<dyn Lookup>,
}

impl CheckingResolver {
    /// The checked addresses of `host` (a name, not an IP literal), in the
    /// order the lookup gave them, without repeats.
    fn resolve_checked(
        &self,
        host: &str,
    ) -> impl Future<Output = Result<Vec<IpAddr>, OutboundError>> + Send + 'static {
        let host = host.to_owned();
        let lookup = self.lookup.lookup(&host);
        let (allow_private, timeout) = (self.allow_private, self.timeout);
        async move {
            let found = tokio::time::timeout(timeout, lookup)
                .await
                .map_err(|_| OutboundError::Resolve {
                    host: host.clone(),
                    message: "timed out".into(),
                })?
                .map_err(|e| OutboundError::Resolve {
                    host: host.clone(),
                    message: e.to_string(),
                })?;
            let mut addrs: Vec<IpAddr> = Vec::with_capacity(found.len());
            for ip in found {
                if !addrs.contains(&ip) {
                    addrs.push(ip);
                }
            }
            if addrs.is_empty() {
                return Err(OutboundError::Resolve {
                    host,
                    message: "no addresses".into(),
                });
            }
            if !allow_private {
                // Refuse if any address is refused: a name that resolves to
                // one public and one private address must not be usable to
                // reach the private one by retrying until the connect picks it.
                for ip in &addrs {
                    check_ip(&host, *ip)?;
                }
            }
            Ok(addrs)
        }
    }
}

impl reqwest::dns::Resolve for CheckingResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let checked = self.resolve_checked(name.as_str());
        Box::pin(async move {
            let addrs = checked.await?;
            // Port 0: the connector puts the URL's port (or the scheme's) in.
            let addrs: reqwest::dns::Addrs =
                Box::new(addrs.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// `Err(Refused)` when `ip` may not be a target without `allow_private`.
fn check_ip(host: &str, ip: IpAddr) -> Result<(), OutboundError> {
    match refusal(ip) {
        Some(reason) => Err(OutboundError::Refused {
            host: host.to_owned(),
            addr: ip,
            reason,
        }),
        None => Ok(()),
    }
}

/// The address of an IP-literal host. `host_str` is normalized by the URL
/// parser: IPv6 in brackets, IPv4 in dotted decimal (so `0x7f.1` and
/// `2130706433` are already `127.0.0.1`).
fn literal_ip(host_str: &str) -> Option<IpAddr> {
    host_str
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host_str)
        .parse::<IpAddr>()
        .ok()
}

/// What every clone of one [`Outbound`] shares.
struct Shared {
    /// The one client (its build error, reported by each request, if the
    /// TLS setup failed).
    client: Result<reqwest::Client, String>,
    /// The client's resolver, also used by [`Outbound::check`].
    resolver: Arc<CheckingResolver>,
}

/// The outbound HTTP guard. Build it once (it builds the shared client and
/// its TLS setup) and clone it: clones are cheap and share the client and its
/// connection pool.
#[derive(Clone)]
pub struct Outbound {
    allow_private: bool,
    timeout: Duration,
    connect_timeout: Duration,
    shared: Arc<Shared>,
}

impl fmt::Debug for Outbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbound")
            .field("allow_private", &self.allow_private)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
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
    /// The resolved, checked addresses (as resolved by the check).
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }
}

impl Outbound {
    /// `allow_private`: allow loopback/private/link-local targets (tests,
    /// deployments that call internal services on purpose). Builds the
    /// shared client: call it once (per process or service) and clone.
    pub fn new(allow_private: bool) -> Outbound {
        Self::with_lookup(allow_private, Arc::new(SystemLookup))
    }

    fn with_lookup(allow_private: bool, lookup: Arc<dyn Lookup>) -> Outbound {
        let resolver = Arc::new(CheckingResolver {
            allow_private,
            timeout: DEFAULT_CONNECT_TIMEOUT,
            lookup,
        });
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(resolver.clone())
            .connect_timeout(DEFAULT_CONNECT_TIMEOUT)
            .timeout(DEFAULT_TIMEOUT)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
            .build()
            .map_err(|e| describe(&e.without_url()));
        Outbound {
            allow_private,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            shared: Arc::new(Shared { client, resolver }),
        }
    }

    /// Total time for one request (the connect timeout is the smaller of this
    /// and 5 s). Cheap: the shared client is kept, the timeout is per request.
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

    /// Parse the URL and check an IP-literal host, without resolving a name
    /// (the shared client's resolver checks names when it connects). This is
    /// what each request does first.
    fn check_syntax_and_literal(&self, url: &str) -> Result<(reqwest::Url, String), OutboundError> {
        let url = Self::parse_url(url)?;
        let host = url.host_str().unwrap_or_default().to_string();
        if let Some(ip) = literal_ip(&host) {
            if !self.allow_private {
                check_ip(&host, ip)?;
            }
        }
        Ok((url, host))
    }

    /// Parse the URL, resolve its host and check every address (the same
    /// check the shared client's resolver makes on every new connection).
    /// Call it to validate a target when it is configured (a webhook
    /// subscription, a rotation hook).
    pub async fn check(&self, url: &str) -> Result<CheckedTarget, OutboundError> {
        let (url, host) = self.check_syntax_and_literal(url)?;
        let port = url.port_or_known_default().unwrap_or(80);
        let ips = match literal_ip(&host) {
            Some(ip) => vec![ip],
            None => tokio::time::timeout(
                self.connect_timeout,
                self.shared.resolver.resolve_checked(&host),
            )
            .await
            .map_err(|_| OutboundError::Resolve {
                host: host.clone(),
                message: "timed out".into(),
            })??,
        };
        Ok(CheckedTarget {
            url,
            host,
            addrs: ips
                .into_iter()
                .map(|ip| SocketAddr::new(ip, port))
                .collect(),
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
        let (url, host) = self.check_syntax_and_literal(url)?;
        self.send(url, host, headers, body).await
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

    /// POST to a target already [`check`](Self::check)ed. Through the shared
    /// client like every request: a name is checked again by its resolver
    /// when a connection is opened, and the connection goes to the addresses
    /// that check returned.
    pub async fn post_checked(
        &self,
        target: &CheckedTarget,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<OutboundResponse, OutboundError> {
        let (url, host) = self.check_syntax_and_literal(target.url.as_str())?;
        self.send(url, host, headers, body).await
    }

    /// Send through the shared client. `url` passed
    /// [`check_syntax_and_literal`](Self::check_syntax_and_literal).
    async fn send(
        &self,
        url: reqwest::Url,
        host: String,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<OutboundResponse, OutboundError> {
        let transport = |message: String| OutboundError::Transport {
            host: host.clone(),
            message,
        };
        let client = self
            .shared
            .client
            .as_ref()
            .map_err(|message| transport(message.clone()))?;
        let mut request = client
            .post(url)
            .timeout(self.timeout)
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
        let mut response = request.send().await.map_err(|e| map_err(&host, e))?;
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
                Err(e) => return Err(map_err(&host, e)),
            }
        }
        Ok(OutboundResponse {
            status,
            body: out,
            truncated,
        })
    }
}

/// A reqwest error as an [`OutboundError`], without the URL. A refusal or a
/// resolution failure of the checking resolver comes back as itself.
fn map_err(host: &str, e: reqwest::Error) -> OutboundError {
    let e = e.without_url();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(s) = source {
        if let Some(ours) = s.downcast_ref::<OutboundError>() {
            return ours.clone();
        }
        source = s.source();
    }
    if e.is_timeout() {
        return OutboundError::Timeout { host: host.into() };
    }
    OutboundError::Transport {
        host: host.into(),
        message: describe(&e),
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

    /// A lookup with scripted answers, one per call (the last one repeats),
    /// counting the calls.
    struct ScriptedLookup {
        answers: std::sync::Mutex<std::collections::VecDeque<Vec<IpAddr>>>,
        calls: std::sync::atomic::AtomicUsize,
    }

    impl ScriptedLookup {
        fn new(answers: &[&[&str]]) -> Arc<ScriptedLookup> {
            Arc::new(ScriptedLookup {
                answers: std::sync::Mutex::new(
                    answers
                        .iter()
                        .map(|a| a.iter().map(|ip| ip.parse().unwrap()).collect())
                        .collect(),
                ),
                calls: Default::default(),
            })
        }
        fn calls(&self) -> usize {
            self.calls.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    impl Lookup for ScriptedLookup {
        fn lookup(&self, _host: &str) -> LookupFuture {
            self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut answers = self.answers.lock().unwrap();
            let answer = if answers.len() > 1 {
                answers.pop_front().unwrap()
            } else {
                answers.front().cloned().unwrap_or_default()
            };
            Box::pin(async move { Ok(answer) })
        }
    }

    #[tokio::test]
    async fn the_connection_goes_to_what_the_resolver_checked_and_returned() {
        use std::sync::atomic::Ordering;
        let (addr, connections, requests) = counting_receiver().await;
        // A name that never resolves (RFC 6761), answered by the resolver
        // with the receiver's address: the requests reach it, so the address
        // dialed is the one the checking resolver returned, and the resolver
        // is asked once for the one connection (no second lookup a
        // rebinding DNS answer could change).
        let lookup = ScriptedLookup::new(&[&["127.0.0.1"]]);
        let out = Outbound::with_lookup(true, lookup.clone());
        let url = format!("http://pinned.invalid:{}/x", addr.port());
        for _ in 0..3 {
            let res = out.post_json(&url, &[], b"{}").await.unwrap();
            assert_eq!(res.status, 204);
        }
        assert_eq!(requests.load(Ordering::SeqCst), 3);
        assert_eq!(connections.load(Ordering::SeqCst), 1);
        assert_eq!(lookup.calls(), 1, "one resolution per connection");
        // And the name itself does not resolve.
        assert!(matches!(
            Outbound::new(true).check("http://pinned.invalid/x").await,
            Err(OutboundError::Resolve { .. })
        ));
        assert!(matches!(
            Outbound::new(true)
                .post_json("http://pinned.invalid/x", &[], b"{}")
                .await,
            Err(OutboundError::Resolve { .. })
        ));
    }

    #[tokio::test]
    async fn dns_rebinding_after_the_check_cannot_reach_a_private_address() {
        use std::sync::atomic::Ordering;
        let (addr, connections, requests) = counting_receiver().await;
        // The name answers a public address when the target is checked
        // (subscription time), then rebinds to loopback, where the receiver
        // listens.
        let lookup = ScriptedLookup::new(&[&["93.184.215.14"], &["127.0.0.1"]]);
        let out = Outbound::with_lookup(false, lookup.clone());
        let url = format!("http://rebind.invalid:{}/x", addr.port());
        let target = out.check(&url).await.unwrap();
        assert_eq!(
            target.addrs(),
            &[SocketAddr::new(
                "93.184.215.14".parse().unwrap(),
                addr.port()
            )]
        );
        // The request's connection is resolved and checked again by the
        // shared client's resolver, which refuses the new answer; the
        // checked target cannot be replayed to get past it either.
        for res in [
            out.post_json(&url, &[], b"{}").await,
            out.post_checked(&target, &[], b"{}").await,
        ] {
            match res {
                Err(OutboundError::Refused { host, addr, .. }) => {
                    assert_eq!(host, "rebind.invalid");
                    assert_eq!(addr, IpAddr::from([127, 0, 0, 1]));
                }
                other => panic!("expected a refusal, got {other:?}"),
            }
        }
        assert_eq!(lookup.calls(), 3);
        assert_eq!(connections.load(Ordering::SeqCst), 0, "never dialed");
        assert_eq!(requests.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn the_resolver_refuses_names_of_private_addresses_unless_allowed() {
        use reqwest::dns::{Name, Resolve};
        let resolver = |allow_private, lookup: Arc<dyn Lookup>| CheckingResolver {
            allow_private,
            timeout: DEFAULT_CONNECT_TIMEOUT,
            lookup,
        };
        let name = |n: &str| n.parse::<Name>().unwrap();
        let refused = |e: Box<dyn std::error::Error + Send + Sync>| {
            matches!(
                e.downcast_ref::<OutboundError>(),
                Some(OutboundError::Refused { .. })
            )
        };
        // `localhost` through the system resolver: loopback addresses.
        let err = resolver(false, Arc::new(SystemLookup))
            .resolve(name("localhost"))
            .await
            .err()
            .unwrap();
        assert!(refused(err));
        let addrs: Vec<SocketAddr> = resolver(true, Arc::new(SystemLookup))
            .resolve(name("localhost"))
            .await
            .unwrap()
            .collect();
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 0));
        // One private address among public ones refuses the name.
        let mixed = ScriptedLookup::new(&[&["8.8.8.8", "10.0.0.1", "8.8.4.4"]]);
        let err = resolver(false, mixed)
            .resolve(name("mixed.test"))
            .await
            .err()
            .unwrap();
        assert!(refused(err));
        // Public answers are returned as checked, without repeats, in order.
        let public = ScriptedLookup::new(&[&["8.8.8.8", "2606:4700:4700::1111", "8.8.8.8"]]);
        let addrs: Vec<IpAddr> = resolver(false, public)
            .resolve(name("public.test"))
            .await
            .unwrap()
            .map(|a| a.ip())
            .collect();
        assert_eq!(
            addrs,
            ["8.8.8.8", "2606:4700:4700::1111"].map(|a| a.parse::<IpAddr>().unwrap())
        );
        // No address at all is a resolution failure.
        let none = ScriptedLookup::new(&[&[]]);
        let err = resolver(false, none)
            .resolve(name("none.test"))
            .await
            .err()
            .unwrap();
        assert!(matches!(
            err.downcast_ref::<OutboundError>(),
            Some(OutboundError::Resolve { .. })
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

    /// A keep-alive HTTP/1.1 receiver on 127.0.0.1 answering 204 to every
    /// request; counts the TCP connections it accepted and the requests.
    async fn counting_receiver() -> (
        SocketAddr,
        std::sync::Arc<std::sync::atomic::AtomicUsize>,
        std::sync::Arc<std::sync::atomic::AtomicUsize>,
    ) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let (c, r) = (connections.clone(), requests.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                c.fetch_add(1, Ordering::SeqCst);
                let r = r.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = vec![0u8; 4096];
                    loop {
                        // One request: headers, then Content-Length bytes.
                        let end = loop {
                            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                                break i + 4;
                            }
                            match sock.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map_or(0, |v| v.trim().parse().unwrap());
                        while buf.len() < end + len {
                            match sock.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        buf.drain(..end + len);
                        r.fetch_add(1, Ordering::SeqCst);
                        if sock
                            .write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        (addr, connections, requests)
    }

    #[tokio::test]
    async fn requests_share_one_client_and_reuse_its_connection() {
        use std::sync::atomic::Ordering;
        let (addr, connections, requests) = counting_receiver().await;
        let out = Outbound::new(true);
        let url = format!("http://127.0.0.1:{}/hook", addr.port());
        for _ in 0..5 {
            let res = out.post_json(&url, &[], b"{}").await.unwrap();
            assert_eq!(res.status, 204);
        }
        // And through clones of the guard (what `Service::outbound` hands out).
        for _ in 0..3 {
            let res = out.clone().post_json(&url, &[], b"{}").await.unwrap();
            assert_eq!(res.status, 204);
        }
        assert_eq!(requests.load(Ordering::SeqCst), 8);
        assert_eq!(
            connections.load(Ordering::SeqCst),
            1,
            "one shared client: sequential requests to one host reuse its connection"
        );
    }

    /// Per-request cost of sequential POSTs to a loopback receiver (debug
    /// build; docs/benchmarks.md): `cargo test -p cairn-core --lib
    /// outbound::tests::per_request_cost -- --ignored --nocapture`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore]
    #[allow(clippy::print_stderr)] // a benchmark reports its figures
    async fn per_request_cost() {
        use std::sync::atomic::Ordering;
        let (addr, connections, _) = counting_receiver().await;
        let out = Outbound::new(true);
        for host in ["127.0.0.1", "localhost"] {
            let url = format!("http://{host}:{}/hook", addr.port());
            for _ in 0..20 {
                out.post_json(&url, &[], b"{}").await.unwrap();
            }
            let (n, before) = (500, connections.load(Ordering::SeqCst));
            let t = std::time::Instant::now();
            for _ in 0..n {
                out.post_json(&url, &[], b"{}").await.unwrap();
            }
            eprintln!(
                "{host}: {:?} per request, {} new connections for {n} requests",
                t.elapsed() / n,
                connections.load(Ordering::SeqCst) - before
            );
        }
    }
}
