//! One typed configuration, from flags and `RECLOOP_*` / `DATABASE_URL` variables, with defaults
//! that run with nothing set.

use std::{fmt, net::SocketAddr, str::FromStr, time::Duration};

use clap::Args;

use crate::{domain::EventWeights, model::AlsParams};

/// A key that never prints: `Debug` and logs show `[redacted]`.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl FromStr for Secret {
    type Err = String;
    /// Surrounding blanks are dropped: HTTP trims them from a header's value, so a key that
    /// kept them could never be presented (and `a, b` in a list means `a` and `b`).
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("a key must not be blank".into());
        }
        Ok(Self(s.to_owned()))
    }
}

/// Every setting of the service. Each has a flag and a variable; `recloop serve --help` lists them.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "RECLOOP_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// `sqlite://path` (the default, created on first start) or `postgres://…`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://recloop.db")]
    pub database_url: String,
    /// Bearer key every `/v1` route requires; unset = open (development).
    #[arg(long, env = "RECLOOP_API_KEY", hide_env_values = true)]
    pub api_key: Option<Secret>,
    /// Bearer key model operations and catalog writes require.
    #[arg(long, env = "RECLOOP_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<Secret>,
    /// More API keys, comma-separated, each as good as `RECLOOP_API_KEY`: to rotate one, add
    /// the new key, move the clients over, then remove the old one.
    #[arg(
        long,
        env = "RECLOOP_API_KEYS",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub api_keys: Vec<Secret>,
    /// More admin keys, comma-separated, each as good as `RECLOOP_ADMIN_KEY`.
    #[arg(
        long,
        env = "RECLOOP_ADMIN_KEYS",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub admin_keys: Vec<Secret>,
    /// Largest request body accepted, in bytes (a full 10,000-event batch is about 1.5 MB).
    #[arg(long, env = "RECLOOP_MAX_BODY_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// A request still unanswered after this many seconds gets 503 (retrain?wait=true is exempt).
    #[arg(long, env = "RECLOOP_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,
    /// Retrain at least this often, in seconds (0 = never on a schedule).
    #[arg(long, env = "RECLOOP_RETRAIN_INTERVAL_SECS", default_value_t = 3600)]
    pub retrain_interval_secs: u64,
    /// Retrain once this many events arrived since the last training (0 = never on volume).
    #[arg(long, env = "RECLOOP_RETRAIN_AFTER_EVENTS", default_value_t = 10_000)]
    pub retrain_after_events: u64,
    /// How often the trainer checks whether a retraining is due, in seconds.
    #[arg(long, env = "RECLOOP_TRAINER_TICK_SECS", default_value_t = 5)]
    pub trainer_tick_secs: u64,
    /// Confidence weight of a view.
    #[arg(long, env = "RECLOOP_WEIGHT_VIEW", default_value_t = EventWeights::default().view)]
    pub weight_view: f32,
    /// Confidence weight of a click.
    #[arg(long, env = "RECLOOP_WEIGHT_CLICK", default_value_t = EventWeights::default().click)]
    pub weight_click: f32,
    /// Confidence weight of an add-to-cart.
    #[arg(long, env = "RECLOOP_WEIGHT_ADD_TO_CART", default_value_t = EventWeights::default().add_to_cart)]
    pub weight_add_to_cart: f32,
    /// Confidence weight of a purchase.
    #[arg(long, env = "RECLOOP_WEIGHT_PURCHASE", default_value_t = EventWeights::default().purchase)]
    pub weight_purchase: f32,
    /// Latent factors of the iALS model.
    #[arg(long, env = "RECLOOP_FACTORS", default_value_t = AlsParams::default().factors)]
    pub factors: usize,
    /// L2 regularization of the iALS model.
    #[arg(long, env = "RECLOOP_REGULARIZATION", default_value_t = AlsParams::default().regularization)]
    pub regularization: f32,
    /// Confidence scale: c = 1 + alpha · (summed event weights).
    #[arg(long, env = "RECLOOP_ALPHA", default_value_t = AlsParams::default().alpha)]
    pub alpha: f32,
    /// iALS sweeps.
    #[arg(long, env = "RECLOOP_ITERATIONS", default_value_t = AlsParams::default().iterations)]
    pub iterations: usize,
    /// Conjugate-gradient steps per solve (0 = exact Cholesky).
    #[arg(long, env = "RECLOOP_CG_STEPS", default_value_t = AlsParams::default().cg_steps)]
    pub cg_steps: usize,
    /// Seed of the model's random initialisation: same log + same seed = same model.
    #[arg(long, env = "RECLOOP_SEED", default_value_t = 42)]
    pub seed: u64,
    /// Half-life of popularity, in days of event time.
    #[arg(long, env = "RECLOOP_POPULARITY_HALF_LIFE_DAYS", default_value_t = 7.0)]
    pub popularity_half_life_days: f64,
    /// Similar items precomputed per item.
    #[arg(long, env = "RECLOOP_SIMILAR_K", default_value_t = 50)]
    pub similar_k: usize,
    /// Let each training choose its algorithm (iALS, or EASE on small catalogues) and how much
    /// recent events outweigh older ones, on a validation split of the log. Off: the iALS
    /// settings above, as they are.
    #[arg(long, env = "RECLOOP_MODEL_SELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub model_selection: bool,
    /// Largest catalogue (items with events) on which EASE is considered: its fit is cubic in
    /// the items and its model quadratic (pruned), so big catalogues use iALS. 0 = never.
    #[arg(long, env = "RECLOOP_EASE_MAX_ITEMS", default_value_t = 3000)]
    pub ease_max_items: usize,
    /// Share of each user's most recent events held out to score a candidate model.
    #[arg(long, env = "RECLOOP_HOLDOUT_FRACTION", default_value_t = 0.2)]
    pub holdout_fraction: f64,
    /// Users whose folded-in vectors are kept in memory (least recently used go first).
    #[arg(long, env = "RECLOOP_USER_CACHE_CAPACITY", default_value_t = 100_000)]
    pub user_cache_capacity: u64,
    /// Hide already interacted items by default (purchased items are always hidden).
    #[arg(long, env = "RECLOOP_EXCLUDE_INTERACTED", default_value_t = true, action = clap::ArgAction::Set)]
    pub exclude_interacted: bool,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "RECLOOP_LOG_JSON", default_value_t = false)]
    pub log_json: bool,
    /// A connection that has not sent a whole request head (request line and headers) this many
    /// seconds after it opened, or after its previous answer, is closed: slow or silent clients
    /// cannot hold connections, and idle keep-alive connections last this long.
    #[arg(long, env = "RECLOOP_HEADER_TIMEOUT_SECS", default_value_t = 30)]
    pub header_timeout_secs: u64,
    /// Requests per second each client may make to `/v1` routes; 0 (the default) = no limit.
    /// A client is the key it presents (when it matches a configured key), else its IP address.
    #[arg(long, env = "RECLOOP_RATE_LIMIT_PER_SECOND", default_value_t = 0.0)]
    pub rate_limit_per_second: f64,
    /// Requests a client may make at once before the per-second rate applies; 0 = one second's worth.
    #[arg(long, env = "RECLOOP_RATE_LIMIT_BURST", default_value_t = 0)]
    pub rate_limit_burst: u32,
    /// Proxies (comma-separated IPs) whose `X-Forwarded-For` names the client for rate limiting;
    /// from anyone else the header is ignored.
    #[arg(long, env = "RECLOOP_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Seconds a shutdown waits for requests in flight.
    #[arg(long, env = "RECLOOP_SHUTDOWN_GRACE_SECS", default_value_t = 20)]
    pub shutdown_grace_secs: u64,

    // Online learning: what was shown, what it earned, champion and challenger (see `learn::online` and `serve`).
    /// Days an impression (what one response showed) is kept, to credit events and to demote
    /// items shown without a click; the per-version totals outlive it.
    #[arg(
        long,
        env = "RECLOOP_IMPRESSION_RETENTION_DAYS",
        default_value_t = 30.0
    )]
    pub impression_retention_days: f64,
    /// How often events are credited, challengers decided and old impressions purged, in seconds.
    #[arg(long, env = "RECLOOP_ONLINE_TICK_SECS", default_value_t = 2)]
    pub online_tick_secs: u64,
    /// Share of users a new model first serves as challenger (0 = off: it replaces the old at once).
    #[arg(long, env = "RECLOOP_CHALLENGER_SHARE", default_value_t = 0.0)]
    pub challenger_share: f64,
    /// The online rate that decides a challenger's fate.
    #[arg(long, env = "RECLOOP_CHALLENGER_METRIC", value_enum, default_value_t = OnlineMetric::PurchaseRate)]
    pub challenger_metric: OnlineMetric,
    /// Impressions each arm needs before a challenger is promoted or retired.
    #[arg(
        long,
        env = "RECLOOP_CHALLENGER_MIN_IMPRESSIONS",
        default_value_t = 1000
    )]
    pub challenger_min_impressions: u64,
    /// One-sided confidence a difference needs to promote or retire (two-proportion z-test).
    #[arg(long, env = "RECLOOP_CHALLENGER_CONFIDENCE", default_value_t = 0.95)]
    pub challenger_confidence: f64,
    /// Share of its score an item loses each time it is shown to a user who does not act on it
    /// (0 = off). On by default: in `recloop simulate` it roughly doubles click-through (the
    /// README has the figures); the price is that two replicas may rank a user's list
    /// differently until the impressions of one reach the other's cache.
    #[arg(long, env = "RECLOOP_IMPRESSION_PENALTY", default_value_t = 0.3)]
    pub impression_penalty: f64,
    /// Share of a personal list's slots given to new or little-known items (0 = off, the
    /// default; 0.1 = 1 of 10). Off by default: in `recloop simulate` 0.1 moved click-through
    /// by little, with or without the impression penalty (the README has the figures).
    #[arg(long, env = "RECLOOP_EXPLORATION", default_value_t = 0.0)]
    pub exploration: f64,
}

impl Config {
    /// The defaults, as `recloop serve` with nothing set would use; tests start from here.
    pub fn default_for(database_url: impl Into<String>) -> Self {
        use clap::Parser;
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            config: Config,
        }
        // Parsing an empty command line gives exactly the documented defaults, without the
        // environment leaking in: tests must not depend on the shell that runs them.
        let mut config = Only::parse_from(["recloop"]).config;
        config.database_url = database_url.into();
        config.api_key = None;
        config.admin_key = None;
        config.api_keys.clear();
        config.admin_keys.clear();
        config
    }

    /// Checks what clap's types cannot: ranges that would make the service misbehave.
    pub fn validate(&self) -> Result<(), String> {
        let admin: Vec<&str> = self
            .admin_key
            .iter()
            .chain(&self.admin_keys)
            .map(Secret::expose)
            .collect();
        if self
            .api_key
            .iter()
            .chain(&self.api_keys)
            .any(|k| admin.contains(&k.expose()))
        {
            // Which kind it would be is a guess either way: an API client could administer.
            return Err("a key is configured both as an API key and as an admin key".into());
        }
        let weights = self.weights();
        for (name, w) in [
            ("view", weights.view),
            ("click", weights.click),
            ("add_to_cart", weights.add_to_cart),
            ("purchase", weights.purchase),
        ] {
            if !(w.is_finite() && w > 0.0) {
                return Err(format!("weight of {name} must be a positive number"));
            }
        }
        if self.factors == 0 || self.factors > 1024 {
            return Err("factors must be between 1 and 1024".into());
        }
        if !(self.regularization.is_finite() && self.regularization >= 0.0) {
            return Err("regularization must be >= 0".into());
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err("alpha must be > 0".into());
        }
        if !(self.holdout_fraction.is_finite()
            && self.holdout_fraction > 0.0
            && self.holdout_fraction < 1.0)
        {
            return Err("holdout fraction must be between 0 and 1".into());
        }
        if !(self.popularity_half_life_days.is_finite() && self.popularity_half_life_days > 0.0) {
            return Err("popularity half-life must be > 0".into());
        }
        if !(self.rate_limit_per_second.is_finite() && self.rate_limit_per_second >= 0.0) {
            return Err("rate limit per second must be >= 0".into());
        }
        if self.rate_limit_per_second > 0.0 && self.rate_limit_per_second < 1e-6 {
            return Err("rate limit per second must be 0 (off) or at least 0.000001".into());
        }
        if self.max_body_bytes < 1024 {
            return Err("max body bytes must be at least 1024".into());
        }
        if !(self.impression_retention_days.is_finite() && self.impression_retention_days > 0.0) {
            return Err("impression retention must be > 0 days".into());
        }
        if !(0.0..1.0).contains(&self.challenger_share) {
            return Err("challenger share must be at least 0 and below 1".into());
        }
        if !(self.challenger_confidence > 0.5 && self.challenger_confidence < 1.0) {
            return Err("challenger confidence must be between 0.5 and 1".into());
        }
        if !(0.0..1.0).contains(&self.impression_penalty) {
            return Err("impression penalty must be at least 0 and below 1".into());
        }
        if !(0.0..=0.5).contains(&self.exploration) {
            return Err("exploration must be between 0 and 0.5".into());
        }
        Ok(())
    }

    pub fn weights(&self) -> EventWeights {
        EventWeights {
            view: self.weight_view,
            click: self.weight_click,
            add_to_cart: self.weight_add_to_cart,
            purchase: self.weight_purchase,
        }
    }

    pub fn als_params(&self) -> AlsParams {
        AlsParams {
            factors: self.factors,
            regularization: self.regularization,
            alpha: self.alpha,
            iterations: self.iterations,
            seed: self.seed,
            cg_steps: self.cg_steps,
        }
    }

    pub fn impression_retention(&self) -> chrono::Duration {
        chrono::Duration::milliseconds((self.impression_retention_days * 86_400_000.0) as i64)
    }

    pub fn header_timeout(&self) -> Duration {
        Duration::from_secs(self.header_timeout_secs.max(1))
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs.max(1))
    }
}

/// An online rate, per impression (one response shown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnlineMetric {
    /// Responses that led to at least one purchase of a shown item.
    #[value(name = "purchase_rate")]
    PurchaseRate,
    /// Responses that led to at least one click on a shown item.
    #[value(name = "ctr")]
    Ctr,
}
