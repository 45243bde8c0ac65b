//! Reading the model: a user's recommendations, similar items, popular items.

use std::collections::HashSet;

use axum::{
    extract::{Path, RawQuery, State},
    routing::get,
    Json, Router,
};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::{
    error::{ApiError, ApiResult, ErrorEnvelope},
    items::item_id,
    AppState,
};
use crate::{
    domain::{Category, ItemId},
    serve::{RecommendQuery, ScoredItem, Source},
    store::Arm,
};

const MAX_N: usize = 100;
const MAX_EXCLUDE: usize = 1_000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/users/{user_id}/recommendations", get(recommendations))
        .route("/v1/items/{item_id}/similar", get(similar))
        .route("/v1/popular", get(popular))
}

/// Query parameters of the read endpoints (each endpoint uses a subset).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the query for OpenAPI; parsed by `Params`
pub struct RecommendationParams {
    /// How many items, 1 to 100 (default 10).
    #[param(minimum = 1, maximum = 100)]
    n: Option<usize>,
    /// Only items of this catalog category.
    #[param(value_type = Option<super::schema::Id>)]
    category: Option<String>,
    /// Comma-separated item ids never to return (at most 1,000).
    #[param(pattern = "^,*([^,\\u0000-\\u001F\\u007F-\\u009F]{1,256},*)*$")]
    exclude: Option<String>,
    /// Also return items the user already interacted with (never purchased ones).
    include_interacted: Option<bool>,
    /// Add to each item why it is listed: `reason`, and for a personal score `because`, the
    /// history items it came from with their shares (the shares of all of them sum to 1).
    explain: Option<bool>,
}

/// The query string, parsed by hand so every mistake gets the envelope and a clear message
/// (also the statistics' query).
pub(super) struct Params(Vec<(String, String)>);

impl Params {
    pub(super) fn new(raw: Option<String>) -> ApiResult<Self> {
        serde_urlencoded::from_str(raw.as_deref().unwrap_or(""))
            .map(Params)
            .map_err(|e| ApiError::parameter("query", format!("is not a valid query string: {e}")))
    }

    pub(super) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn n(&self) -> ApiResult<usize> {
        match self.get("n") {
            None => Ok(10),
            Some(raw) => match raw.parse::<usize>() {
                Ok(n) if (1..=MAX_N).contains(&n) => Ok(n),
                _ => Err(ApiError::parameter(
                    "n",
                    format!("must be a whole number from 1 to {MAX_N}"),
                )),
            },
        }
    }

    fn category(&self) -> ApiResult<Option<String>> {
        self.get("category")
            .map(|c| {
                Category::parse(c)
                    .map(Category::into_inner)
                    .map_err(|e| ApiError::parameter("category", e.to_string()))
            })
            .transpose()
    }

    fn exclude(&self) -> ApiResult<HashSet<String>> {
        let Some(raw) = self.get("exclude") else {
            return Ok(HashSet::new());
        };
        let ids: Vec<&str> = raw.split(',').filter(|s| !s.is_empty()).collect();
        if ids.len() > MAX_EXCLUDE {
            return Err(ApiError::parameter(
                "exclude",
                format!("at most {MAX_EXCLUDE} item ids"),
            ));
        }
        ids.into_iter()
            .map(|s| {
                ItemId::parse(s)
                    .map(ItemId::into_inner)
                    .map_err(|e| ApiError::parameter("exclude", format!("each item id {e}")))
            })
            .collect()
    }

    /// A boolean parameter, false when absent.
    fn flag(&self, key: &'static str) -> ApiResult<bool> {
        match self.get(key) {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(_) => Err(ApiError::parameter(key, "must be true or false")),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecommendationsOut {
    pub user_id: String,
    /// Identifies this response; events that carry it are credited to it.
    pub recommendation_id: String,
    /// The model version that answered; null before the first model.
    pub model_version: Option<i64>,
    pub source: Source,
    /// Which model answered: the champion, or a challenger serving a share of users.
    pub arm: Arm,
    pub items: Vec<ScoredItem>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SimilarOut {
    pub item_id: String,
    /// Null before the first model.
    pub model_version: Option<i64>,
    pub items: Vec<ScoredItem>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PopularOut {
    /// Null before the first model.
    pub model_version: Option<i64>,
    pub items: Vec<ScoredItem>,
}

#[utoipa::path(
    get, path = "/v1/users/{user_id}/recommendations", tag = "recommendations",
    params(("user_id" = super::schema::Id, Path), RecommendationParams),
    responses(
        (status = 200, body = RecommendationsOut), (status = 401, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope),
    ),
    security((), ("api_key" = []))
)]
pub async fn recommendations(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<RecommendationsOut>> {
    let user = super::users::user_id(raw)?;
    let params = Params::new(query)?;
    let q = RecommendQuery {
        n: params.n()?,
        category: params.category()?,
        exclude: params.exclude()?,
        include_interacted: params.flag("include_interacted")?,
        explain: params.flag("explain")?,
    };
    let rec = state.serving.recommend(&user, &q).await?;
    Ok(Json(RecommendationsOut {
        user_id: user.into_inner(),
        recommendation_id: rec.recommendation_id,
        model_version: rec.model_version,
        source: rec.source,
        arm: rec.arm,
        items: rec.items,
    }))
}

#[utoipa::path(
    get, path = "/v1/items/{item_id}/similar", tag = "recommendations",
    params(
        ("item_id" = super::schema::Id, Path),
        ("n" = Option<usize>, Query, minimum = 1, maximum = 100, description = "1 to 100, default 10"),
        ("explain" = Option<bool>, Query, description = "add `co_users` to each item: how many users interacted with both items"),
    ),
    responses(
        (status = 200, body = SimilarOut), (status = 401, body = ErrorEnvelope),
        (status = 404, description = "neither the catalog nor the model knows the item", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
    ),
    security((), ("api_key" = []))
)]
pub async fn similar(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<SimilarOut>> {
    let id = item_id(raw)?;
    let params = Params::new(query)?;
    let (n, explain) = (params.n()?, params.flag("explain")?);
    let found = state.serving.similar(id.as_str(), n, explain);
    let (model_version, items) = found.ok_or_else(|| {
        ApiError::NotFound(format!(
            "no item {:?} in the catalog or the model",
            id.as_str()
        ))
    })?;
    Ok(Json(SimilarOut {
        item_id: id.into_inner(),
        model_version,
        items,
    }))
}

#[utoipa::path(
    get, path = "/v1/popular", tag = "recommendations",
    params(
        ("n" = Option<usize>, Query, minimum = 1, maximum = 100, description = "1 to 100, default 10"),
        ("category" = Option<super::schema::Id>, Query, description = "only items of this category"),
    ),
    responses(
        (status = 200, body = PopularOut), (status = 401, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
    ),
    security((), ("api_key" = []))
)]
pub async fn popular(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<PopularOut>> {
    let params = Params::new(query)?;
    let (model_version, items) = state
        .serving
        .popular(params.n()?, params.category()?.as_deref());
    Ok(Json(PopularOut {
        model_version,
        items,
    }))
}
