//! Per-client rate limiting of the `/v1` routes (off unless `RECLOOP_RATE_LIMIT_PER_SECOND` is
//! set): a GCRA bucket per client from `governor`, answering 429 with `Retry-After`.

use std::{
    net::{IpAddr, SocketAddr},
    num::NonZeroU32,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use axum::{
    extract::{ConnectInfo, Request},
    http::{header, HeaderMap, HeaderValue},
    response::{IntoResponse, Response},
};
use governor::{clock::Clock, DefaultKeyedRateLimiter, Quota};

use super::{error::ApiError, AppState};
use crate::config::Config;

/// Who a request counts against. A key is named by which configured key it matched, never
/// by its text: a wrong or random bearer counts against the sender's address, so inventing
/// keys buys no fresh budget.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Client {
    Key(super::keys::Presented),
    Address(IpAddr),
    /// No address known (a server started without connection info, as some tests do).
    Unknown,
}

/// Idle buckets are dropped after this many checks, so that many one-off addresses cannot
/// grow the table without bound.
const SWEEP_EVERY: u64 = 4096;

pub struct RateLimit {
    limiter: DefaultKeyedRateLimiter<Client>,
    checks: AtomicU64,
    trusted_proxies: Vec<IpAddr>,
}

impl RateLimit {
    /// `None` when the configuration turns limiting off.
    pub fn from_config(config: &Config) -> Option<Arc<Self>> {
        let rate = config.rate_limit_per_second;
        if rate <= 0.0 {
            return None;
        }
        let quota = Quota::with_period(Duration::from_secs_f64(1.0 / rate))?;
        let burst = match config.rate_limit_burst {
            0 => rate.ceil().min(f64::from(u32::MAX)) as u32,
            b => b,
        };
        let quota = quota.allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
        Some(Arc::new(Self {
            limiter: DefaultKeyedRateLimiter::keyed(quota),
            checks: AtomicU64::new(0),
            trusted_proxies: config.trusted_proxies.clone(),
        }))
    }

    /// `Err(wait)` when the client has spent its budget.
    pub fn check(&self, client: &Client) -> Result<(), Duration> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(client)
            .map_err(|not_until| not_until.wait_time_from(self.limiter.clock().now()))
    }

    /// The address a request comes from: the peer's, or, when the peer is a trusted proxy,
    /// the right-most `X-Forwarded-For` entry that is not itself a trusted proxy (entries
    /// further left were written by the client and prove nothing).
    pub fn address(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Client {
        let Some(mut address) = peer else {
            return Client::Unknown;
        };
        if !self.trusted_proxies.contains(&address) {
            return Client::Address(address);
        }
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect::<Vec<_>>();
        for hop in forwarded.iter().rev() {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    address = ip;
                    if !self.trusted_proxies.contains(&ip) {
                        break;
                    }
                }
                // An unreadable hop ends what can be trusted; the last good one stands.
                Err(_) => break,
            }
        }
        Client::Address(address)
    }
}

/// Rounded up to whole seconds, at least 1: the header carries integers, and waiting less
/// than the bucket needs would only earn another 429.
fn retry_after(wait: Duration) -> HeaderValue {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    HeaderValue::from(secs.max(1))
}

/// The 429 answer when the request's client (its key as `presented`, else its address) has
/// spent its budget; never when rate limiting is off.
pub(super) fn refusal(
    s: &AppState,
    req: &Request,
    presented: Option<super::keys::Presented>,
) -> Option<Response> {
    let limit = s.rate_limit.as_deref()?;
    let client = match presented {
        Some(key) => Client::Key(key),
        None => {
            let peer = req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip());
            limit.address(peer, req.headers())
        }
    };
    limit.check(&client).err().map(|wait| {
        metrics::counter!("recloop_http_rate_limited_total").increment(1);
        let mut response = ApiError::TooManyRequests.into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, retry_after(wait));
        response
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(rate: f64, burst: u32, proxies: &[&str]) -> Arc<RateLimit> {
        let mut c = Config::default_for("sqlite::memory:");
        c.rate_limit_per_second = rate;
        c.rate_limit_burst = burst;
        c.trusted_proxies = proxies.iter().map(|p| p.parse().unwrap()).collect();
        RateLimit::from_config(&c).expect("on")
    }

    #[test]
    fn off_by_default() {
        assert!(RateLimit::from_config(&Config::default_for("sqlite::memory:")).is_none());
    }

    #[test]
    fn a_burst_then_refusal_with_a_wait() {
        let l = limit(0.5, 3, &[]);
        let me = Client::Address("10.0.0.1".parse().unwrap());
        for _ in 0..3 {
            assert!(l.check(&me).is_ok());
        }
        let wait = l.check(&me).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(2),
            "{wait:?}"
        );
        assert_eq!(retry_after(wait), HeaderValue::from(2u64));
        // Someone else still has a full budget.
        let key = super::super::keys::Presented {
            access: super::super::keys::Access::Api,
            index: 0,
        };
        assert!(l.check(&Client::Key(key)).is_ok());
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(
            retry_after(Duration::from_millis(1)),
            HeaderValue::from(1u64)
        );
        assert_eq!(
            retry_after(Duration::from_millis(1001)),
            HeaderValue::from(2u64)
        );
        assert_eq!(retry_after(Duration::ZERO), HeaderValue::from(1u64));
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "6.6.6.6, 1.2.3.4, 10.0.0.2".parse().unwrap(),
        );
        let l = limit(1.0, 0, &["10.0.0.1", "10.0.0.2"]);
        assert_eq!(
            l.address(ip("10.0.0.1"), &headers),
            Client::Address("1.2.3.4".parse().unwrap())
        );
        // From an untrusted peer the header is the client's own claim.
        assert_eq!(
            l.address(ip("5.5.5.5"), &headers),
            Client::Address("5.5.5.5".parse().unwrap())
        );
        assert_eq!(
            l.address(ip("10.0.0.1"), &HeaderMap::new()),
            Client::Address("10.0.0.1".parse().unwrap())
        );
        let mut junk = HeaderMap::new();
        junk.insert("x-forwarded-for", "1.2.3.4, not-an-ip".parse().unwrap());
        assert_eq!(
            l.address(ip("10.0.0.1"), &junk),
            Client::Address("10.0.0.1".parse().unwrap())
        );
        assert_eq!(l.address(None, &headers), Client::Unknown);
    }
}
