//! The bearer keys: which configured key a request presents, whether it opens the route, and
//! each key's request count under its fingerprint.
//!
//! Several keys of each kind may be configured at once (`RECLOOP_API_KEYS`,
//! `RECLOOP_ADMIN_KEYS`, beside the single-key settings), so that a key is rotated by adding
//! the new one, moving the clients over and then removing the old one, with no moment at which
//! a client holding either is refused.

use axum::{extract::Request, http::header};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use crate::config::{Config, Secret};

/// Which key a route needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    Api,
    Admin,
}

impl Access {
    fn name(self) -> &'static str {
        match self {
            Access::Api => "api",
            Access::Admin => "admin",
        }
    }
}

/// The configured key a request matched: its kind and its place in [`Keys`] (never its text,
/// so that nothing derived from a request carries a secret further).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Presented {
    pub access: Access,
    pub index: usize,
}

struct Key {
    secret: Secret,
    access: Access,
    requests: metrics::Counter,
}

/// Every configured key, built once when the app starts.
pub struct Keys {
    keys: Vec<Key>,
    api: bool,
    admin: bool,
}

/// The first 8 hex digits of the key's SHA-256: enough to tell an operator's keys apart in
/// `/metrics` and in the start-up log, far too little to recover or guess the key from.
pub fn fingerprint(secret: &Secret) -> String {
    let digest = Sha256::digest(secret.expose().as_bytes());
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

impl Keys {
    /// The keys of `config`, each kind's single key and list together, duplicates dropped.
    /// Must be built after the metrics recorder is installed, or the counts go nowhere.
    pub fn from_config(config: &Config) -> Keys {
        let mut keys: Vec<Key> = Vec::new();
        let kinds = [
            (
                Access::Admin,
                config.admin_key.iter().chain(&config.admin_keys),
            ),
            (Access::Api, config.api_key.iter().chain(&config.api_keys)),
        ];
        for (access, secrets) in kinds {
            for secret in secrets {
                if keys.iter().any(|k| k.secret.expose() == secret.expose()) {
                    continue;
                }
                let requests = metrics::counter!(
                    "recloop_http_requests_by_key_total",
                    "role" => access.name(),
                    "key" => fingerprint(secret),
                );
                keys.push(Key {
                    secret: secret.clone(),
                    access,
                    requests,
                });
            }
        }
        let has = |access| keys.iter().any(|k: &Key| k.access == access);
        let (api, admin) = (has(Access::Api), has(Access::Admin));
        Keys { keys, api, admin }
    }

    /// The fingerprints of the keys of one kind, for the start-up log.
    pub fn fingerprints(&self, access: Access) -> Vec<String> {
        self.keys
            .iter()
            .filter(|k| k.access == access)
            .map(|k| fingerprint(&k.secret))
            .collect()
    }

    pub fn any(&self, access: Access) -> bool {
        match access {
            Access::Api => self.api,
            Access::Admin => self.admin,
        }
    }

    /// Which configured key the request presents, if any, counted in its key's total. Every
    /// key is compared, in constant time, whichever matches: the time taken must tell neither
    /// how much of a guess was right nor which key it was close to.
    pub fn presented(&self, req: &Request) -> Option<Presented> {
        let given = bearer(req)?;
        let mut found = None;
        for (index, key) in self.keys.iter().enumerate() {
            let hit: Choice = given.ct_eq(key.secret.expose().as_bytes());
            if bool::from(hit) && found.is_none() {
                found = Some(Presented {
                    access: key.access,
                    index,
                });
            }
        }
        if let Some(p) = found {
            self.keys[p.index].requests.increment(1);
        }
        found
    }

    /// Whether the key a request presented opens a route that needs `access`.
    pub fn check(&self, access: Access, presented: Option<Presented>) -> Result<(), Refusal> {
        let held = presented.map(|p| p.access);
        match access {
            Access::Api if !self.api || held.is_some() => Ok(()),
            Access::Api => Err(Refusal::Unauthorized),
            Access::Admin if self.admin => match held {
                Some(Access::Admin) => Ok(()),
                Some(Access::Api) => Err(Refusal::Forbidden),
                None => Err(Refusal::Unauthorized),
            },
            // Without an admin key, the API keys (if any) guard everything.
            Access::Admin if !self.api || held.is_some() => Ok(()),
            Access::Admin => Err(Refusal::Unauthorized),
        }
    }
}

/// Why a request is refused: no right key (401), or a key without the right (403).
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    Unauthorized,
    Forbidden,
}

fn bearer(req: &Request) -> Option<&[u8]> {
    let value = req.headers().get(header::AUTHORIZATION)?.as_bytes();
    let prefix = b"Bearer ";
    (value.len() > prefix.len() && value[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &value[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(api: &[&str], admin: &[&str]) -> Keys {
        let mut c = Config::default_for("sqlite::memory:");
        c.api_keys = api.iter().map(|k| k.parse().unwrap()).collect();
        c.admin_keys = admin.iter().map(|k| k.parse().unwrap()).collect();
        Keys::from_config(&c)
    }

    fn request(authorization: &str) -> Request {
        Request::builder()
            .header(header::AUTHORIZATION, authorization)
            .body(axum::body::Body::empty())
            .unwrap()
    }

    #[test]
    fn every_listed_key_is_recognised_and_nothing_else() {
        let k = keys(&["old-api", "new-api"], &["old-admin", "new-admin"]);
        let access = |auth: &str| k.presented(&request(auth)).map(|p| p.access);
        for key in ["old-api", "new-api"] {
            assert_eq!(access(&format!("Bearer {key}")), Some(Access::Api));
        }
        for key in ["old-admin", "new-admin"] {
            assert_eq!(access(&format!("bearer {key}")), Some(Access::Admin));
        }
        for wrong in [
            "Bearer old",
            "Bearer new-api ",
            "Basic old-api",
            "old-api",
            "Bearer ",
        ] {
            assert_eq!(access(wrong), None, "{wrong}");
        }
        let index = |auth: &str| k.presented(&request(auth)).map(|p| p.index);
        assert_ne!(index("Bearer old-api"), index("Bearer new-api"));
    }

    #[test]
    fn a_route_opens_to_the_keys_of_its_kind() {
        let api = Some(Presented {
            access: Access::Api,
            index: 0,
        });
        let admin = Some(Presented {
            access: Access::Admin,
            index: 1,
        });
        let both = keys(&["a"], &["b"]);
        assert_eq!(both.check(Access::Api, None), Err(Refusal::Unauthorized));
        assert_eq!(both.check(Access::Api, api), Ok(()));
        assert_eq!(both.check(Access::Api, admin), Ok(()));
        assert_eq!(both.check(Access::Admin, api), Err(Refusal::Forbidden));
        assert_eq!(both.check(Access::Admin, admin), Ok(()));
        assert_eq!(both.check(Access::Admin, None), Err(Refusal::Unauthorized));
        let api_only = keys(&["a"], &[]);
        assert_eq!(api_only.check(Access::Admin, api), Ok(()));
        assert_eq!(
            api_only.check(Access::Admin, None),
            Err(Refusal::Unauthorized)
        );
        let admin_only = keys(&[], &["b"]);
        assert_eq!(admin_only.check(Access::Api, None), Ok(()));
        assert_eq!(
            admin_only.check(Access::Admin, None),
            Err(Refusal::Unauthorized)
        );
        let open = keys(&[], &[]);
        assert_eq!(open.check(Access::Admin, None), Ok(()));
    }

    #[test]
    fn a_key_of_both_kinds_is_refused_at_start() {
        let mut c = Config::default_for("sqlite::memory:");
        c.api_keys = vec!["one".parse().unwrap(), "same".parse().unwrap()];
        c.admin_key = Some("same".parse().unwrap());
        assert!(c.validate().unwrap_err().contains("both"));
        c.admin_key = Some("other".parse().unwrap());
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn a_fingerprint_is_short_stable_and_not_the_key() {
        let key: Secret = "s3cret-key-value".parse().unwrap();
        let f = fingerprint(&key);
        assert_eq!(f.len(), 8);
        assert!(f.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(f, fingerprint(&key));
        assert_ne!(f, fingerprint(&"s3cret-key-valuf".parse().unwrap()));
        assert!(!key.expose().contains(&f));
        // The SHA-256 test vector: what `printf %s abc | sha256sum | cut -c1-8` prints, as the
        // operators' guide says to compute it.
        assert_eq!(fingerprint(&"abc".parse().unwrap()), "ba7816bf");
    }
}
