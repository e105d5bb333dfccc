//! The client's address behind reverse proxies. Only proxies listed in `trusted_proxies` (CIDRs;
//! none by default) are believed, and only in the one header they are configured to write
//! (`forwarded_header`: `X-Forwarded-For` by default, or RFC 7239 `Forwarded`): a proxy that
//! appends to one passes the other through as the client wrote it. When the connection comes from
//! a trusted proxy, the client is the right-most hop of that header that is not itself trusted. Hops further left were written by whoever sent the
//! request and prove nothing. A middleware puts the result where every handler already reads the
//! peer address (`ConnectInfo`), so throttles, rate limits and audit events all see the client.

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Which header the trusted proxies write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ForwardedHeader {
    #[default]
    XForwardedFor,
    Forwarded,
}

/// The proxies whose forwarding header is believed.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
    header: ForwardedHeader,
}

impl TrustedProxies {
    /// Parses CIDRs (`10.0.0.0/8`, `2001:db8::/32`) or single addresses, and the header
    /// (`x-forwarded-for` or `forwarded`); the error names the entry.
    pub fn parse(entries: &[String], header: &str) -> Result<Self, String> {
        let header = match header.to_ascii_lowercase().as_str() {
            "x-forwarded-for" => ForwardedHeader::XForwardedFor,
            "forwarded" => ForwardedHeader::Forwarded,
            other => return Err(format!("forwarded_header: {other:?} is neither \"x-forwarded-for\" nor \"forwarded\"")),
        };
        let nets = entries
            .iter()
            .map(|e| {
                let e = e.trim();
                e.parse::<IpNet>()
                    .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("trusted_proxies: {e:?} is not an address or a CIDR (like \"10.0.0.0/8\")"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { nets, header })
    }

    /// Whether any proxy is trusted at all.
    pub fn is_configured(&self) -> bool {
        !self.nets.is_empty()
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = unmapped(ip);
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The client behind `peer`, given the request's forwarding headers.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if self.nets.is_empty() || !self.trusts(peer) {
            return peer;
        }
        let hops = forwarded_hops(headers, self.header);
        let mut client = peer;
        // Right to left: every hop a trusted proxy vouches for, until one that is not trusted.
        for hop in hops.iter().rev() {
            match hop {
                Some(ip) => {
                    client = *ip;
                    if !self.trusts(*ip) {
                        break;
                    }
                }
                // "unknown", an obfuscated name or garbage: the last address vouched for stands.
                None => break,
            }
        }
        client
    }
}

/// An IPv4 address written as IPv6 (`::ffff:192.0.2.1`) is the IPv4 address.
fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The hops a request passed, left (first) to right (last), from the configured header: `Forwarded`'s
/// `for=` values or `X-Forwarded-For`'s. `None` for a hop that names no address.
fn forwarded_hops(headers: &HeaderMap, header: ForwardedHeader) -> Vec<Option<IpAddr>> {
    let joined = |name: &str| headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>().join(",");
    if header == ForwardedHeader::Forwarded {
        return joined("forwarded")
            .split(',')
            .map(|element| {
                element
                    .split(';')
                    .filter_map(|pair| pair.split_once('='))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
                    .and_then(|(_, v)| node_address(v.trim().trim_matches('"')))
            })
            .collect();
    }
    joined("x-forwarded-for").split(',').map(|h| node_address(h.trim())).collect()
}

/// The address of a node as RFC 7239 §6 writes it: `192.0.2.43`, `192.0.2.43:47011`,
/// `[2001:db8::1]`, `[2001:db8::1]:4711`; X-Forwarded-For's bare `2001:db8::1` too.
fn node_address(node: &str) -> Option<IpAddr> {
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']').and_then(|(ip, _)| ip.parse().ok()).map(unmapped);
    }
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(unmapped(ip));
    }
    node.parse::<SocketAddr>().ok().map(|s| unmapped(s.ip()))
}

/// Puts the client's address, as the trusted proxies tell it, in place of the peer's.
pub async fn resolve_client(State(trusted): State<Arc<TrustedProxies>>, mut req: Request, next: Next) -> Response {
    if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() {
        let client = trusted.client(peer.ip(), req.headers());
        if client != peer.ip() {
            req.extensions_mut().insert(ConnectInfo(SocketAddr::new(client, peer.port())));
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_trusted_proxies_are_believed_and_the_rightmost_untrusted_hop_is_the_client() {
        let none = TrustedProxies::default();
        let parse = |nets: &[&str], header: &str| TrustedProxies::parse(&nets.iter().map(|n| n.to_string()).collect::<Vec<_>>(), header);
        let xff = headers(&[("x-forwarded-for", "198.51.100.1")]);
        assert_eq!(none.client(ip("10.0.0.5"), &xff), ip("10.0.0.5"), "no proxies trusted: headers ignored");
        let t = parse(&["10.0.0.0/8", "2001:db8:ffff::1"], "x-forwarded-for").unwrap();
        assert_eq!(t.client(ip("192.0.2.9"), &xff), ip("192.0.2.9"), "an untrusted peer's headers are ignored");
        assert_eq!(t.client(ip("10.0.0.5"), &xff), ip("198.51.100.1"));
        // The client wrote its own "X-Forwarded-For: 1.2.3.4": the proxy appended the real address.
        let spoofed = headers(&[("x-forwarded-for", "1.2.3.4, 198.51.100.1, 10.0.0.7")]);
        assert_eq!(t.client(ip("10.0.0.5"), &spoofed), ip("198.51.100.1"));
        // Several header lines are one list.
        let lines = headers(&[("x-forwarded-for", "1.2.3.4"), ("x-forwarded-for", "198.51.100.2")]);
        assert_eq!(t.client(ip("10.0.0.5"), &lines), ip("198.51.100.2"));
        // A proxy that writes X-Forwarded-For passes a Forwarded header through as the client
        // wrote it: only the configured header counts.
        let fwd = headers(&[
            ("forwarded", "for=1.2.3.4, for=\"[2001:db8::17]:4711\";proto=https, for=10.1.1.1"),
            ("x-forwarded-for", "198.51.100.3"),
        ]);
        assert_eq!(t.client(ip("10.0.0.5"), &fwd), ip("198.51.100.3"), "a client-written Forwarded was believed");
        let f = parse(&["10.0.0.0/8"], "forwarded").unwrap();
        assert_eq!(f.client(ip("10.0.0.5"), &fwd), ip("2001:db8::17"), "ports, brackets and quotes");
        assert_eq!(f.client(ip("::ffff:10.0.0.5"), &fwd), ip("2001:db8::17"), "v4-mapped peer");
        // A hop that names no address: the last one a trusted proxy vouched for.
        let unknown = headers(&[("forwarded", "for=unknown, for=10.2.2.2")]);
        assert_eq!(f.client(ip("10.0.0.5"), &unknown), ip("10.2.2.2"));
        // Every hop trusted: the left-most.
        let all = headers(&[("x-forwarded-for", "10.3.3.3, 10.4.4.4")]);
        assert_eq!(t.client(ip("10.0.0.5"), &all), ip("10.3.3.3"));
        assert!(parse(&["10.0.0.0/33"], "x-forwarded-for").unwrap_err().contains("10.0.0.0/33"));
        assert!(parse(&[], "x-real-ip").unwrap_err().contains("forwarded_header"));
    }
}
