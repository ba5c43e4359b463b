//! Hosts and ports: the one loopback rule, free ports for restored services,
//! and this machine's name for the record.

use anyhow::Context;

/// Whether `host` (a name, an IPv4 or IPv6 address, bracketed or not, with or
/// without a `:port`) is this machine's loopback interface. The one rule behind
/// every "allowed only on loopback" decision (plain SMTP, plain-HTTP stores, the API).
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim();
    let bare = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else if host.matches(':').count() == 1 {
        host.split(':').next().unwrap_or("")
    } else {
        host
    };
    bare.eq_ignore_ascii_case("localhost") || bare.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The `host[:port]` of an `http(s)://` URL, or `None` if it is not one.
pub fn url_host(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    Some(authority.rsplit('@').next().unwrap_or(authority))
}

/// A free TCP port on 127.0.0.1 for a restored service.
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("cannot find a free loopback port")?;
    Ok(l.local_addr()?.port())
}

/// This machine's name, recorded with every run.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_loopback_rule_for_every_form() {
        for h in ["127.0.0.1", "127.0.0.1:9000", "localhost", "LOCALHOST:25", "::1", "[::1]:7878", "127.1.2.3"] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["10.0.0.1", "mail.example.com", "example.com:25", "[2001:db8::1]:80", ""] {
            assert!(!is_loopback(h), "{h}");
        }
        assert_eq!(url_host("http://u:p@127.0.0.1:9000/bucket"), Some("127.0.0.1:9000"));
        assert_eq!(url_host("ftp://x"), None);
    }
}
