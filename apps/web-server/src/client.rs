//! Who a request comes from, for the rate limits ([`crate::limits`] and the sign-in links'
//! [`crate::sign_in`] limits in Redis): the connection's peer address, or — only behind
//! `http.trusted_proxies` proxies — the address the nearest trusted proxy put into
//! `X-Forwarded-For`. A client can write anything into that header; what it cannot forge is the
//! entry a proxy of ours appended, so that is the one read, counted from the end.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{Extensions, HeaderMap, request::Parts},
};

use crate::AppState;

/// The client a request comes from: the connection's peer address, or the address
/// `http.trusted_proxies` proxies put into `X-Forwarded-For`; `None` when the server was not
/// given peer addresses (a router served without connect info).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub Option<IpAddr>);

impl ClientAddr {
    /// The client of a request with these `extensions` (the peer address is put there by
    /// `into_make_service_with_connect_info`) and `headers`, behind `proxies` trusted proxies.
    pub fn of(extensions: &Extensions, headers: &HeaderMap, proxies: usize) -> Self {
        let peer = extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        ClientAddr(client_ip(peer, headers, proxies))
    }

    /// The key of this client in the rate limiters: an IPv4 address (also when written as an
    /// IPv4-mapped IPv6 address), or the /64 network of an IPv6 address — one subscriber gets a
    /// whole /64, so keying on single IPv6 addresses would let one client be 2^64 clients.
    pub fn limit_key(self) -> ClientKey {
        match self.0.map(|ip| ip.to_canonical()) {
            Some(IpAddr::V4(v4)) => ClientKey::V4(v4),
            Some(IpAddr::V6(v6)) => ClientKey::V6Network((v6.to_bits() >> 64) as u64),
            None => ClientKey::Unknown,
        }
    }
}

/// A client as the rate limiters count it (see [`ClientAddr::limit_key`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// An IPv4 address.
    V4(Ipv4Addr),
    /// The upper 64 bits of an IPv6 address.
    V6Network(u64),
    /// No peer address is known: every such request shares one key.
    Unknown,
}

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let proxies = state.settings.http.trusted_proxies;
        Ok(ClientAddr::of(&parts.extensions, &parts.headers, proxies))
    }
}

/// The client's address: `peer` without trusted proxies; else the `proxies`-th entry from the
/// end of `X-Forwarded-For` (each proxy appends the address it was reached from), or `peer` when
/// the header has fewer entries than that or the entry is not an IP address.
fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, proxies: usize) -> Option<IpAddr> {
    if proxies == 0 {
        return peer;
    }
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    forwarded
        .len()
        .checked_sub(proxies)
        .and_then(|i| forwarded[i].parse().ok())
        .or(peer)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(forwarded: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in forwarded {
            headers.append("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn without_trusted_proxies_the_client_is_the_peer_whatever_the_header_says() {
        let peer = "192.0.2.1".parse().ok();
        assert_eq!(client_ip(peer, &headers(&["203.0.113.9"]), 0), peer);
    }

    #[test]
    fn behind_proxies_the_client_is_the_entry_the_nearest_trusted_proxy_added() {
        let peer = "10.0.0.5".parse().ok();
        let forwarded = headers(&["198.51.100.7, 203.0.113.9", "10.0.0.4"]);
        let client = |n| client_ip(peer, &forwarded, n).map(|ip| ip.to_string());
        assert_eq!(client(1).as_deref(), Some("10.0.0.4"));
        assert_eq!(client(2).as_deref(), Some("203.0.113.9"));
        assert_eq!(client(4).as_deref(), Some("10.0.0.5"), "too few entries");
        let garbage = headers(&["not-an-ip"]);
        assert_eq!(client_ip(peer, &garbage, 1), peer);
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64_network_and_a_mapped_ipv4_as_ipv4() {
        let key = |ip: &str| ClientAddr(ip.parse().ok()).limit_key();
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:192.0.2.7"), key("192.0.2.7"));
        assert_ne!(key("192.0.2.7"), key("192.0.2.8"));
        assert_eq!(ClientAddr(None).limit_key(), ClientKey::Unknown);
    }
}
