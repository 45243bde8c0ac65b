//! Champion and challenger, the pure part: which arm a user is in, and when the online counts
//! say enough to promote or retire the challenger. No I/O (see `learn::online` for the loop).

use std::hash::Hasher;

use crate::domain::Arm;

/// Buckets of the user hash: shares are honoured to 1/10,000.
const BUCKETS: u64 = 10_000;

/// A user's place in [0, 1) for one experiment: FNV-1a of the user id, salted with the
/// challenger's version, so a user stays in one arm for the whole experiment (on every replica
/// and across restarts; Rust's default hasher is randomised per process) and each new
/// experiment draws its own users.
pub fn position(user_id: &str, experiment: i64) -> f64 {
    let mut h = fnv::FnvHasher::default();
    h.write(&experiment.to_le_bytes());
    h.write(user_id.as_bytes());
    // FNV's low bits mix poorly for short keys; fold the high half in before bucketing.
    let x = h.finish();
    let mixed = x ^ (x >> 32);
    (mixed % BUCKETS) as f64 / BUCKETS as f64
}

/// The arm a user is in while challenger `experiment` serves `share` of the users.
pub fn assign(user_id: &str, experiment: i64, share: f64) -> Arm {
    if share > 0.0 && position(user_id, experiment) < share {
        Arm::Challenger
    } else {
        Arm::Champion
    }
}

/// One arm's online record under the deciding metric: responses shown, responses that earned it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Record {
    pub impressions: u64,
    pub successes: u64,
}

impl Record {
    pub fn rate(self) -> f64 {
        if self.impressions == 0 {
            0.0
        } else {
            self.successes as f64 / self.impressions as f64
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// Better with the stated confidence: it becomes the champion.
    Promote,
    /// Worse with the stated confidence: it stops serving.
    Retire,
    /// Too few impressions, or no clear difference yet.
    Undecided,
}

/// A decision and the statistic behind it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    pub verdict: Verdict,
    /// The two-proportion z statistic (challenger minus champion); 0 when it cannot be computed.
    pub z: f64,
}

/// Standard normal cumulative distribution.
pub fn normal_cdf(z: f64) -> f64 {
    0.5 * libm::erfc(-z / std::f64::consts::SQRT_2)
}

/// One-sided two-proportion z-test with pooled variance, once both arms have at least
/// `min_impressions`: promote when P(Z ≤ z) ≥ `confidence` (the challenger's rate is higher),
/// retire when P(Z ≥ z) ≥ `confidence`. Each response is one Bernoulli trial.
pub fn decide(
    champion: Record,
    challenger: Record,
    min_impressions: u64,
    confidence: f64,
) -> Decision {
    let undecided = |z| Decision {
        verdict: Verdict::Undecided,
        z,
    };
    if champion.impressions < min_impressions.max(1)
        || challenger.impressions < min_impressions.max(1)
    {
        return undecided(0.0);
    }
    let (n1, n2) = (challenger.impressions as f64, champion.impressions as f64);
    let pooled = (challenger.successes + champion.successes) as f64 / (n1 + n2);
    let se = (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
    if se == 0.0 || !se.is_finite() {
        return undecided(0.0);
    }
    let z = (challenger.rate() - champion.rate()) / se;
    let verdict = if normal_cdf(z) >= confidence {
        Verdict::Promote
    } else if normal_cdf(-z) >= confidence {
        Verdict::Retire
    } else {
        Verdict::Undecided
    };
    Decision { verdict, z }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(impressions: u64, successes: u64) -> Record {
        Record {
            impressions,
            successes,
        }
    }

    #[test]
    fn the_normal_cdf_matches_the_table() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-12);
        assert!((normal_cdf(1.644_853_6) - 0.95).abs() < 1e-6);
        assert!((normal_cdf(-1.959_964) - 0.025).abs() < 1e-6);
    }

    #[test]
    fn assignment_is_stable_and_honours_the_share() {
        for share in [0.05, 0.2, 0.5] {
            let users: Vec<String> = (0..10_000).map(|i| format!("user-{i}")).collect();
            let challengers = users
                .iter()
                .filter(|u| assign(u, 7, share) == Arm::Challenger)
                .count();
            let got = challengers as f64 / users.len() as f64;
            assert!((got - share).abs() <= 0.02, "share {share}: got {got}");
            for u in &users[..100] {
                assert_eq!(assign(u, 7, share), assign(u, 7, share), "stable for {u}");
            }
        }
        assert_eq!(assign("anyone", 7, 0.0), Arm::Champion, "share 0 is off");
    }

    #[test]
    fn the_hash_is_fixed_across_processes() {
        // A value computed once by hand (FNV-1a 64 over the version's bytes, then the id):
        // a change of hasher would move users between arms in the middle of an experiment.
        let mut h = fnv::FnvHasher::default();
        h.write(&3i64.to_le_bytes());
        h.write(b"u1");
        let x = h.finish();
        assert_eq!(
            position("u1", 3),
            ((x ^ (x >> 32)) % 10_000) as f64 / 10_000.0
        );
        assert_eq!(
            fnv::FnvHasher::default().finish(),
            0xcbf2_9ce4_8422_2325,
            "FNV offset basis"
        );
    }

    #[test]
    fn each_experiment_draws_its_own_users() {
        let moved = (0..1_000)
            .map(|i| format!("u{i}"))
            .filter(|u| assign(u, 1, 0.5) != assign(u, 2, 0.5))
            .count();
        assert!((350..650).contains(&moved), "{moved} of 1000 changed arm");
    }

    #[test]
    fn a_clearly_better_challenger_is_promoted() {
        // 60/1000 vs 40/1000: pooled p = 0.05, se = sqrt(0.05·0.95·2/1000) = 0.009747,
        // z = 0.02 / 0.009747 = 2.052 > 1.645 (95% one-sided).
        let d = decide(rec(1000, 40), rec(1000, 60), 1000, 0.95);
        assert_eq!(d.verdict, Verdict::Promote);
        assert!((d.z - 2.0520).abs() < 1e-3, "z = {}", d.z);
        // The same counts do not reach 99% (z must exceed 2.326).
        assert_eq!(
            decide(rec(1000, 40), rec(1000, 60), 1000, 0.99).verdict,
            Verdict::Undecided
        );
    }

    #[test]
    fn a_clearly_worse_challenger_is_retired() {
        let d = decide(rec(1000, 60), rec(1000, 40), 1000, 0.95);
        assert_eq!(d.verdict, Verdict::Retire);
        assert!((d.z + 2.0520).abs() < 1e-3, "z = {}", d.z);
    }

    #[test]
    fn a_small_difference_stays_undecided() {
        // 50/1000 vs 45/1000: z = 0.005 / sqrt(0.0475·0.9525·0.002) = 0.5256.
        let d = decide(rec(1000, 45), rec(1000, 50), 1000, 0.95);
        assert_eq!(d.verdict, Verdict::Undecided);
        assert!((d.z - 0.5256).abs() < 1e-3, "z = {}", d.z);
    }

    #[test]
    fn nothing_is_decided_before_the_minimum_on_both_arms() {
        let huge_gap = decide(rec(999, 0), rec(5000, 2500), 1000, 0.95);
        assert_eq!(huge_gap.verdict, Verdict::Undecided);
        let other_arm = decide(rec(5000, 0), rec(999, 500), 1000, 0.95);
        assert_eq!(other_arm.verdict, Verdict::Undecided);
        // No successes anywhere: no variance, no verdict.
        assert_eq!(
            decide(rec(5000, 0), rec(5000, 0), 1000, 0.95).verdict,
            Verdict::Undecided
        );
    }

    #[test]
    fn unequal_arms_are_compared_as_rates() {
        // 9000 champion impressions with 450 purchases (5%), 1000 challenger with 70 (7%):
        // pooled p = 520/10000 = 0.052, se = sqrt(0.052·0.948·(1/1000 + 1/9000)) = 0.0074009,
        // z = 0.02 / 0.0074009 = 2.7024.
        let d = decide(rec(9000, 450), rec(1000, 70), 1000, 0.95);
        assert_eq!(d.verdict, Verdict::Promote);
        assert!((d.z - 2.7024).abs() < 1e-3, "z = {}", d.z);
    }
}
