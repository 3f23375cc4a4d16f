//! The canonical view of a URL and of an IP address: what the grant is matched
//! against and what the host connects to. One `url::Url` parse is the single
//! source of truth; this module refuses what that parse would hide (userinfo,
//! backslashes, control characters, encoded traversal), lowers the host to one
//! spelling (one trailing dot dropped, IPv4-mapped and IPv4-compatible IPv6
//! unwrapped) and classifies addresses the tool must not reach.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use percent_encoding::percent_decode_str;
use url::{Host, Url};

/// Why a URL is refused before any grant is consulted (guest-visible text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Whitespace or a control character anywhere in the input.
    #[error("the URL contains whitespace or a control character; percent-encode it")]
    Control,
    /// A backslash anywhere in the input.
    #[error("the URL contains a backslash; write `/` (or `%5C` inside a path)")]
    Backslash,
    /// `url` could not parse it.
    #[error("`{0}` is not an absolute URL: {1}")]
    Parse(String, url::ParseError),
    /// A scheme other than http and https.
    #[error("scheme `{0}` cannot be fetched; only http and https URLs can")]
    Scheme(String),
    /// `user:pass@` in the authority.
    #[error(
        "the URL carries user information (`...@`); remove it, credentials come from the grant"
    )]
    Userinfo,
    /// No host, or an empty label.
    #[error("the URL's host `{0}` is empty or has an empty label")]
    Host(String),
    /// A path that a server could decode into a dot segment.
    #[error(
        "the URL's path hides a `.` or `..` segment (or a NUL) behind an encoded `/`, `\\`, \
         `;` or `%00`; write the path the server should see"
    )]
    Traversal,
}

/// A host in canonical form: a lower-case ASCII (punycode) name without a
/// trailing dot, or an IP address with IPv4-in-IPv6 forms unwrapped.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CanonHost {
    /// A DNS name.
    Domain(String),
    /// An IP literal.
    Ip(IpAddr),
}

impl fmt::Display for CanonHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Domain(d) => f.write_str(d),
            Self::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            Self::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
        }
    }
}

impl CanonHost {
    /// Lowers what `url` parsed to the canonical form; `None` for an empty label.
    pub fn from_url_host(host: Host<&str>) -> Option<Self> {
        match host {
            Host::Domain(d) => {
                let d = d.strip_suffix('.').unwrap_or(d);
                if d.is_empty() || d.split('.').any(str::is_empty) {
                    return None;
                }
                Some(Self::Domain(d.to_ascii_lowercase()))
            }
            Host::Ipv4(ip) => Some(Self::Ip(IpAddr::V4(ip))),
            Host::Ipv6(ip) => Some(Self::Ip(canon_ip(IpAddr::V6(ip)))),
        }
    }
}

/// A URL the host may act on: the parse, and the canonical parts read from it.
#[derive(Debug, Clone)]
pub struct Target {
    /// The parsed URL, its host rewritten to the canonical form.
    pub url: Url,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// The canonical host.
    pub host: CanonHost,
    /// The port, explicit or the scheme's default.
    pub port: u16,
}

/// Scheme, host and port: two targets with the same origin share credentials.
pub type Origin = (&'static str, CanonHost, u16);

impl Target {
    /// Parses `raw`, absolute or (with `base`, for a redirect's `Location`)
    /// relative, refusing anything the canonical view could not represent.
    pub fn parse(base: Option<&Url>, raw: &str) -> Result<Self, UrlError> {
        if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(UrlError::Control);
        }
        if raw.contains('\\') {
            return Err(UrlError::Backslash);
        }
        if raw_authority(raw).is_some_and(|a| a.contains('@')) {
            return Err(UrlError::Userinfo);
        }
        let url = Url::options()
            .base_url(base)
            .parse(raw)
            .map_err(|e| UrlError::Parse(raw.to_string(), e))?;
        Self::from_url(url)
    }

    /// Checks and canonicalizes an already parsed URL.
    pub fn from_url(mut url: Url) -> Result<Self, UrlError> {
        let scheme = match url.scheme() {
            "http" => "http",
            "https" => "https",
            other => return Err(UrlError::Scheme(other.to_string())),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlError::Userinfo);
        }
        let raw_host = url.host_str().unwrap_or_default().to_string();
        let host = url
            .host()
            .and_then(CanonHost::from_url_host)
            .ok_or_else(|| UrlError::Host(raw_host.clone()))?;
        let port = url.port_or_known_default().unwrap_or(0);
        if host.to_string() != raw_host {
            url.set_host(Some(&host.to_string()))
                .map_err(|_| UrlError::Host(raw_host))?;
        }
        url.set_fragment(None);
        if hides_traversal(url.path()) {
            return Err(UrlError::Traversal);
        }
        Ok(Self {
            url,
            scheme,
            host,
            port,
        })
    }

    /// The path as sent (already normalized by `url`).
    pub fn path(&self) -> &str {
        self.url.path()
    }

    /// Scheme, host and port.
    pub fn origin(&self) -> Origin {
        (self.scheme, self.host.clone(), self.port)
    }

    /// The `Host` header value: the canonical host, with the port when it is
    /// not the scheme's default.
    pub fn host_header(&self) -> String {
        match self.url.port() {
            Some(port) => format!("{}:{port}", self.host),
            None => self.host.to_string(),
        }
    }

    /// The request target in origin form: path and query.
    pub fn path_and_query(&self) -> String {
        match self.url.query() {
            Some(q) => format!("{}?{q}", self.url.path()),
            None => self.url.path().to_string(),
        }
    }

    /// The URL for audit records: query values removed, keys kept (`?q=&page=`).
    pub fn redacted(&self) -> String {
        let mut out = format!(
            "{}://{}{}",
            self.scheme,
            self.host_header(),
            self.url.path()
        );
        if let Some(q) = self.url.query() {
            out.push('?');
            let keys: Vec<String> = q
                .split('&')
                .map(|pair| format!("{}=", pair.split('=').next().unwrap_or_default()))
                .collect();
            out.push_str(&keys.join("&"));
        }
        out
    }
}

/// The authority of `raw` as written, if it has one (`scheme://AUTH/...`,
/// `//AUTH/...`), to catch an `@` that `url` would silently drop.
fn raw_authority(raw: &str) -> Option<&str> {
    let rest = match raw.split_once(':') {
        Some((scheme, rest))
            if !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            rest
        }
        _ => raw,
    };
    let rest = rest.trim_start_matches('/');
    if rest.len() == raw.len() {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(&rest[..end])
}

/// Whether fully decoding `path` yields a `.` or `..` segment (split on `/`
/// and `\`, with `;` parameters cut) that `url` did not already resolve, or
/// a NUL some servers truncate at.
pub fn hides_traversal(path: &str) -> bool {
    let decoded = percent_decode_str(path).decode_utf8_lossy();
    decoded.contains('\0')
        || decoded.split(['/', '\\']).any(|segment| {
            let segment = segment.split(';').next().unwrap_or_default();
            segment == "." || segment == ".."
        })
}

/// An IPv6 address that carries an IPv4 address (mapped `::ffff:a.b.c.d` or
/// compatible `::a.b.c.d`, but not `::` and `::1`) as that IPv4 address.
pub fn unwrap_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    if s[..6] == [0; 6] && !(s[6] == 0 && s[7] <= 1) {
        return Some(embedded_v4(s[6], s[7]));
    }
    None
}

fn embedded_v4(hi: u16, lo: u16) -> Ipv4Addr {
    let [a, b] = hi.to_be_bytes();
    let [c, d] = lo.to_be_bytes();
    Ipv4Addr::new(a, b, c, d)
}

/// The canonical form of an address: IPv4 carried in IPv6 is unwrapped.
pub fn canon_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => unwrap_v4(v6).map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Why an address is off limits unless the grant names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// `0.0.0.0`, `::`.
    Unspecified,
    /// `0.0.0.0/8` other than `0.0.0.0`.
    ThisNetwork,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// RFC 1918 and deprecated IPv6 site-local.
    Private,
    /// `169.254.0.0/16`, `fe80::/10`.
    LinkLocal,
    /// `100.64.0.0/10`.
    SharedCgnat,
    /// `fc00::/7`.
    UniqueLocal,
    /// Cloud instance metadata endpoints.
    Metadata,
    /// `255.255.255.255`.
    Broadcast,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// TEST-NETs, `2001:db8::/32`, `3fff::/20`.
    Documentation,
    /// `198.18.0.0/15`.
    Benchmarking,
    /// Other special-purpose ranges (`240.0.0.0/4`, `192.0.0.0/24`, ...).
    Reserved,
}

impl Class {
    /// The words used in denials.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::ThisNetwork => "in \"this network\" (0.0.0.0/8)",
            Self::Loopback => "loopback",
            Self::Private => "private",
            Self::LinkLocal => "link-local",
            Self::SharedCgnat => "in the shared CGNAT range",
            Self::UniqueLocal => "unique-local",
            Self::Metadata => "a cloud metadata endpoint",
            Self::Broadcast => "broadcast",
            Self::Multicast => "multicast",
            Self::Documentation => "a documentation address",
            Self::Benchmarking => "a benchmarking address",
            Self::Reserved => "reserved",
        }
    }
}

const METADATA_V4: [Ipv4Addr; 2] = [
    Ipv4Addr::new(169, 254, 169, 254),
    Ipv4Addr::new(100, 100, 100, 200),
];
const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);

/// The class of `ip` if a tool must not reach it without an explicit grant;
/// `None` for a public unicast address.
pub fn classify(ip: IpAddr) -> Option<Class> {
    match canon_ip(ip) {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], len: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn classify_v4(ip: Ipv4Addr) -> Option<Class> {
    let table: [([u8; 4], u32, Class); 17] = [
        ([0, 0, 0, 0], 32, Class::Unspecified),
        ([0, 0, 0, 0], 8, Class::ThisNetwork),
        ([127, 0, 0, 0], 8, Class::Loopback),
        ([10, 0, 0, 0], 8, Class::Private),
        ([172, 16, 0, 0], 12, Class::Private),
        ([192, 168, 0, 0], 16, Class::Private),
        ([169, 254, 0, 0], 16, Class::LinkLocal),
        ([100, 64, 0, 0], 10, Class::SharedCgnat),
        ([192, 0, 0, 0], 24, Class::Reserved),
        ([192, 0, 2, 0], 24, Class::Documentation),
        ([198, 51, 100, 0], 24, Class::Documentation),
        ([203, 0, 113, 0], 24, Class::Documentation),
        ([198, 18, 0, 0], 15, Class::Benchmarking),
        ([192, 88, 99, 0], 24, Class::Reserved),
        ([255, 255, 255, 255], 32, Class::Broadcast),
        ([224, 0, 0, 0], 4, Class::Multicast),
        ([240, 0, 0, 0], 4, Class::Reserved),
    ];
    if METADATA_V4.contains(&ip) {
        return Some(Class::Metadata);
    }
    table
        .iter()
        .find(|(net, len, _)| in_v4(ip, *net, *len))
        .map(|(_, _, class)| *class)
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, len: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
    u128::from(ip) & mask == u128::from(net) & mask
}

fn classify_v6(ip: Ipv6Addr) -> Option<Class> {
    let s = ip.segments();
    if ip == METADATA_V6 {
        return Some(Class::Metadata);
    }
    if ip.is_unspecified() {
        return Some(Class::Unspecified);
    }
    if ip.is_loopback() {
        return Some(Class::Loopback);
    }
    // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) reach the IPv4 address they embed.
    if in_v6(ip, Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96) {
        return classify_v4(embedded_v4(s[6], s[7]));
    }
    if in_v6(ip, Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16) {
        return classify_v4(embedded_v4(s[1], s[2]));
    }
    let table: [(Ipv6Addr, u32, Class); 9] = [
        (
            Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0),
            48,
            Class::Private,
        ),
        (
            Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0),
            64,
            Class::Reserved,
        ),
        (
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
            32,
            Class::Documentation,
        ),
        (
            Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0),
            20,
            Class::Documentation,
        ),
        (
            Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0),
            23,
            Class::Reserved,
        ),
        (
            Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0),
            10,
            Class::LinkLocal,
        ),
        (
            Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0),
            10,
            Class::Private,
        ),
        (
            Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0),
            7,
            Class::UniqueLocal,
        ),
        (
            Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0),
            8,
            Class::Multicast,
        ),
    ];
    table
        .iter()
        .find(|(net, len, _)| in_v6(ip, *net, *len))
        .map(|(_, _, class)| *class)
}

/// A network written as `10.0.0.0/8`, `fd00::/8` or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    len: u8,
}

impl Cidr {
    /// Parses one `private_networks` entry, with advice in the error.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (addr, len) = match text.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (text, None),
        };
        let net: IpAddr = addr.parse().map_err(|_| {
            format!("`{text}` is not an IP address or CIDR; write `10.0.0.0/8` or `127.0.0.1`")
        })?;
        if let IpAddr::V6(v6) = net
            && unwrap_v4(v6).is_some()
        {
            return Err(format!(
                "`{text}` is an IPv4 address written as IPv6; write the IPv4 form"
            ));
        }
        let max = if net.is_ipv4() { 32 } else { 128 };
        let len = match len {
            None => max,
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("`{text}` has a bad prefix length; use 1 to {max}"))?,
        };
        if len == 0 {
            return Err(format!(
                "`{text}` would allow every address; list the networks the tool needs"
            ));
        }
        let cidr = Self { net, len };
        if !cidr.contains(net) || cidr.masked() != net {
            return Err(format!(
                "`{text}` has host bits set; write `{}/{len}`",
                cidr.masked()
            ));
        }
        Ok(cidr)
    }

    fn masked(&self) -> IpAddr {
        match self.net {
            IpAddr::V4(v4) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
        }
    }

    /// Whether `ip` (canonicalized) lies in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, canon_ip(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => in_v4(ip, net.octets(), u32::from(self.len)),
            (IpAddr::V6(net), IpAddr::V6(ip)) => in_v6(ip, net, u32::from(self.len)),
            _ => false,
        }
    }

    /// Whether every address this entry lets a tool reach, `outer` lets it
    /// reach too: this network lies inside `outer`, and a metadata address
    /// (which only a single-address entry unlocks) is named by `outer` exactly.
    pub fn within(&self, outer: &Cidr) -> bool {
        let metadata = self.is_single() && classify(self.net) == Some(Class::Metadata);
        if metadata {
            return outer == self;
        }
        self.net.is_ipv4() == outer.net.is_ipv4()
            && outer.len <= self.len
            && outer.contains(self.net)
    }

    /// Whether this entry is exactly one address (needed to unlock metadata).
    pub fn is_single(&self) -> bool {
        u32::from(self.len) == if self.net.is_ipv4() { 32 } else { 128 }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_single() {
            write!(f, "{}", self.net)
        } else {
            write!(f, "{}/{}", self.net, self.len)
        }
    }
}
