//! The online half of the loop: events naming a response are credited to the model version and arm that showed it, and a
//! challenger is promoted or retired on those counts. Everything that decides lives in the
//! database, so replicas agree: the impressions, the credit marks, the totals and the models'
//! statuses.
//!
//! Credit rule: an event is credited when its `recommendation_id` names a recorded response
//! shown to the same user and its item was among the items shown; each response counts at most
//! once per event type (click, add-to-cart, purchase), so rates are proportions of responses.
//! Events naming an unknown (or purged) response, another user's, or an item not shown are
//! stored as usual and credited to nothing.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::sync::watch;

use super::{
    lifecycle::{adopt_challenger, decide_challenger, ChallengerError},
    schedule::next_round,
};
use crate::{
    config::{Config, OnlineMetric},
    domain::Arm,
    model::arms::{self, Record, Verdict},
    serve::Serving,
    store::{DynStore, ModelRecord, OnlineCounts, StoreResult},
};

/// How long the credit tally keeps reading an event range again before settling it: on
/// PostgreSQL a lower sequence number can commit later, and an event may arrive before the
/// impression it names is written.
const SETTLE_AFTER: Duration = Duration::from_secs(30);

/// Online totals per version (all arms and experiments summed) with their rates.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct OnlineSummary {
    /// Responses shown.
    pub impressions: i64,
    /// Responses with at least one credited click, add-to-cart, purchase.
    pub clicks: i64,
    pub add_to_carts: i64,
    pub purchases: i64,
    /// clicks / impressions (0 without impressions).
    pub ctr: f64,
    /// purchases / impressions (0 without impressions).
    pub purchase_rate: f64,
}

impl OnlineSummary {
    fn add(&mut self, c: &OnlineCounts) {
        self.impressions += c.impressions;
        self.clicks += c.clicks;
        self.add_to_carts += c.add_to_carts;
        self.purchases += c.purchases;
        let n = self.impressions.max(1) as f64;
        self.ctr = self.clicks as f64 / n;
        self.purchase_rate = self.purchases as f64 / n;
    }
}

/// Every model version, newest first, with its online totals (all arms summed).
pub async fn versions(store: &DynStore) -> StoreResult<Vec<(ModelRecord, OnlineSummary)>> {
    let online = by_version(&store.online_counts().await?);
    let versions = store.model_versions().await?;
    Ok(versions
        .into_iter()
        .map(|r| {
            let summary = online.get(&r.version).copied().unwrap_or_default();
            (r, summary)
        })
        .collect())
}

/// Sums the totals per model version.
pub fn by_version(counts: &[OnlineCounts]) -> BTreeMap<i64, OnlineSummary> {
    let mut out: BTreeMap<i64, OnlineSummary> = BTreeMap::new();
    for c in counts {
        out.entry(c.model_version).or_default().add(c);
    }
    out
}

/// One arm's record in one experiment under the deciding metric.
fn arm_record(
    counts: &[OnlineCounts],
    version: i64,
    arm: Arm,
    experiment: i64,
    metric: OnlineMetric,
) -> Record {
    counts
        .iter()
        .filter(|c| c.model_version == version && c.arm == arm && c.experiment == experiment)
        .fold(Record::default(), |r, c| Record {
            impressions: r.impressions + c.impressions as u64,
            successes: r.successes
                + match metric {
                    OnlineMetric::PurchaseRate => c.purchases,
                    OnlineMetric::Ctr => c.clicks,
                } as u64,
        })
}

/// The periodic work: credit, totals to metrics, the challenger's fate, purging.
pub struct Online {
    store: DynStore,
    serving: Arc<Serving>,
    config: Arc<Config>,
    /// Sequence numbers read by earlier tallies, and when: what is old enough gets settled.
    reads: Mutex<VecDeque<(Instant, i64)>>,
}

impl Online {
    pub fn new(store: DynStore, serving: Arc<Serving>, config: Arc<Config>) -> Self {
        Self {
            store,
            serving,
            config,
            reads: Default::default(),
        }
    }

    /// One round; tests call it directly instead of waiting for the loop.
    pub async fn tick(&self) -> anyhow::Result<()> {
        self.tally(SETTLE_AFTER).await?;
        let counts = self.store.online_counts().await?;
        export(&counts);
        adopt_challenger(&self.store, &self.serving).await?;
        self.judge(&counts).await?;
        self.serving.refresh_new_items();
        let cutoff = chrono::Utc::now() - self.config.impression_retention();
        let purged = self
            .store
            .purge_impressions(cutoff.timestamp_millis())
            .await?;
        if purged > 0 {
            metrics::counter!("recloop_impressions_purged_total").increment(purged);
        }
        Ok(())
    }

    /// Credits new events; ranges read at least `settle_after` ago are not read again.
    pub async fn tally(&self, settle_after: Duration) -> anyhow::Result<u64> {
        let settle_to = {
            let mut reads = self.reads.lock().unwrap_or_else(|e| e.into_inner());
            let mut settled = 0;
            while let Some(&(at, seq)) = reads.front() {
                if at.elapsed() < settle_after {
                    break;
                }
                settled = seq;
                reads.pop_front();
            }
            settled
        };
        let tally = self.store.tally_credit(settle_to).await?;
        self.reads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back((Instant::now(), tally.read_to));
        if tally.credited > 0 {
            metrics::counter!("recloop_credited_responses_total").increment(tally.credited);
        }
        for ((version, arm, _), counts) in &tally.by_version {
            for (kind, n) in ["click", "add_to_cart", "purchase"].iter().zip(counts) {
                if *n > 0 {
                    let labels = format!("version={version}&arm={}&type={kind}", arm.as_str());
                    self.serving.stats.add("credited", labels, *n as f64);
                }
            }
        }
        Ok(tally.credited)
    }

    /// Promotes or retires the running challenger when the counts are conclusive.
    async fn judge(&self, counts: &[OnlineCounts]) -> anyhow::Result<()> {
        let (Some(challenger), Some(champion)) =
            (self.serving.challenger(), self.serving.current())
        else {
            return Ok(());
        };
        if self.config.challenger_share <= 0.0 {
            return Ok(());
        }
        let experiment = challenger.version();
        let metric = self.config.challenger_metric;
        let ours = arm_record(counts, experiment, Arm::Challenger, experiment, metric);
        let theirs = arm_record(
            counts,
            champion.version(),
            Arm::Champion,
            experiment,
            metric,
        );
        let decision = arms::decide(
            theirs,
            ours,
            self.config.challenger_min_impressions,
            self.config.challenger_confidence,
        );
        let promote = match decision.verdict {
            Verdict::Undecided => return Ok(()),
            Verdict::Promote => true,
            Verdict::Retire => false,
        };
        let name = match metric {
            OnlineMetric::PurchaseRate => "purchase rate",
            OnlineMetric::Ctr => "click-through rate",
        };
        let note = format!(
            "; online {name} {:.4} ({} responses) vs {:.4} ({}) of version {}: z = {:.2}, {} at {:.0}% confidence",
            ours.rate(),
            ours.impressions,
            theirs.rate(),
            theirs.impressions,
            champion.version(),
            decision.z,
            if promote { "promoted" } else { "retired" },
            self.config.challenger_confidence * 100.0,
        );
        match decide_challenger(&self.store, &self.serving, promote, &note).await {
            Ok(_) | Err(ChallengerError::Decided) | Err(ChallengerError::None) => Ok(()),
            Err(ChallengerError::Other(e)) => Err(e),
        }
    }

    /// Runs `tick` every `RECLOOP_ONLINE_TICK_SECS` (and when another replica announces a
    /// model) until `shutdown` turns true.
    pub async fn run_loop(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let tick = Duration::from_secs(self.config.online_tick_secs.max(1));
        let mut models = self.store.model_notifications();
        while next_round(models.as_mut(), tick, &mut shutdown).await {
            if let Err(e) = self.tick().await {
                tracing::warn!(error = ?e, "online round failed");
            }
        }
    }
}

/// The totals as Prometheus gauges, labelled by version and arm (the database's totals, so
/// every replica reports the same).
fn export(counts: &[OnlineCounts]) {
    let mut per: BTreeMap<(i64, Arm), OnlineSummary> = BTreeMap::new();
    for c in counts {
        per.entry((c.model_version, c.arm)).or_default().add(c);
    }
    for ((version, arm), s) in per {
        let labels = [
            ("version", version.to_string()),
            ("arm", arm.as_str().to_owned()),
        ];
        metrics::gauge!("recloop_online_impressions", &labels).set(s.impressions as f64);
        metrics::gauge!("recloop_online_clicks", &labels).set(s.clicks as f64);
        metrics::gauge!("recloop_online_add_to_carts", &labels).set(s.add_to_carts as f64);
        metrics::gauge!("recloop_online_purchases", &labels).set(s.purchases as f64);
        metrics::gauge!("recloop_online_ctr", &labels).set(s.ctr);
        metrics::gauge!("recloop_online_purchase_rate", &labels).set(s.purchase_rate);
    }
}
