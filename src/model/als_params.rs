//! The hyperparameters of implicit ALS, apart from the fit so that the row solvers and the
//! fold-in, which the fit uses, can share them without importing the fit.

/// Hyperparameters of [`fit`](super::als::fit).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AlsParams {
    /// Latent dimension `k`.
    pub factors: usize,
    /// Ridge strength λ; see [`row_regularization`] for how it scales per row.
    pub regularization: f32,
    /// Confidence slope: `c_ui = 1 + alpha · w_ui`.
    pub alpha: f32,
    /// Number of (item step, user step) rounds.
    pub iterations: usize,
    /// Seed of the initial factors; the fit is a pure function of data and params.
    pub seed: u64,
    /// 0 = exact Cholesky solve per row; > 0 = that many conjugate-gradient steps,
    /// warm-started from the previous factors (Takács et al. 2011, as in `implicit`).
    pub cg_steps: usize,
}

/// Defaults meant for any shop, not fitted to one dataset: 128 factors (with
/// count-scaled regularisation, more factors do not overfit, and fold-in plus scoring
/// 20,000 items stays well under a millisecond); `alpha = 1`, so a cell's confidence is
/// 1 + the event weight itself (a click doubles it, a purchase makes it 5);
/// `regularization = 0.2` per observation; 15 rounds of 3 warm-started CG steps, as in
/// `implicit`.
impl Default for AlsParams {
    fn default() -> Self {
        AlsParams {
            factors: 128,
            regularization: 0.2,
            alpha: 1.0,
            iterations: 15,
            seed: 42,
            cg_steps: 3,
        }
    }
}

/// The per-row ridge strength λ_u for a row with `n_observed` observed entries.
///
/// Scaled with the row's observation count, `λ · (1 + n_observed)` — the
/// "frequency-scaled" regularisation of ALS-WR (Zhou et al. 2008), which Rendle et al.
/// 2022 ("Revisiting the performance of iALS") found to matter: a flat λ is too weak for
/// heavy users and items (they overfit) or too strong for the tail. Scaling also makes
/// one λ fit catalogues and histories of different sizes, which a service that cannot be
/// hand-tuned per shop needs.
pub fn row_regularization(params: &AlsParams, n_observed: usize) -> f32 {
    params.regularization * (1.0 + n_observed as f32)
}
